//! The TiKV backend against a real TiKV cluster: the shared conformance
//! suite and namespaces. Built with `--features tikv`; runs when
//! `STRATA_TEST_TIKV_PD=host:port[,host:port...]` names PD endpoints (no
//! TiKV or PD binary is installable from this project's registries, so CI
//! only compiles it; `docs/architecture.md` says how to run it against
//! `tiup playground`), and says why it skipped otherwise.
#![cfg(feature = "tikv")]

use std::sync::Arc;

use strata_metadata::store::MetaStore;
use strata_metadata::{TikvAddress, TikvStore, conformance};

fn pd_endpoints() -> Option<String> {
    match std::env::var("STRATA_TEST_TIKV_PD") {
        Ok(pd) if !pd.trim().is_empty() => Some(pd),
        _ => {
            eprintln!(
                "SKIPPED: STRATA_TEST_TIKV_PD not set (PD endpoints of a TiKV cluster, e.g. from `tiup playground`)"
            );
            None
        }
    }
}

async fn connect(pd: &str, test: &str) -> Arc<TikvStore> {
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map_or(0, |d| d.as_nanos());
    let url = format!(
        "tikv://{pd}/strata-test/{test}/{}-{nanos}",
        std::process::id()
    );
    let address = TikvAddress::parse(&url).expect("test URL parses");
    TikvStore::connect(&address).await.expect("TiKV connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tikv_conforms() {
    let Some(pd) = pd_endpoints() else { return };
    conformance::run_all(connect(&pd, "conformance").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_do_not_see_each_other() {
    let Some(pd) = pd_endpoints() else { return };
    let a: Arc<dyn MetaStore> = connect(&pd, "ns-a").await;
    let b: Arc<dyn MetaStore> = connect(&pd, "ns-b").await;
    conformance::namespaces_are_disjoint(&a, &b).await;
}

#[tokio::test]
async fn unreachable_pd_is_a_clear_error() {
    // Always runs: nothing listens on port 1.
    let address = TikvAddress::parse("tikv://127.0.0.1:1/strata").unwrap();
    let e = TikvStore::connect(&address).await.unwrap_err().to_string();
    assert!(e.contains("TiKV (PD 127.0.0.1:1)"), "{e}");
}
