//! The `strata` CLI against a real server: the workflow the README shows.

mod common;

use common::{Server, cli};

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "strata failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn topic_produce_consume_group_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();

    let created = ok(&cli(
        &url,
        &[
            "topic",
            "create",
            "orders",
            "--queues",
            "3",
            "--retention",
            "7days",
        ],
        None,
    ));
    assert!(
        created.contains("created topic orders with 3 queues"),
        "{created}"
    );
    let list = ok(&cli(&url, &["topic", "list"], None));
    assert!(
        list.contains("orders") && list.contains("retention=7days"),
        "{list}"
    );

    let produced = ok(&cli(
        &url,
        &[
            "produce",
            "orders",
            "--key",
            "k1",
            "--tag",
            "red",
            "--property",
            "source=test",
            "--json",
        ],
        Some("first\nsecond\nthird\n"),
    ));
    let acks = json_lines(&produced);
    assert_eq!(acks.len(), 3);
    let queue = acks[0]["queue"].as_u64().unwrap();
    assert!(
        acks.iter().all(|a| a["queue"] == queue),
        "one key, one queue"
    );
    let offsets: Vec<u64> = acks.iter().map(|a| a["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [0, 1, 2]);

    let file = dir.path().join("payload.bin");
    std::fs::write(&file, [0u8, 159, 146, 150, 255]).unwrap();
    let queue_arg = queue.to_string();
    ok(&cli(
        &url,
        &[
            "produce",
            "orders",
            "--queue",
            &queue_arg,
            "--file",
            file.to_str().unwrap(),
        ],
        None,
    ));

    let consumed = ok(&cli(
        &url,
        &[
            "consume", "orders", "--group", "billing", "--count", "2", "--json",
        ],
        None,
    ));
    let got = json_lines(&consumed);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["body"], "first");
    assert_eq!(got[0]["key"], "k1");
    assert_eq!(got[0]["tag"], "red");
    assert_eq!(got[0]["properties"]["source"], "test");

    // The group resumes where the previous consume stopped.
    let rest = json_lines(&ok(&cli(
        &url,
        &["consume", "orders", "--group", "billing", "--json"],
        None,
    )));
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0]["body"], "third");
    assert_eq!(
        rest[1]["body_base64"], "AJ+Slv8=",
        "binary file body round-trips"
    );

    let group = json_lines(&ok(&cli(
        &url,
        &["group", "describe", "billing", "--json"],
        None,
    )));
    // Every queue of the topic is listed; the messages went to one.
    let offsets = group[0]["offsets"].as_array().unwrap();
    let on_queue: Vec<_> = offsets.iter().filter(|o| o["queue"] == queue).collect();
    assert_eq!(on_queue.len(), 1, "{offsets:?}");
    assert_eq!(on_queue[0]["offset"], 4);
    assert_eq!(on_queue[0]["lag"], 0);
    assert!(offsets.iter().all(|o| o["lag"] == 0), "{offsets:?}");

    ok(&cli(
        &url,
        &[
            "group", "reset", "billing", "--topic", "orders", "--to", "earliest",
        ],
        None,
    ));
    let again = json_lines(&ok(&cli(
        &url,
        &["consume", "orders", "--group", "billing", "--json"],
        None,
    )));
    assert_eq!(again.len(), 4);
    // A duration means that long before now: an hour ago, everything.
    let reset = json_lines(&ok(&cli(
        &url,
        &[
            "group", "reset", "billing", "--topic", "orders", "--to", "1h", "--json",
        ],
        None,
    )));
    assert_eq!(reset[0]["offsets"][0]["offset"], 0, "{reset:?}");
    let bad = cli(
        &url,
        &[
            "group", "reset", "billing", "--topic", "orders", "--to", "first",
        ],
        None,
    );
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(
        said.contains("is not earliest, latest, an offset"),
        "{said}"
    );

    let since_epoch = json_lines(&ok(&cli(
        &url,
        &["consume", "orders", "--from-time", "0", "--json"],
        None,
    )));
    assert_eq!(
        since_epoch.len(),
        4,
        "--from-time 0 starts at the beginning"
    );
    let future = ok(&cli(
        &url,
        &[
            "consume",
            "orders",
            "--from-time",
            "2999-01-01T00:00:00Z",
            "--json",
        ],
        None,
    ));
    assert!(future.is_empty(), "nothing is that new: {future}");
    let bad_time = cli(
        &url,
        &["consume", "orders", "--from-time", "yesterday"],
        None,
    );
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("RFC 3339"));

    // Found by key in whichever queue it went to, and by id.
    let by_key = json_lines(&ok(&cli(
        &url,
        &["find", "orders", "--key", "k1", "--json"],
        None,
    )));
    let bodies: Vec<&str> = by_key.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["first", "second", "third"]);
    assert_eq!(by_key[0]["queue"].as_u64(), Some(queue));
    let id = by_key[1]["id"].as_str().unwrap().to_string();
    let by_id = ok(&cli(&url, &["find", "orders", "--id", &id], None));
    assert!(
        by_id.contains("key=k1") && by_id.contains("second"),
        "{by_id}"
    );
    let neither = cli(&url, &["find", "orders"], None);
    assert!(!neither.status.success());

    ok(&cli(
        &url,
        &["topic", "create", "capped", "--retention-bytes", "1048576"],
        None,
    ));
    let capped = json_lines(&ok(&cli(
        &url,
        &["topic", "describe", "capped", "--json"],
        None,
    )));
    assert_eq!(capped[0]["retention_bytes"], 1048576);
    let described = ok(&cli(&url, &["topic", "describe", "capped"], None));
    assert!(
        described.contains("retention_bytes=1048576 per queue"),
        "{described}"
    );

    let plan = json_lines(&ok(&cli(
        &url,
        &[
            "quota",
            "set",
            "small",
            "--max-topics",
            "3",
            "--publish-messages-per-sec",
            "100",
            "--json",
        ],
        None,
    )));
    assert_eq!(plan[0]["quotas"]["max_topics"], 3);
    assert_eq!(plan[0]["quotas"]["publish_messages_per_sec"], 100);
    assert_eq!(
        plan[0]["quotas"]["requests_per_sec"], 2000,
        "unset fields keep the default"
    );
    ok(&cli(
        &url,
        &["tenant", "create", "acme", "--plan", "small"],
        None,
    ));
    let shown = ok(&cli(&url, &["quota", "show", "small"], None));
    assert!(shown.contains("topics") && shown.contains('3'), "{shown}");
    let moved = json_lines(&ok(&cli(
        &url,
        &["tenant", "set-plan", "acme", "unlimited", "--json"],
        None,
    )));
    assert_eq!(moved[0]["plan"], "unlimited");

    let describe = ok(&cli(&url, &["topic", "describe", "orders"], None));
    assert!(
        describe.contains("first") && describe.contains("in objects"),
        "{describe}"
    );
    let status = ok(&cli(&url, &["status"], None));
    assert!(
        status.contains("wal") && status.contains("fsyncs"),
        "{status}"
    );
    assert!(
        status.contains("metadata    redb") && status.contains(" commits (p50 "),
        "{status}"
    );
    assert!(
        status.contains("ready       yes: accepting publishes"),
        "{status}"
    );
    // Embedded: a cluster of one, this node, owning every queue.
    let cluster = ok(&cli(&url, &["cluster", "status"], None));
    let row = cluster
        .lines()
        .find(|l| l.starts_with("node-1 "))
        .unwrap_or_else(|| panic!("no row for node-1: {cluster}"));
    assert!(
        cluster.starts_with("metadata redb — 1 node,") && row.contains(" live "),
        "{cluster}"
    );
    let described = json_lines(&ok(&cli(&url, &["cluster", "status", "--json"], None)));
    let nodes = described[0]["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes[0]["queues"], described[0]["queues"], "{nodes:?}");
    assert!(described[0]["queues"].as_u64().unwrap() > 0);

    // Errors are specific and exit non-zero.
    let missing = cli(&url, &["consume", "nope"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("TOPIC_NOT_FOUND"));
    let bad = cli(&url, &["topic", "create", "bad.name"], None);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("INVALID_NAME"));
    // With --json, the error is JSON where the result would have been.
    let missing = cli(&url, &["--json", "topic", "describe", "nope"], None);
    assert!(!missing.status.success());
    let said: serde_json::Value = serde_json::from_slice(&missing.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&missing.stdout)));
    assert_eq!(said["error"]["code"], "TOPIC_NOT_FOUND", "{said}");
    assert!(
        said["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nope"))
    );

    // Usage: a graceful stop writes every count; after a restart the CLI
    // shows the admin tenant's publishes (JSON, table, CSV for all tenants).
    server.stop();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    let usage = json_lines(&ok(&cli(
        &url,
        &["usage", "--start", "24h", "--granularity", "day", "--json"],
        None,
    )));
    let totals = &usage[0]["totals"][0];
    assert!(
        totals["published_messages"].as_u64().unwrap() > 0,
        "{totals}"
    );
    assert!(totals["requests"]["publish"].as_u64().unwrap() > 0);
    let table = ok(&cli(&url, &["usage"], None));
    assert!(
        table.contains("PUB MSGS") && table.contains("TOTAL"),
        "{table}"
    );
    let csv = ok(&cli(
        &url,
        &["usage", "--all-tenants", "--format", "csv"],
        None,
    ));
    assert!(csv.starts_with("tenant,start,"), "{csv}");
    let me = json_lines(&ok(&cli(&url, &["whoami", "--json"], None)));
    let own = format!("\n{},", me[0]["tenant"].as_str().unwrap());
    assert!(csv.contains(&own), "no row for the admin's tenant: {csv}");
    let bad = cli(&url, &["usage", "--granularity", "week"], None);
    assert_eq!(bad.status.code(), Some(2), "refused before it is sent");
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("week") && said.contains("minute"), "{said}");
    server.stop();
}

#[test]
fn client_commands_explain_an_unreachable_server() {
    let out = cli("http://127.0.0.1:9", &["topic", "list"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Strata") && err.contains("strata serve"),
        "{err}"
    );
}

#[test]
fn second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let out = std::process::Command::new(common::BIN)
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another Strata process"));
    let status = server.stop();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
}

#[test]
fn help_explains_every_command() {
    let out = std::process::Command::new(common::BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve", "topic", "produce", "consume", "group", "status", "config", "usage",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}");
    }
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--data-dir", "--http-addr", "--grpc-addr", "--config"] {
        assert!(help.contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn a_command_line_that_does_not_parse_answers_json_when_asked() {
    let out = std::process::Command::new(common::BIN)
        .args(["--json", "topic", "list", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["error"]["code"], "USAGE_ERROR", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--bogus"), "{message}");
    // Without --json clap's own text, on standard error.
    let out = std::process::Command::new(common::BIN)
        .args(["topic", "list", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"));
    // Values clap cannot check by type are checked while parsing too, before
    // anything is sent (no server runs here).
    for (args, says) in [
        (&["usage", "--start", "bogus"][..], "bogus"),
        (&["usage", "--format", "xml"], "xml"),
        (&["produce", "t", "--delay", "soon"], "soon"),
        (&["produce", "t", "--deliver-at", "tomorrow"], "tomorrow"),
        (&["produce", "t", "--property", "novalue"], "NAME=VALUE"),
        (
            &["consume", "t", "--from", "start"],
            "earliest, latest or an offset",
        ),
        (&["consume", "t", "--from-time", "noon"], "noon"),
        (
            &["group", "reset", "g", "--topic", "t", "--to", "soon"],
            "soon",
        ),
        (&["topic", "create", "t", "--type", "fast"], "fast"),
        (&["--server", "notaurl", "topic", "list"], "notaurl"),
        (&["--access-key", "AK", "topic", "list"], "--secret-key"),
    ] {
        let out = std::process::Command::new(common::BIN)
            .arg("--json")
            .args(args)
            .env_remove("STRATA_SERVER")
            .env_remove("STRATA_ACCESS_KEY")
            .env_remove("STRATA_SECRET_KEY")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reply["error"]["code"], "USAGE_ERROR", "{args:?}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{args:?}: {message}");
    }
    // Help stays help.
    let out = std::process::Command::new(common::BIN)
        .args(["--json", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
}

#[test]
fn config_command_shows_env_overrides() {
    let out = std::process::Command::new(common::BIN)
        .arg("config")
        .env("STRATA_WAL_MAX_BYTES", "4294967296")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_bytes = 4294967296"), "{text}");
    // JSON when asked; a variable that names no key is pointed out.
    let out = std::process::Command::new(common::BIN)
        .args(["--json", "config"])
        .env("STRATA_WAL_MAX_BYTES", "4294967296")
        .env("STRATA_WAL_MAXBYTES", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["wal"]["max_bytes"], 4294967296u64);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.contains("STRATA_WAL_MAXBYTES"), "{warnings}");
    // A client's credentials file, not written yet, is no server's concern.
    let out = std::process::Command::new(common::BIN)
        .arg("config")
        .env("STRATA_CREDENTIALS_FILE", "/nonexistent/admin-credentials")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(common::BIN)
        .arg("config")
        .env("STRATA_WAL_MAX_BYTES", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STRATA_WAL_MAX_BYTES"));
}

#[test]
fn metadata_bench_measures_the_embedded_store_and_refuses_bad_input() {
    let out = std::process::Command::new(common::BIN)
        .args([
            "metadata",
            "bench",
            "--seconds",
            "1",
            "--concurrency",
            "3",
            "--json",
        ])
        .env_remove("STRATA_METADATA_URL")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["backend"], "redb", "{report}");
    assert_eq!(report["concurrency"], 3, "{report}");
    assert!(report["commits"].as_u64().unwrap() > 0, "{report}");
    assert!(report["reads_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    assert!(
        report["p50_ms"].as_f64().unwrap() <= report["p99_ms"].as_f64().unwrap(),
        "{report}"
    );

    for (args, expect) in [
        (
            vec!["metadata", "bench", "--url", "etcd://nohost"],
            "endpoint \"nohost\" is not host:port",
        ),
        (
            vec!["metadata", "bench", "--concurrency", "0"],
            "\"0\" is not a whole number of at least 1",
        ),
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn forget_node_needs_a_shared_metadata_store() {
    // The embedded store lives in one node's directory: nobody takes over.
    let out = std::process::Command::new(common::BIN)
        .args([
            "metadata",
            "forget-node",
            "node-a",
            "--lose-unuploaded-messages",
        ])
        .env_remove("STRATA_METADATA_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metadata.url is \"embedded\""), "{err}");
    // A config file that does not exist is named.
    let out = std::process::Command::new(common::BIN)
        .args([
            "metadata",
            "forget-node",
            "node-a",
            "--config",
            "/nonexistent.toml",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn key_rotate_and_revoke_act_on_the_key_named_not_the_signing_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    let created = ok(&cli(
        &url,
        &["key", "create", "--role", "publisher", "--json"],
        None,
    ));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let key = created["access_key"].as_str().unwrap().to_string();
    let rotated = ok(&cli(&url, &["key", "rotate", &key, "--json"], None));
    let rotated: serde_json::Value = serde_json::from_str(&rotated).unwrap();
    assert_eq!(rotated["access_key"], key.as_str());
    assert_ne!(rotated["secret_key"], created["secret_key"]);
    let revoked = ok(&cli(&url, &["key", "revoke", &key], None));
    assert!(revoked.contains(&format!("revoked {key}")), "{revoked}");
    // The admin key that signed them still works.
    let me = ok(&cli(&url, &["whoami"], None));
    assert!(!me.contains(&key), "{me}");
    let help = ok(&std::process::Command::new(common::BIN)
        .args(["key", "rotate", "--help"])
        .output()
        .unwrap());
    assert!(
        help.contains("<ACCESS_KEY>") && help.contains("--access-key"),
        "{help}"
    );
}

#[test]
fn produce_publishes_to_fifo_and_delay_topics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    for (name, kind) in [("orders", "fifo"), ("later", "delay")] {
        let args = ["topic", "create", name, "--queues", "2", "--type", kind];
        ok(&cli(&url, &args, None));
    }
    // A FIFO topic needs a message group; --message-group gives it.
    let refused = cli(&url, &["produce", "orders"], Some("a\n"));
    assert!(!refused.status.success());
    let produced = ok(&cli(
        &url,
        &["produce", "orders", "--message-group", "cart-1"],
        Some("a\nb\n"),
    ));
    let queues: Vec<&str> = produced
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(queues.len(), 2, "{produced}");
    assert_eq!(queues[0], queues[1], "one group, one queue: {produced}");

    // A DELAY topic needs a delivery time: --delay or --deliver-at.
    let scheduled = ok(&cli(
        &url,
        &["produce", "later", "--delay", "1h"],
        Some("x\n"),
    ));
    assert!(
        scheduled.starts_with("scheduled deliver_at_ms="),
        "{scheduled}"
    );
    // 30 days from now, written in UTC+01:00.
    let now_ms = strata_common::Clock::now_ms(&strata_common::SystemClock);
    let secs = now_ms as u64 / 1000 + 30 * 86_400;
    let local_secs = secs + 3600;
    let (days, rest) = (local_secs / 86_400, local_secs % 86_400);
    let local = format!(
        "{}T{:02}:{:02}:{:02}+01:00",
        civil_date(days),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    let utc_ms = secs * 1000;
    let at = ok(&cli(
        &url,
        &["produce", "later", "--deliver-at", &local],
        Some("y\n"),
    ));
    assert!(
        at.starts_with(&format!("scheduled deliver_at_ms={utc_ms} ")),
        "{local}: {at}"
    );
    let bad = cli(&url, &["produce", "later", "--delay", "soon"], Some("z\n"));
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("--delay") && said.contains("soon"), "{said}");
}

/// `consume --group` starts a group that never consumed a queue where the
/// group says (`start: latest`: after its creation), and says when the
/// group does not exist (a mistyped name made a new group silently).
#[test]
fn consume_with_a_group_starts_where_the_group_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    ok(&cli(
        &url,
        &["topic", "create", "feed", "--queues", "2"],
        None,
    ));
    ok(&cli(&url, &["produce", "feed"], Some("old-1\nold-2\n")));
    ok(&cli(
        &url,
        &["group", "create", "tail", "--start", "latest"],
        None,
    ));
    ok(&cli(
        &url,
        &["group", "create", "all", "--start", "earliest"],
        None,
    ));
    ok(&cli(&url, &["produce", "feed"], Some("new-1\n")));
    let bodies = |group: &str| -> (Vec<String>, String) {
        let out = cli(&url, &["consume", "feed", "--group", group, "--json"], None);
        let mut got: Vec<String> = json_lines(&ok(&out))
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_string())
            .collect();
        got.sort();
        (got, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(bodies("tail").0, ["new-1"]);
    assert_eq!(bodies("all").0, ["new-1", "old-1", "old-2"]);
    let (got, said) = bodies("tial");
    assert_eq!(got, ["new-1", "old-1", "old-2"]);
    assert!(said.contains("group tial does not exist"), "{said}");
}

/// A client command left running, its standard output piped to the test.
fn spawn_cli(url: &str, args: &[&str], stderr: std::process::Stdio) -> std::process::Child {
    let mut command = std::process::Command::new(common::BIN);
    if let Some(file) = common::credentials_file() {
        command.env("STRATA_CREDENTIALS_FILE", file);
    }
    command
        .args(args)
        .env("STRATA_SERVER", url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// `consume --follow --group` commits what it printed as it goes, and on
/// Ctrl-C or SIGTERM: it committed nothing, so every follow started over.
#[test]
#[allow(clippy::disallowed_methods)] // waits on a real client process
fn consume_follow_commits_what_it_printed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    ok(&cli(&url, &["topic", "create", "f", "--queues", "1"], None));
    ok(&cli(&url, &["produce", "f"], Some("one\ntwo\n")));
    ok(&cli(
        &url,
        &["group", "create", "gf", "--start", "earliest"],
        None,
    ));
    let mut child = spawn_cli(
        &url,
        &["consume", "f", "--group", "gf", "--follow", "--json"],
        std::process::Stdio::null(),
    );
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        lines.next().unwrap().unwrap();
    }
    // Printed while following: committed without waiting for the end.
    let committed = |url: &str| -> serde_json::Value {
        let out = ok(&cli(url, &["--json", "group", "describe", "gf"], None));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["offsets"][0]["offset"].clone()
    };
    let mut seen = serde_json::Value::Null;
    for _ in 0..100 {
        seen = committed(&url);
        if seen == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(seen, 2);
    ok(&cli(&url, &["produce", "f"], Some("three\n")));
    lines.next().unwrap().unwrap();
    // SIGTERM ends the follow with what it printed committed.
    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(committed(&url), 3);
}

/// `strata consume … | head -1`: the reader going away ends the CLI the
/// way it ends other Unix tools (SIGPIPE), not with a panic and its
/// backtrace.
#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let url = server.url.clone();
    ok(&cli(&url, &["topic", "create", "p", "--queues", "1"], None));
    ok(&cli(&url, &["produce", "p"], Some("one\n")));
    let mut child = spawn_cli(
        &url,
        &["consume", "p", "--from", "earliest", "--follow"],
        std::process::Stdio::piped(),
    );
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    lines.next().unwrap().unwrap();
    drop(lines);
    // Its next line goes to a pipe nobody reads.
    ok(&cli(&url, &["produce", "p"], Some("two\nthree\n")));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

/// The proleptic Gregorian date `days` after 1970-01-01, as YYYY-MM-DD
/// (Howard Hinnant's civil_from_days).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `consume --group` goes on from the oldest retained message when
/// retention removed what the group had not read (it failed with
/// OFFSET_OUT_OF_RANGE), and says what expired.
#[test]
#[allow(clippy::disallowed_methods)] // waits on a real server's retention
fn consume_with_a_group_goes_on_past_expired_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let env = common::tiny_tiering_env(&[("STRATA_RETENTION_CHECK_INTERVAL_MS", "100")]);
    let server = Server::start(dir.path(), &env);
    let url = server.url.clone();
    let args = [
        "topic",
        "create",
        "brief",
        "--queues",
        "1",
        "--retention",
        "1s",
    ];
    ok(&cli(&url, &args, None));
    ok(&cli(&url, &["produce", "brief"], Some("a\nb\nc\nd\n")));
    let commit = [
        "group", "commit", "readers", "--topic", "brief", "--queue", "0", "--offset", "1",
    ];
    ok(&cli(&url, &commit, None));
    // Until retention removed the four (uploaded, then expired).
    let mut first = 0;
    for _ in 0..200 {
        let described = ok(&cli(&url, &["--json", "topic", "describe", "brief"], None));
        let v: serde_json::Value = serde_json::from_str(&described).unwrap();
        first = v["queue_stats"][0]["first_offset"].as_u64().unwrap();
        if first == 4 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(first, 4, "the four messages never expired");
    ok(&cli(&url, &["produce", "brief"], Some("e\n")));

    let out = cli(&url, &["consume", "brief", "--group", "readers"], None);
    let printed = ok(&out);
    assert!(printed.contains('e') && !printed.contains('b'), "{printed}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("expired; going on from 4"), "{said}");
}
