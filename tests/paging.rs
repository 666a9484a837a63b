//! `strata` turns transparent huge pages off for itself: with them, fresh
//! memory is zeroed 2 MiB at a time on first touch, which cost a tenth of
//! a publishing node's CPU (docs/benchmarks.md).

mod common;

use common::Server;

#[test]
fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        eprintln!("SKIPPED: this kernel does not report THP_enabled");
        return;
    };
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    server.stop();
}
