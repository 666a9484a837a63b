//! One behavioural suite that every backend must pass.
//!
//! Strata relies on a handful of object-store guarantees (read-your-writes,
//! exact ranges, sorted prefix listing, idempotent delete). Running the same
//! checks against memory, local disk and a real S3 server keeps the backends
//! interchangeable. Each check writes under its own random sub-prefix and
//! cleans up, so runs can share a bucket.
//!
//! The checks panic on the first violation, like `assert!`, with the backend
//! description in the message.

use bytes::Bytes;
use futures::future::join_all;

use crate::{ObjectError, Objects};

/// Runs every check in turn.
pub async fn run_all(objects: &Objects) {
    put_get_round_trip(objects).await;
    put_parts_is_one_object(objects).await;
    overwrite(objects).await;
    get_range(objects).await;
    head(objects).await;
    list_by_prefix(objects).await;
    delete_is_idempotent(objects).await;
    concurrent_puts_and_gets(objects).await;
    nested_keys(objects).await;
}

/// Empty, small and 8 MiB objects come back byte for byte.
pub async fn put_get_round_trip(objects: &Objects) {
    let base = scratch("round-trip");
    let mut big = vec![0u8; 8 * 1024 * 1024];
    fastrand::fill(&mut big);
    let cases = [
        ("empty", Bytes::new()),
        ("small", Bytes::from_static(b"hello strata")),
        ("big", Bytes::from(big)),
    ];
    for (name, data) in &cases {
        let key = format!("{base}/{name}");
        ok(objects, "put", objects.put(&key, data.clone()).await);
        let got = ok(objects, "get", objects.get(&key).await);
        check(
            objects,
            got == *data,
            &format!("{key}: got {} bytes back, put {}", got.len(), data.len()),
        );
    }
    cleanup(objects, &base).await;
}

/// An object put in parts (as the compactor writes them: many chunks,
/// some empty, of uneven sizes) reads back as their concatenation, whole
/// and in ranges across the seams between parts.
pub async fn put_parts_is_one_object(objects: &Objects) {
    let key = format!("{}/obj", scratch("parts"));
    let sizes = [1, 0, 65_536, 7, 3 * 1024 * 1024 + 5, 0, 1_000_003];
    let parts: Vec<Bytes> = sizes
        .iter()
        .map(|&n| {
            let mut part = vec![0u8; n];
            fastrand::fill(&mut part);
            Bytes::from(part)
        })
        .collect();
    let whole = parts.concat();
    ok(objects, "put", objects.put_parts(&key, parts).await);
    let got = ok(objects, "get", objects.get(&key).await);
    check(
        objects,
        got.as_ref() == whole.as_slice(),
        &format!(
            "{key}: got {} bytes back, put {} in parts",
            got.len(),
            whole.len()
        ),
    );
    let seam = (1 + 65_536 + 7) as u64;
    let range = seam - 3..seam + 10;
    let got = ok(
        objects,
        "get_range",
        objects.get_range(&key, range.clone()).await,
    );
    check(
        objects,
        got.as_ref() == &whole[range.start as usize..range.end as usize],
        &format!("{key}: range {range:?} across a seam differs"),
    );
    ok(objects, "delete", objects.delete(&key).await);
}

/// A second put replaces the first, even with a shorter body.
pub async fn overwrite(objects: &Objects) {
    let key = format!("{}/obj", scratch("overwrite"));
    ok(
        objects,
        "put",
        objects
            .put(&key, Bytes::from_static(b"first version, longer"))
            .await,
    );
    ok(
        objects,
        "put",
        objects.put(&key, Bytes::from_static(b"second")).await,
    );
    let got = ok(objects, "get", objects.get(&key).await);
    check(
        objects,
        got.as_ref() == b"second",
        &format!("{key}: overwrite returned {got:?}"),
    );
    ok(objects, "delete", objects.delete(&key).await);
}

/// Ranges at the start, middle and end, and the whole object, are exact.
pub async fn get_range(objects: &Objects) {
    let key = format!("{}/obj", scratch("range"));
    let data: Bytes = (0..1000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    ok(objects, "put", objects.put(&key, data.clone()).await);
    for range in [0..10, 400..600, 990..1000, 0..1000] {
        let got = ok(
            objects,
            "get_range",
            objects.get_range(&key, range.clone()).await,
        );
        let want = data.slice(range.start as usize..range.end as usize);
        check(
            objects,
            got == want,
            &format!("{key}: range {range:?} returned {} wrong bytes", got.len()),
        );
    }
    ok(objects, "delete", objects.delete(&key).await);
}

/// Head reports size for a present object and `None` for a missing one.
pub async fn head(objects: &Objects) {
    let base = scratch("head");
    let key = format!("{base}/present");
    ok(
        objects,
        "put",
        objects.put(&key, Bytes::from_static(b"12345")).await,
    );
    let info = ok(objects, "head", objects.head(&key).await);
    let info = info.unwrap_or_else(|| {
        fail(
            objects,
            &format!("{key}: head of a present object returned None"),
        )
    });
    check(
        objects,
        info.key == key && info.size == 5,
        &format!("{key}: head returned {info:?}"),
    );
    check(
        objects,
        info.last_modified_ms > 0,
        &format!("{key}: no modification time in {info:?}"),
    );
    let missing = ok(
        objects,
        "head",
        objects.head(&format!("{base}/missing")).await,
    );
    check(
        objects,
        missing.is_none(),
        &format!("head of a missing object returned {missing:?}"),
    );
    ok(objects, "delete", objects.delete(&key).await);
}

/// Listing is by string prefix, sorted, excludes other prefixes, and
/// reports sizes.
pub async fn list_by_prefix(objects: &Objects) {
    let base = scratch("list");
    let layout = [
        ("list/b/c", 3usize),
        ("list/a", 1),
        ("list/ab", 2),
        ("listing", 4),
        ("other/x", 5),
    ];
    for (name, size) in layout {
        ok(
            objects,
            "put",
            objects
                .put(&format!("{base}/{name}"), Bytes::from(vec![7u8; size]))
                .await,
        );
    }
    let listed =
        |v: Vec<crate::ObjectInfo>| v.into_iter().map(|i| (i.key, i.size)).collect::<Vec<_>>();
    let expect = |names: &[(&str, u64)]| {
        names
            .iter()
            .map(|(n, s)| (format!("{base}/{n}"), *s))
            .collect::<Vec<_>>()
    };

    let got = listed(ok(
        objects,
        "list",
        objects.list(&format!("{base}/list/")).await,
    ));
    let want = expect(&[("list/a", 1), ("list/ab", 2), ("list/b/c", 3)]);
    check(
        objects,
        got == want,
        &format!("list {base}/list/: got {got:?}, want {want:?}"),
    );

    let got = listed(ok(
        objects,
        "list",
        objects.list(&format!("{base}/list/a")).await,
    ));
    let want = expect(&[("list/a", 1), ("list/ab", 2)]);
    check(
        objects,
        got == want,
        &format!("list {base}/list/a: got {got:?}, want {want:?}"),
    );

    let got = listed(ok(
        objects,
        "list",
        objects.list(&format!("{base}/nothing/")).await,
    ));
    check(
        objects,
        got.is_empty(),
        &format!("list of an empty prefix returned {got:?}"),
    );

    cleanup(objects, &base).await;
}

/// Deleting twice succeeds; the object is then gone.
pub async fn delete_is_idempotent(objects: &Objects) {
    let key = format!("{}/obj", scratch("delete"));
    ok(
        objects,
        "put",
        objects.put(&key, Bytes::from_static(b"x")).await,
    );
    ok(objects, "delete", objects.delete(&key).await);
    ok(objects, "delete again", objects.delete(&key).await);
    match objects.get(&key).await {
        Err(ObjectError::NotFound { .. }) => {}
        other => fail(
            objects,
            &format!("{key}: get after delete returned {other:?}"),
        ),
    }
}

/// 16 puts then 16 gets in flight at once all see their own data.
pub async fn concurrent_puts_and_gets(objects: &Objects) {
    let base = scratch("concurrent");
    let body = |i: usize| Bytes::from(format!("object {i} ").repeat(i + 1));
    let puts = (0..16).map(|i| {
        let key = format!("{base}/{i:02}");
        async move { objects.put(&key, body(i)).await }
    });
    for result in join_all(puts).await {
        ok(objects, "concurrent put", result);
    }
    let gets = (0..16).map(|i| {
        let key = format!("{base}/{i:02}");
        async move { (i, objects.get(&key).await) }
    });
    for (i, result) in join_all(gets).await {
        let got = ok(objects, "concurrent get", result);
        check(
            objects,
            got == body(i),
            &format!("{base}/{i:02}: wrong data"),
        );
    }
    cleanup(objects, &base).await;
}

/// Deeply nested keys work for put, get, head and list.
pub async fn nested_keys(objects: &Objects) {
    let base = scratch("nested");
    let key = format!("{base}/a/b/c/d/e.seg");
    ok(
        objects,
        "put",
        objects.put(&key, Bytes::from_static(b"deep")).await,
    );
    let got = ok(objects, "get", objects.get(&key).await);
    check(
        objects,
        got.as_ref() == b"deep",
        &format!("{key}: got {got:?}"),
    );
    let present = ok(objects, "head", objects.head(&key).await).is_some();
    check(objects, present, &format!("{key}: head returned None"));
    let listed = ok(objects, "list", objects.list(&format!("{base}/a/b")).await);
    check(
        objects,
        listed.len() == 1 && listed[0].key == key,
        &format!("list {base}/a/b returned {listed:?}"),
    );
    cleanup(objects, &base).await;
}

/// A fresh sub-prefix per check and run, so concurrent runs never collide.
#[allow(clippy::disallowed_methods)] // a test harness: real randomness is the point
fn scratch(check: &str) -> String {
    format!("conformance/{:016x}/{check}", fastrand::u64(..))
}

async fn cleanup(objects: &Objects, base: &str) {
    let listed = ok(
        objects,
        "list for cleanup",
        objects.list(&format!("{base}/")).await,
    );
    for info in listed {
        ok(
            objects,
            "delete for cleanup",
            objects.delete(&info.key).await,
        );
    }
}

fn ok<T>(objects: &Objects, what: &str, result: Result<T, ObjectError>) -> T {
    result.unwrap_or_else(|e| fail(objects, &format!("{what} failed: {e}")))
}

fn check(objects: &Objects, condition: bool, message: &str) {
    if !condition {
        fail(objects, message);
    }
}

fn fail(objects: &Objects, message: &str) -> ! {
    panic!(
        "object store conformance failure on {}: {message}",
        objects.describe()
    )
}
