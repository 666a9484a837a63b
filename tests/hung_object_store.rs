//! A node whose object store does not answer at start (a hung endpoint: the
//! connection is taken, no reply ever comes) still starts and takes
//! publishes into its WAL; it says the store did not answer. It used to
//! wait the object store's retries out, about 150 s, with no listener.

#![allow(clippy::disallowed_methods)] // waits on a real process

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_object_store_does_not_hold_the_start() {
    // Connections complete in the kernel's backlog; nothing ever answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hung.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("STRATA_OBJECT_STORE_KIND", "s3"),
        ("STRATA_OBJECT_STORE_BUCKET", "strata"),
        ("STRATA_OBJECT_STORE_ENDPOINT", endpoint.as_str()),
        ("STRATA_OBJECT_STORE_ALLOW_HTTP", "true"),
        ("STRATA_OBJECT_STORE_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "hung"),
        ("AWS_SECRET_ACCESS_KEY", "hung-secret"),
        ("STRATA_LOG_LEVEL", "warn"),
    ];
    // Server::start gives a node 60 s to report its address.
    let server = Server::start(dir.path(), &env);
    common::create_topic(&server.url, "t", 1).await;
    let reply = common::http()
        .post(format!("{}/v1/topics/t/messages", server.url))
        .json(&json!({"messages": [{"body": "kept in the WAL"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    let read = common::read_messages(&server.url, "t", 0).await;
    assert_eq!(read.len(), 1, "{read:?}");
    let said = server.stderr().join("\n");
    assert!(said.contains("the object store did not answer"), "{said}");
    drop(hung);
    server.kill();
}
