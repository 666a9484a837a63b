//! The conformance suite every [`MetaStore`] backend must pass.
//!
//! It is public (not test-only) so that each backend, including future TiKV
//! and etcd ones in other crates, runs the very same checks:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conforms() {
//!     strata_metadata::conformance::run_all(my_store()).await;
//! }
//! ```
//!
//! Each check uses its own key prefix (`conf/<check>/`, plus keys starting
//! with `0xFF 0xFF` reserved for [`scan_prefix_edges`]), so all checks can
//! share one store. Failures panic with a message naming the backend. The
//! concurrency check spawns tokio tasks, so use a multi-threaded runtime.

use std::fmt::Debug;
use std::sync::Arc;

use crate::store::{self, Check, MetaError, MetaStore, Txn, TxnOutcome};

type Store = Arc<dyn MetaStore>;
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Runs every check in turn against `store`.
pub async fn run_all(store: Arc<dyn MetaStore>) {
    assert!(!store.backend_name().is_empty(), "backend_name is empty");
    get_missing_and_present(&store).await;
    put_overwrites(&store).await;
    delete_removes(&store).await;
    scan_order_bounds_and_limit(&store).await;
    scan_binary_keys(&store).await;
    scan_prefix_edges(&store).await;
    txn_all_or_nothing(&store).await;
    check_semantics(&store).await;
    mutations_apply_in_order(&store).await;
    empty_key_is_invalid(&store).await;
    zero_limit_is_invalid(&store).await;
    concurrent_conditional_increments(&store).await;
    concurrent_commits_behave_as_if_serial(&store).await;
    checks_fence_writes_to_other_keys(&store).await;
    compacting_history_keeps_current_values(&store).await;
}

/// Unwraps a store result, panicking with the backend and operation on error.
fn ok<T>(store: &Store, what: &str, result: Result<T, MetaError>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("[{}] {what}: unexpected error: {err}", store.backend_name()),
    }
}

/// Asserts equality with a message naming the backend and the check.
fn same<T: PartialEq + Debug>(store: &Store, what: &str, got: T, want: T) {
    assert!(
        got == want,
        "[{}] {what}: got {got:?}, want {want:?}",
        store.backend_name()
    );
}

fn pairs(items: &[(&[u8], &[u8])]) -> Pairs {
    items
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn key(prefix: &str, suffix: &[u8]) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(suffix);
    k
}

async fn put(store: &Store, k: &[u8], v: &[u8]) {
    ok(store, "put", store::put(store, k, v).await);
}

async fn get(store: &Store, k: &[u8]) -> Option<Vec<u8>> {
    ok(store, "get", store.get(k).await)
}

/// A missing key reads as None; a written key reads back its value.
pub async fn get_missing_and_present(store: &Store) {
    let k = key("conf/get/", b"k");
    same(store, "get missing", get(store, &k).await, None);
    put(store, &k, b"v").await;
    same(
        store,
        "get present",
        get(store, &k).await,
        Some(b"v".to_vec()),
    );
    same(
        store,
        "get other key",
        get(store, &key("conf/get/", b"k2")).await,
        None,
    );
}

/// Compacting the backend's history (twice, so a backend that compacts to
/// its previous call's point really compacts) leaves every current value,
/// and every deletion, as it was.
pub async fn compacting_history_keeps_current_values(store: &Store) {
    let (a, b) = (key("conf/hist/", b"a"), key("conf/hist/", b"b"));
    put(store, &a, b"1").await;
    put(store, &a, b"2").await;
    put(store, &b, b"x").await;
    ok(store, "delete", store::delete(store, b.clone()).await);
    ok(store, "compact history", store.compact_history().await);
    put(store, &a, b"3").await;
    ok(
        store,
        "compact history again",
        store.compact_history().await,
    );
    same(
        store,
        "value after compaction",
        get(store, &a).await,
        Some(b"3".to_vec()),
    );
    same(
        store,
        "deleted key after compaction",
        get(store, &b).await,
        None,
    );
    let listed = ok(
        store,
        "scan",
        store::scan_prefix(store, b"conf/hist/", 10).await,
    );
    same(store, "scan after compaction", listed, pairs(&[(&a, b"3")]));
}

/// A second put replaces the first value.
pub async fn put_overwrites(store: &Store) {
    let k = key("conf/put/", b"k");
    put(store, &k, b"one").await;
    put(store, &k, b"two").await;
    same(
        store,
        "overwrite",
        get(store, &k).await,
        Some(b"two".to_vec()),
    );
}

/// A delete removes the key; deleting a missing key is fine.
pub async fn delete_removes(store: &Store) {
    let k = key("conf/del/", b"k");
    put(store, &k, b"v").await;
    ok(store, "delete", store::delete(store, k.clone()).await);
    same(store, "get after delete", get(store, &k).await, None);
    ok(
        store,
        "delete missing",
        store::delete(store, k.clone()).await,
    );
    let listed = ok(
        store,
        "scan",
        store::scan_prefix(store, b"conf/del/", 10).await,
    );
    same(store, "scan after delete", listed, Vec::new());
}

/// Scans return keys ascending within [start, end), at most `limit` of them.
pub async fn scan_order_bounds_and_limit(store: &Store) {
    let p = "conf/scan/";
    for k in [b"d", b"b", b"e", b"a", b"c"] {
        put(store, &key(p, k), k).await;
    }
    let scan = |start: Vec<u8>, end: Vec<u8>, limit: usize| async move {
        ok(store, "scan", store.scan(&start, &end, limit).await)
    };
    let want = |ks: &[&[u8]]| -> Pairs { ks.iter().map(|k| (key(p, k), k.to_vec())).collect() };

    let all = scan(key(p, b""), store::prefix_end(p.as_bytes()), 100).await;
    same(
        store,
        "scan all ascending",
        all,
        want(&[b"a", b"b", b"c", b"d", b"e"]),
    );
    let bounded = scan(key(p, b"b"), key(p, b"d"), 100).await;
    same(store, "scan [b, d)", bounded, want(&[b"b", b"c"]));
    let between = scan(key(p, b"bb"), key(p, b"dd"), 100).await;
    same(store, "scan [bb, dd)", between, want(&[b"c", b"d"]));
    let limited = scan(key(p, b"a"), key(p, b"z"), 2).await;
    same(store, "scan limit 2", limited, want(&[b"a", b"b"]));
    let empty = scan(key(p, b"c"), key(p, b"c"), 10).await;
    same(store, "scan [c, c)", empty, Vec::new());
    let inverted = scan(key(p, b"d"), key(p, b"b"), 10).await;
    same(store, "scan inverted range", inverted, Vec::new());
}

/// Keys are raw bytes: 0x00 and 0xFF sort as unsigned bytes.
pub async fn scan_binary_keys(store: &Store) {
    let p = "conf/bin/";
    let suffixes: [&[u8]; 6] = [
        &[0xFF, 0xFF],
        &[0x00],
        &[0x7F],
        &[0xFF],
        &[0x00, 0x00],
        &[0x80, 0x00],
    ];
    for s in suffixes {
        put(store, &key(p, s), s).await;
    }
    let got = ok(
        store,
        "scan",
        store::scan_prefix(store, p.as_bytes(), 100).await,
    );
    let order: [&[u8]; 6] = [
        &[0x00],
        &[0x00, 0x00],
        &[0x7F],
        &[0x80, 0x00],
        &[0xFF],
        &[0xFF, 0xFF],
    ];
    let want: Pairs = order.iter().map(|s| (key(p, s), s.to_vec())).collect();
    same(store, "binary key order", got, want);
    same(
        store,
        "get key ending in 0x00",
        get(store, &key(p, &[0x00, 0x00])).await,
        Some(vec![0x00, 0x00]),
    );
    let upper = ok(
        store,
        "scan",
        store
            .scan(&key(p, &[0x80]), &key(p, &[0xFF, 0xFF]), 100)
            .await,
    );
    same(
        store,
        "scan up to 0xFF 0xFF exclusive",
        upper,
        vec![
            (key(p, &[0x80, 0x00]), vec![0x80, 0x00]),
            (key(p, &[0xFF]), vec![0xFF]),
        ],
    );
}

/// `scan_prefix` computes the right exclusive end, including after 0xFF
/// bytes and for all-0xFF prefixes (no upper bound).
pub async fn scan_prefix_edges(store: &Store) {
    let p = "conf/pfx/";
    let suffixes: [&[u8]; 6] = [b"a", b"a\xfe", b"a\xff", b"a\xff\x00", b"a\xff\xff", b"b"];
    for s in suffixes {
        put(store, &key(p, s), s).await;
    }
    let want = |ks: &[&[u8]]| -> Pairs { ks.iter().map(|k| (key(p, k), k.to_vec())).collect() };
    let under_a = ok(
        store,
        "scan_prefix",
        store::scan_prefix(store, &key(p, b"a"), 100).await,
    );
    same(
        store,
        "prefix a",
        under_a,
        want(&[b"a", b"a\xfe", b"a\xff", b"a\xff\x00", b"a\xff\xff"]),
    );
    let under_aff = ok(
        store,
        "scan_prefix",
        store::scan_prefix(store, &key(p, b"a\xff"), 100).await,
    );
    same(
        store,
        "prefix a 0xFF",
        under_aff,
        want(&[b"a\xff", b"a\xff\x00", b"a\xff\xff"]),
    );
    let limited = ok(
        store,
        "scan_prefix",
        store::scan_prefix(store, &key(p, b"a\xff"), 1).await,
    );
    same(store, "prefix a 0xFF limit 1", limited, want(&[b"a\xff"]));

    // All-0xFF prefix: the end is unbounded. Only this check writes keys
    // starting 0xFF 0xFF (or 0xFF 0xFE), so the result is exact.
    put(store, &[0xFF, 0xFE, 0xFF], b"below").await;
    put(store, &[0xFF, 0xFF], b"exact").await;
    put(store, &[0xFF, 0xFF, b'x'], b"x").await;
    put(store, &[0xFF, 0xFF, 0xFF, 0xFF], b"top").await;
    let top = ok(
        store,
        "scan_prefix",
        store::scan_prefix(store, &[0xFF, 0xFF], 100).await,
    );
    same(
        store,
        "prefix 0xFF 0xFF",
        top,
        pairs(&[
            (&[0xFF, 0xFF], b"exact"),
            (&[0xFF, 0xFF, b'x'], b"x"),
            (&[0xFF, 0xFF, 0xFF, 0xFF], b"top"),
        ]),
    );
    let unbounded = ok(store, "scan", store.scan(&[0xFF, 0xFE], b"", 100).await);
    same(store, "scan with empty (unbounded) end", unbounded.len(), 4);
}

/// When any check fails, the outcome names the first failing check and no
/// mutation is applied.
pub async fn txn_all_or_nothing(store: &Store) {
    let p = "conf/txn/";
    let (a, b, c) = (key(p, b"a"), key(p, b"b"), key(p, b"c"));
    put(store, &a, b"1").await;
    let txn = Txn::new()
        .check(Check::Present { key: a.clone() })
        .check(Check::Absent { key: a.clone() })
        .check(Check::Present { key: c.clone() })
        .put(b.clone(), b"written")
        .delete(a.clone());
    let outcome = ok(store, "commit", store.commit(txn).await);
    same(
        store,
        "first failed check",
        outcome,
        TxnOutcome::CheckFailed { index: 1 },
    );
    same(store, "no put after failure", get(store, &b).await, None);
    same(
        store,
        "no delete after failure",
        get(store, &a).await,
        Some(b"1".to_vec()),
    );

    let txn = Txn::new()
        .check(Check::Present { key: a.clone() })
        .put(b.clone(), b"written")
        .delete(a.clone());
    let outcome = ok(store, "commit", store.commit(txn).await);
    same(store, "passing txn", outcome, TxnOutcome::Committed);
    same(
        store,
        "put applied",
        get(store, &b).await,
        Some(b"written".to_vec()),
    );
    same(store, "delete applied", get(store, &a).await, None);

    let empty = ok(store, "commit empty txn", store.commit(Txn::new()).await);
    same(store, "empty txn", empty, TxnOutcome::Committed);
}

/// Absent, Present and ValueEquals against missing, present and changed keys.
pub async fn check_semantics(store: &Store) {
    let p = "conf/chk/";
    let (k, missing) = (key(p, b"k"), key(p, b"missing"));
    put(store, &k, b"v1").await;
    let cases: Vec<(&str, Check, bool)> = vec![
        (
            "Absent on missing",
            Check::Absent {
                key: missing.clone(),
            },
            true,
        ),
        ("Absent on present", Check::Absent { key: k.clone() }, false),
        (
            "Present on present",
            Check::Present { key: k.clone() },
            true,
        ),
        (
            "Present on missing",
            Check::Present {
                key: missing.clone(),
            },
            false,
        ),
        (
            "ValueEquals matching",
            Check::ValueEquals {
                key: k.clone(),
                value: b"v1".to_vec(),
            },
            true,
        ),
        (
            "ValueEquals different",
            Check::ValueEquals {
                key: k.clone(),
                value: b"v2".to_vec(),
            },
            false,
        ),
        (
            "ValueEquals prefix of value",
            Check::ValueEquals {
                key: k.clone(),
                value: b"v".to_vec(),
            },
            false,
        ),
        (
            "ValueEquals on missing",
            Check::ValueEquals {
                key: missing.clone(),
                value: Vec::new(),
            },
            false,
        ),
    ];
    for (name, check, holds) in cases {
        let outcome = ok(store, name, store.commit(Txn::new().check(check)).await);
        let want = if holds {
            TxnOutcome::Committed
        } else {
            TxnOutcome::CheckFailed { index: 0 }
        };
        same(store, name, outcome, want);
    }
    // An empty value is a present value, distinct from absence.
    let e = key(p, b"empty");
    put(store, &e, b"").await;
    same(
        store,
        "empty value readable",
        get(store, &e).await,
        Some(Vec::new()),
    );
    let outcome = ok(
        store,
        "commit",
        store
            .commit(Txn::new().check(Check::ValueEquals {
                key: e.clone(),
                value: Vec::new(),
            }))
            .await,
    );
    same(
        store,
        "ValueEquals empty value",
        outcome,
        TxnOutcome::Committed,
    );
    let outcome = ok(
        store,
        "commit",
        store
            .commit(Txn::new().check(Check::Absent { key: e }))
            .await,
    );
    same(
        store,
        "Absent on empty value",
        outcome,
        TxnOutcome::CheckFailed { index: 0 },
    );
}

/// Mutations in one txn apply in order: the last write to a key wins.
pub async fn mutations_apply_in_order(store: &Store) {
    let p = "conf/ord/";
    let (a, b) = (key(p, b"a"), key(p, b"b"));
    let txn = Txn::new()
        .put(a.clone(), b"first")
        .put(a.clone(), b"second")
        .put(b.clone(), b"gone")
        .delete(b.clone());
    same(
        store,
        "commit",
        ok(store, "commit", store.commit(txn).await),
        TxnOutcome::Committed,
    );
    same(
        store,
        "later put wins",
        get(store, &a).await,
        Some(b"second".to_vec()),
    );
    same(store, "put then delete", get(store, &b).await, None);
    let txn = Txn::new().delete(a.clone()).put(a.clone(), b"third");
    ok(store, "commit", store.commit(txn).await);
    same(
        store,
        "delete then put",
        get(store, &a).await,
        Some(b"third".to_vec()),
    );
}

fn assert_invalid<T: Debug>(store: &Store, what: &str, result: Result<T, MetaError>) {
    assert!(
        matches!(result, Err(MetaError::Invalid(_))),
        "[{}] {what}: want MetaError::Invalid, got {result:?}",
        store.backend_name()
    );
}

/// Empty keys are rejected everywhere, and a rejected txn writes nothing.
pub async fn empty_key_is_invalid(store: &Store) {
    let p = "conf/empty/";
    let k = key(p, b"k");
    assert_invalid(store, "get empty key", store.get(b"").await);
    let put_empty = Txn::new().put(k.clone(), b"v").put(Vec::new(), b"v");
    assert_invalid(store, "put empty key", store.commit(put_empty).await);
    assert_invalid(
        store,
        "delete empty key",
        store.commit(Txn::new().delete(Vec::new())).await,
    );
    let check_empty = Txn::new()
        .check(Check::Absent { key: Vec::new() })
        .put(k.clone(), b"v");
    assert_invalid(store, "check empty key", store.commit(check_empty).await);
    same(
        store,
        "invalid txn wrote nothing",
        get(store, &k).await,
        None,
    );
}

/// A scan limit of 0 is rejected.
pub async fn zero_limit_is_invalid(store: &Store) {
    assert_invalid(
        store,
        "scan limit 0",
        store.scan(b"conf/", b"conf0", 0).await,
    );
    assert_invalid(
        store,
        "scan_prefix limit 0",
        store::scan_prefix(store, b"conf/", 0).await,
    );
}

/// 8 tasks x 50 attempts each increment one counter with ValueEquals/Absent
/// checks. Every committed increment must be visible exactly once: the final
/// value equals the number of commits and the committed values are 1..=N.
pub async fn concurrent_conditional_increments(store: &Store) {
    const TASKS: usize = 8;
    const ATTEMPTS: usize = 50;
    let counter = key("conf/ctr/", b"counter");
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(store);
        let counter = counter.clone();
        handles.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for _ in 0..ATTEMPTS {
                let current = store.get(&counter).await?;
                let (check, next) = match current {
                    Some(raw) => {
                        let n = parse_counter(&raw)?;
                        (
                            Check::ValueEquals {
                                key: counter.clone(),
                                value: raw,
                            },
                            n + 1,
                        )
                    }
                    None => (
                        Check::Absent {
                            key: counter.clone(),
                        },
                        1,
                    ),
                };
                let txn = Txn::new()
                    .check(check)
                    .put(counter.clone(), next.to_string());
                if store.commit(txn).await? == TxnOutcome::Committed {
                    won.push(next);
                }
            }
            Ok::<_, MetaError>(won)
        }));
    }
    let mut committed = Vec::new();
    for handle in handles {
        match handle.await {
            Ok(result) => committed.extend(ok(store, "increment task", result)),
            Err(err) => panic!("[{}] increment task panicked: {err}", store.backend_name()),
        }
    }
    committed.sort_unstable();
    let total = committed.len() as u64;
    assert!(
        total > 0,
        "[{}] no increment ever committed",
        store.backend_name()
    );
    let final_value = match get(store, &counter).await {
        Some(raw) => ok(store, "parse counter", parse_counter(&raw)),
        None => panic!(
            "[{}] counter missing after increments",
            store.backend_name()
        ),
    };
    same(
        store,
        "counter equals successful commits",
        final_value,
        total,
    );
    same(
        store,
        "each value committed exactly once",
        committed,
        (1..=total).collect::<Vec<_>>(),
    );
}

fn parse_counter(raw: &[u8]) -> Result<u64, MetaError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt {
            key: "conf/ctr/counter".into(),
            reason: format!("not a decimal counter: {raw:?}"),
        })
}

/// Many commits at once (which a backend may group into one write): each
/// is decided as if alone, in some order. 64 independent creates all land;
/// of 64 creates of one key exactly one wins and the rest fail their check,
/// writing nothing; a failed commit in a group does not hold back others.
pub async fn concurrent_commits_behave_as_if_serial(store: &Store) {
    const N: usize = 64;
    let shared = key("conf/serial/", b"shared");
    let mut tasks = Vec::new();
    for i in 0..N {
        let store = Arc::clone(store);
        let own = key("conf/serial/own-", format!("{i:03}").as_bytes());
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = store
                .commit(
                    Txn::new()
                        .check(Check::Absent { key: own.clone() })
                        .put(own, b"x".to_vec()),
                )
                .await?;
            let claim = store
                .commit(
                    Txn::new()
                        .check(Check::Absent {
                            key: shared.clone(),
                        })
                        .put(shared, i.to_string())
                        .put(
                            key("conf/serial/claimed-", format!("{i:03}").as_bytes()),
                            b"y".to_vec(),
                        ),
                )
                .await?;
            Ok::<_, MetaError>((own, claim))
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (own, claim) = match task.await {
            Ok(result) => ok(store, "concurrent commit", result),
            Err(err) => panic!("[{}] commit task panicked: {err}", store.backend_name()),
        };
        same(store, "independent create", own, TxnOutcome::Committed);
        match claim {
            TxnOutcome::Committed => winners += 1,
            TxnOutcome::CheckFailed { index } => same(store, "failed check index", index, 0),
        }
    }
    same(store, "winners of one key", winners, 1);
    let owned = ok(
        store,
        "scan",
        store::scan_prefix(store, b"conf/serial/own-", 1000).await,
    );
    same(store, "independent creates stored", owned.len(), N);
    // A losing claim wrote nothing, not even its second key.
    let claimed = ok(
        store,
        "scan",
        store::scan_prefix(store, b"conf/serial/claimed-", 1000).await,
    );
    same(store, "claims stored", claimed.len(), 1);
}

/// A check fences writes to *other* keys (how a queue owner's epoch fences
/// its range and offset commits): of two commits that each check the
/// other's key absent and create their own, exactly one lands, however
/// they overlap. A backend with snapshot isolation alone lets both land
/// (write skew); it must treat checked keys as read-write conflicts.
pub async fn checks_fence_writes_to_other_keys(store: &Store) {
    const PAIRS: usize = 32;
    let mut tasks = Vec::new();
    for pair in 0..PAIRS {
        let a = key("conf/skew/a-", format!("{pair:03}").as_bytes());
        let b = key("conf/skew/b-", format!("{pair:03}").as_bytes());
        for (mine, other) in [(a.clone(), b.clone()), (b, a)] {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let outcome = store
                    .commit(
                        Txn::new()
                            .check(Check::Absent { key: other })
                            .put(mine, b"1".to_vec()),
                    )
                    .await?;
                Ok::<_, MetaError>((pair, outcome))
            }));
        }
    }
    let mut landed = vec![0usize; PAIRS];
    for task in tasks {
        let (pair, outcome) = match task.await {
            Ok(result) => ok(store, "fenced commit", result),
            Err(err) => panic!("[{}] commit task panicked: {err}", store.backend_name()),
        };
        if outcome == TxnOutcome::Committed {
            landed[pair] += 1;
        }
    }
    for (pair, n) in landed.iter().enumerate() {
        assert!(
            *n == 1,
            "[{}] pair {pair}: {n} of two mutually fenced commits landed",
            store.backend_name()
        );
    }
}

/// Two stores on one cluster under different namespaces (`a/`, `b/`) see
/// nothing of each other: not by key, not by scan, not through a check.
/// For backends that namespace their keys (etcd, TiKV); the two must be
/// empty to begin with.
pub async fn namespaces_are_disjoint(a: &Store, b: &Store) {
    put(a, b"k", b"a").await;
    same(b, "get across namespaces", get(b, b"k").await, None);
    let seen = ok(b, "scan", b.scan(b"", b"", 100).await);
    same(b, "scan across namespaces", seen, Vec::new());
    let outcome = ok(
        b,
        "commit",
        b.commit(
            Txn::new()
                .check(Check::Absent { key: b"k".to_vec() })
                .put("k", "b"),
        )
        .await,
    );
    same(b, "check across namespaces", outcome, TxnOutcome::Committed);
    same(a, "own value kept", get(a, b"k").await, Some(b"a".to_vec()));
}
