//! The conformance suite every [`BlobStore`] backend runs (feature `testing`).
//!
//! [`run_all`] takes an empty store and checks sizes, ranges, digest mismatches, offsets,
//! aborts, concurrency, listing, deletion and sha512; [`model_check`] runs random operation
//! sequences against fresh stores and compares them with a simple model. Each check panics
//! with a message naming what broke.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! wharf_store::testing::run_all(&wharf_store::MemoryStore::new()).await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bytes::Bytes;
use futures_util::TryStreamExt;
use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use wharf_types::{Algorithm, Digest};

use crate::{BlobStore, Error, Storage, UploadId, Write, from_chunks, single};

const MIB: usize = 1024 * 1024;

/// Deterministic content of `len` bytes, different for each `seed`.
pub fn content(seed: u64, len: usize) -> Bytes {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

/// Splits `data` into pieces of `piece` bytes, as a network body arrives.
pub fn pieces(data: &Bytes, piece: usize) -> Vec<Bytes> {
    (0..data.len()).step_by(piece.max(1)).map(|i| data.slice(i..(i + piece).min(data.len()))).collect()
}

/// Every check, on an empty store. Leaves the store holding only what the checks committed
/// (and then compares `list` with exactly that).
pub async fn run_all(store: &dyn BlobStore) {
    let mut committed = BTreeSet::new();
    committed.extend(sizes(store).await);
    committed.extend(sessions(store).await);
    committed.extend(ranges(store).await);
    digest_mismatch(store).await;
    wrong_offset(store).await;
    aborts(store).await;
    committed.extend(concurrent_puts(store).await);
    committed.extend(sha512(store).await);
    deletes(store, &mut committed).await;
    let listed: BTreeSet<Digest> = store.list().try_collect().await.expect("list");
    assert_eq!(listed, committed, "list must yield exactly the committed blobs");
}

async fn check_blob(store: &dyn BlobStore, digest: &Digest, data: &Bytes) {
    let info = store.stat(digest).await.expect("stat").unwrap_or_else(|| panic!("{digest} not visible"));
    assert_eq!(info.size, data.len() as u64, "size of {digest}");
    let read = store.read_all(digest).await.expect("read");
    assert!(read == *data, "content of {digest} differs ({} vs {} bytes)", read.len(), data.len());
    digest.verify(&read).expect("stored bytes verify");
}

/// Sizes 0, 1, 5 MiB − 1, 5 MiB, 5 MiB + 1 and 64 MiB through `put`, in network-sized
/// pieces.
pub async fn sizes(store: &dyn BlobStore) -> Vec<Digest> {
    let mut out = Vec::new();
    for (seed, len) in [(1, 0), (2, 1), (3, 5 * MIB - 1), (4, 5 * MIB), (5, 5 * MIB + 1), (6, 64 * MIB)] {
        let data = content(seed, len);
        let digest = Digest::sha256(&data);
        let info = store.put(&digest, from_chunks(pieces(&data, 64 * 1024))).await.expect("put");
        assert_eq!(info.size, len as u64);
        check_blob(store, &digest, &data).await;
        // Putting the same blob again is harmless.
        store.put_bytes(&digest, data.clone()).await.expect("second put");
        check_blob(store, &digest, &data).await;
        out.push(digest);
    }
    out
}

/// Upload sessions: several appends of uneven sizes (22 + 20 bytes as the conformance suite
/// sends, and 5 MiB ± 1), status after each, commit.
pub async fn sessions(store: &dyn BlobStore) -> Vec<Digest> {
    let mut out = Vec::new();
    for (seed, splits) in [(10, vec![22, 20]), (11, vec![5 * MIB - 1, 1, 5 * MIB + 1, 3]), (12, vec![0, 7])] {
        let total: usize = splits.iter().sum();
        let data = content(seed, total);
        let digest = Digest::sha256(&data);
        let id = store.begin().await.expect("begin");
        assert_eq!(store.status(&id).await.expect("status"), 0);
        let mut offset = 0;
        for len in splits {
            let piece = data.slice(offset..offset + len);
            let size =
                store.append(&id, offset as u64, from_chunks(pieces(&piece, 4096))).await.expect("append");
            offset += len;
            assert_eq!(size, offset as u64, "size after append");
            assert_eq!(store.status(&id).await.expect("status"), offset as u64);
            assert!(
                store.stat(&digest).await.expect("stat").is_none() || seed == 12,
                "visible before commit"
            );
        }
        let info = store.commit(&id, &digest).await.expect("commit");
        assert_eq!(info.size, total as u64);
        check_blob(store, &digest, &data).await;
        assert!(
            matches!(store.status(&id).await, Err(Error::UploadNotFound { .. })),
            "session outlives commit"
        );
        out.push(digest);
    }
    out
}

/// Ranges: first byte, last byte, a suffix, the middle; beyond the end and empty ranges fail.
pub async fn ranges(store: &dyn BlobStore) -> Vec<Digest> {
    let data = content(20, 2048);
    let digest = Digest::sha256(&data);
    store.put_bytes(&digest, data.clone()).await.expect("put");
    for range in [0..1, 2047..2048, 1548..2048, 500..1500, 0..2048] {
        let got = store.get(&digest, Some(range.clone())).await.expect("range");
        assert_eq!((got.size, got.range.clone()), (2048, range.clone()));
        let bytes = got.bytes().await.expect("read");
        #[allow(clippy::cast_possible_truncation)]
        let want = data.slice(range.start as usize..range.end as usize);
        assert_eq!(bytes, want, "range {range:?}");
    }
    for bad in [2000..2049, 2048..2049, 5000..10000, 10..10] {
        let err = store.get(&digest, Some(bad.clone())).await.expect_err("bad range");
        assert!(matches!(err, Error::InvalidRange { .. }), "{bad:?}: {err}");
    }
    let empty = Digest::sha256(b"");
    store.put_bytes(&empty, Bytes::new()).await.expect("empty");
    assert!(store.get(&empty, Some(0..1)).await.is_err(), "a range of an empty blob");
    let missing = Digest::sha256(b"never stored");
    assert!(matches!(store.get(&missing, None).await, Err(Error::BlobNotFound { .. })));
    assert!(store.stat(&missing).await.expect("stat").is_none());
    vec![digest, empty]
}

/// A wrong digest is refused and nothing becomes visible, through `put` and through `commit`.
pub async fn digest_mismatch(store: &dyn BlobStore) {
    for len in [10, 6 * MIB] {
        let data = content(30, len);
        let claimed = Digest::sha256(b"something else");
        let err = store.put(&claimed, from_chunks(pieces(&data, 64 * 1024))).await.expect_err("mismatch");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(store.stat(&claimed).await.expect("stat").is_none(), "mismatching put visible");
        assert!(
            store.stat(&Digest::sha256(&data)).await.expect("stat").is_none(),
            "stored under its real digest"
        );

        let id = store.begin().await.expect("begin");
        store.append(&id, 0, single(data.clone())).await.expect("append");
        let err = store.commit(&id, &claimed).await.expect_err("mismatch");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(store.stat(&claimed).await.expect("stat").is_none(), "mismatching commit visible");
        assert!(
            matches!(store.status(&id).await, Err(Error::UploadNotFound { .. })),
            "session outlives a failed commit"
        );
    }
    // A broken input stream stores nothing.
    let data = content(31, 1000);
    let digest = Digest::sha256(&data);
    let broken = futures_util::stream::iter(vec![
        Ok(data.slice(..500)),
        Err(std::io::Error::other("connection reset")),
    ]);
    let err = store.put(&digest, Box::pin(broken)).await.expect_err("broken input");
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert!(store.stat(&digest).await.expect("stat").is_none());
}

/// Appends must start where the session ends; a refused append changes nothing.
pub async fn wrong_offset(store: &dyn BlobStore) {
    let id = store.begin().await.expect("begin");
    let err = store.append(&id, 5, single(Bytes::from_static(b"abc"))).await.expect_err("ahead");
    assert!(matches!(err, Error::WrongOffset { offset: 5, size: 0, .. }), "{err}");
    store.append(&id, 0, single(Bytes::from_static(b"0123456789"))).await.expect("append");
    for bad in [0, 9, 11] {
        let err = store.append(&id, bad, single(Bytes::from_static(b"x"))).await.expect_err("wrong offset");
        assert!(matches!(err, Error::WrongOffset { size: 10, .. }), "{err}");
    }
    // A broken append adds nothing.
    let broken =
        futures_util::stream::iter(vec![Ok(Bytes::from_static(b"ab")), Err(std::io::Error::other("reset"))]);
    assert!(store.append(&id, 10, Box::pin(broken)).await.is_err());
    assert_eq!(store.status(&id).await.expect("status"), 10);
    store.append(&id, 10, single(Bytes::from_static(b"ab"))).await.expect("append after a failure");
    store.abort(&id).await.expect("abort");
    let unknown = UploadId::random();
    assert!(matches!(
        store.append(&unknown, 0, single(Bytes::new())).await,
        Err(Error::UploadNotFound { .. })
    ));
}

/// Abort leaves nothing: no session, no blob.
pub async fn aborts(store: &dyn BlobStore) {
    let data = content(40, 3000);
    let digest = Digest::sha256(&data);
    let id = store.begin().await.expect("begin");
    store.append(&id, 0, single(data.clone())).await.expect("append");
    store.abort(&id).await.expect("abort");
    assert!(matches!(store.status(&id).await, Err(Error::UploadNotFound { .. })));
    assert!(matches!(store.commit(&id, &digest).await, Err(Error::UploadNotFound { .. })));
    assert!(matches!(store.abort(&id).await, Err(Error::UploadNotFound { .. })));
    assert!(store.stat(&digest).await.expect("stat").is_none());
}

/// 32 concurrent puts of one blob, and of 32 different blobs.
pub async fn concurrent_puts(store: &dyn BlobStore) -> Vec<Digest> {
    let same = content(50, 256 * 1024);
    let same_digest = Digest::sha256(&same);
    let results = join_all((0..32).map(|_| store.put(&same_digest, from_chunks(pieces(&same, 8192))))).await;
    for r in results {
        r.expect("concurrent put of the same blob");
    }
    check_blob(store, &same_digest, &same).await;
    let blobs: Vec<_> = (0..32).map(|i| content(100 + i, 10_000 + usize::try_from(i).unwrap_or(0))).collect();
    let digests: Vec<_> = blobs.iter().map(|b| Digest::sha256(b)).collect();
    let results =
        join_all(blobs.iter().zip(&digests).map(|(b, d)| store.put(d, from_chunks(pieces(b, 1000))))).await;
    for r in results {
        r.expect("concurrent put");
    }
    for (b, d) in blobs.iter().zip(&digests) {
        check_blob(store, d, b).await;
    }
    let mut out = digests;
    out.push(same_digest);
    out
}

/// sha512-addressed blobs, through `put` and a session.
pub async fn sha512(store: &dyn BlobStore) -> Vec<Digest> {
    let data = content(60, 100_000);
    let digest = Digest::compute(Algorithm::Sha512, &data);
    store.put(&digest, from_chunks(pieces(&data, 7000))).await.expect("put sha512");
    check_blob(store, &digest, &data).await;
    let other = content(61, 5000);
    let other_digest = Digest::compute(Algorithm::Sha512, &other);
    let id = store.begin().await.expect("begin");
    store.append(&id, 0, single(other.slice(..1000))).await.expect("append");
    store.append(&id, 1000, single(other.slice(1000..))).await.expect("append");
    store.commit(&id, &other_digest).await.expect("commit sha512");
    check_blob(store, &other_digest, &other).await;
    // The sha256 digest of the same bytes names a different blob.
    assert!(store.stat(&Digest::sha256(&data)).await.expect("stat").is_none());
    vec![digest, other_digest]
}

/// Delete removes a blob at once; deleting it again says so.
pub async fn deletes(store: &dyn BlobStore, committed: &mut BTreeSet<Digest>) {
    let data = content(70, 4321);
    let digest = Digest::sha256(&data);
    store.put_bytes(&digest, data).await.expect("put");
    assert!(store.delete(&digest).await.expect("delete"));
    assert!(store.stat(&digest).await.expect("stat").is_none(), "visible after delete");
    assert!(matches!(store.get(&digest, None).await, Err(Error::BlobNotFound { .. })));
    assert!(!store.delete(&digest).await.expect("second delete"));
    committed.remove(&digest);
}

#[derive(Clone, Debug)]
enum Op {
    Put { blob: usize, honest: bool },
    Delete { blob: usize },
    Begin,
    Append { session: usize, blob: usize, skew: i8 },
    Commit { session: usize, blob: usize },
    Abort { session: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, prop::bool::weighted(0.8)).prop_map(|(blob, honest)| Op::Put { blob, honest }),
        (0..6usize).prop_map(|blob| Op::Delete { blob }),
        Just(Op::Begin),
        (0..4usize, 0..6usize, prop::sample::select(vec![0i8, 0, 0, -1, 1]))
            .prop_map(|(session, blob, skew)| Op::Append { session, blob, skew }),
        (0..4usize, 0..6usize).prop_map(|(session, blob)| Op::Commit { session, blob }),
        (0..4usize).prop_map(|session| Op::Abort { session }),
    ]
}

/// Random operation sequences against fresh stores from `make`, compared with a model
/// (a map of blobs and a list of sessions). Runs `cases` sequences on `runtime`.
pub fn model_check<S, F, Fut>(runtime: &tokio::runtime::Runtime, cases: u32, make: F)
where
    S: BlobStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    let pool: Vec<Bytes> = (0..6)
        .map(|i| content(200 + i, [0, 1, 33, 4096, 70_000, 5][usize::try_from(i).unwrap_or(0)]))
        .collect();
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(op(), 1..24), |ops| {
            runtime.block_on(async {
                let store = make().await;
                run_model(&store, &pool, &ops).await;
            });
            Ok(())
        })
        .unwrap_or_else(|e| panic!("model check failed: {e}"));
}

async fn run_model(store: &dyn BlobStore, pool: &[Bytes], ops: &[Op]) {
    let mut blobs: BTreeMap<Digest, Bytes> = BTreeMap::new();
    let mut sessions: Vec<Option<(UploadId, Vec<u8>)>> = Vec::new();
    for op in ops {
        match op.clone() {
            Op::Put { blob, honest } => {
                let data = pool[blob].clone();
                let digest = if honest { Digest::sha256(&data) } else { Digest::sha256(b"lie") };
                let result = store.put(&digest, from_chunks(pieces(&data, 1000))).await;
                assert_eq!(result.is_ok(), honest || data.as_ref() == b"lie", "{op:?}");
                if result.is_ok() {
                    blobs.insert(digest, data);
                }
            }
            Op::Delete { blob } => {
                let digest = Digest::sha256(&pool[blob]);
                let was = blobs.remove(&digest).is_some();
                assert_eq!(store.delete(&digest).await.expect("delete"), was, "{op:?}");
            }
            Op::Begin => sessions.push(Some((store.begin().await.expect("begin"), Vec::new()))),
            Op::Append { session, blob, skew } => {
                let Some(Some((id, held))) = sessions.get_mut(session) else {
                    continue;
                };
                let offset = (held.len() as u64).saturating_add_signed(i64::from(skew));
                let result = store.append(id, offset, single(pool[blob].clone())).await;
                if offset == held.len() as u64 {
                    held.extend_from_slice(&pool[blob]);
                    assert_eq!(result.expect("append"), held.len() as u64, "{op:?}");
                } else {
                    assert!(matches!(result, Err(Error::WrongOffset { .. })), "{op:?}: {result:?}");
                }
                assert_eq!(store.status(id).await.expect("status"), held.len() as u64);
            }
            Op::Commit { session, blob } => {
                let Some(slot) = sessions.get_mut(session) else {
                    continue;
                };
                let Some((id, held)) = slot.take() else {
                    continue;
                };
                // Claim the session's own digest, or the digest of a pool blob.
                let honest = Digest::sha256(&held);
                let claimed = if blob % 2 == 0 { honest.clone() } else { Digest::sha256(&pool[blob]) };
                let result = store.commit(&id, &claimed).await;
                if claimed == honest {
                    result.expect("commit");
                    blobs.insert(honest, Bytes::from(held));
                } else {
                    assert!(matches!(result, Err(Error::DigestMismatch { .. })), "{op:?}");
                }
                assert!(store.status(&id).await.is_err(), "session outlives commit");
            }
            Op::Abort { session } => {
                let Some(slot) = sessions.get_mut(session) else {
                    continue;
                };
                let Some((id, _)) = slot.take() else { continue };
                store.abort(&id).await.expect("abort");
            }
        }
        let listed: BTreeSet<Digest> = store.list().try_collect().await.expect("list");
        assert_eq!(listed, blobs.keys().cloned().collect::<BTreeSet<_>>(), "after {op:?}");
    }
    for (digest, data) in &blobs {
        check_blob(store, digest, data).await;
    }
}

/// The `MetaStore` checks, on an empty store: set, replace, get, remove, sorted prefix
/// listing across nested keys, refusal of unsafe keys, and `write_steps` batches (all
/// visible when the call returns; a bad key or blob anywhere writes nothing).
pub async fn meta_all(store: &dyn Storage) {
    assert_eq!(store.get_meta("a/b").await.expect("get"), None);
    store.set_meta("a/b", Bytes::from_static(b"1")).await.expect("set");
    store.set_meta("a/b", Bytes::from_static(b"2")).await.expect("replace");
    assert_eq!(store.get_meta("a/b").await.expect("get").as_deref(), Some(&b"2"[..]));
    for key in ["a/c/d", "a/c/e", "ab/x", "z"] {
        store.set_meta(key, Bytes::from(key.to_owned())).await.expect("set");
    }
    store.set_meta("a/empty", Bytes::new()).await.expect("empty value");
    assert_eq!(store.get_meta("a/empty").await.expect("get").as_deref(), Some(&b""[..]));
    assert_eq!(store.list_meta("a/").await.expect("keys"), ["a/b", "a/c/d", "a/c/e", "a/empty"]);
    assert_eq!(store.list_meta("a/c/").await.expect("keys"), ["a/c/d", "a/c/e"]);
    assert!(store.list_meta("nothing/").await.expect("keys").is_empty());
    assert!(store.remove_meta("a/c/d").await.expect("remove"));
    assert!(!store.remove_meta("a/c/d").await.expect("remove again"));
    assert_eq!(store.get_meta("a/c/d").await.expect("get"), None);
    assert_eq!(store.list_meta("a/c/").await.expect("keys"), ["a/c/e"]);
    // A key that is a directory elsewhere is simply absent.
    assert_eq!(store.get_meta("a/c").await.expect("get"), None);
    // `meta_exists` says what `get_meta` finds: set, empty, removed, a directory elsewhere,
    // under a file's name, a component of 255 bytes (a record in a directory of its own).
    let c255 = format!("long/{}", "m".repeat(255));
    store.set_meta(&c255, Bytes::from_static(b"x")).await.expect("set");
    for key in ["a/b", "a/empty", "a/c/e", "a/c/d", "a/c", "a/b/under", "nothing", "z", &c255, "long"] {
        let found = store.get_meta(key).await.expect("get").is_some();
        assert_eq!(store.meta_exists(key).await.expect("exists"), found, "meta_exists({key})");
    }
    assert!(store.meta_exists(&c255).await.expect("exists"));
    assert!(!store.meta_exists("a/c/d").await.expect("exists"));
    assert!(store.meta_exists("a/bad key").await.is_err(), "an unsafe key is refused");
    assert!(store.remove_meta(&c255).await.expect("remove"));
    let too_long = format!("x/{}", "a".repeat(256));
    for bad in ["", "/a", "a/", "a//b", "../x", "a/../b", "a/./b", "a b", "a:b", "a\\b", "a=", "a/="] {
        assert!(store.set_meta(bad, Bytes::new()).await.is_err(), "unsafe key {bad:?} accepted");
    }
    assert!(store.set_meta(&too_long, Bytes::new()).await.is_err(), "a 256-byte component was accepted");
    write_steps(store).await;
    flat_keys(store).await;
    repositories_in_every_order(store).await;
    pages(store).await;
}

/// `list_meta_page` gives exactly the slice of `list_meta` after any `after` (a key, between
/// keys, outside the prefix, not a key at all), across nested keys and prefixes of each other,
/// and walking page by page gives the whole listing.
async fn pages(store: &dyn Storage) {
    let c255 = "l".repeat(255);
    let mut keys: Vec<String> = (0..300).map(|n| format!("page/tags/t-{n:04}")).collect();
    keys.extend(
        ["page/a", "page/k", "page/k/k", "page/k/k/k", "page/k-x", "page/k/a-b", "page/ka", "page/z/z"]
            .map(String::from),
    );
    keys.extend([format!("page/{c255}"), format!("page/{c255}/x"), format!("page/l/{c255}")]);
    let writes = keys.iter().map(|k| Write::Set { key: k.clone(), value: Bytes::new() }).collect();
    store.write_steps(vec![writes]).await.expect("page records");
    let odd = [
        "",
        "page/",
        "page/k/",
        "page/k-",
        "page/k/k/",
        "page/tags/t-0150x",
        "page/tags/u",
        "page/\u{e4}",
        "page/a b",
        "page//",
        "zzz",
    ];
    for prefix in ["page/", "page/k/", "page/tags/"] {
        let all = store.list_meta(prefix).await.expect("list");
        let mut expected: Vec<&String> = keys.iter().filter(|k| k.starts_with(prefix)).collect();
        expected.sort();
        assert_eq!(all.iter().collect::<Vec<_>>(), expected, "list_meta({prefix})");
        let afters = odd.iter().map(|a| (*a).to_owned()).chain(all.iter().step_by(13).cloned());
        for after in afters.map(Some).chain([None]) {
            for limit in [0, 1, 2, 7, 1000] {
                let page = store.list_meta_page(prefix, after.as_deref(), limit).await.expect("page");
                let want: Vec<&String> =
                    all.iter().filter(|k| after.as_ref().is_none_or(|a| *k > a)).take(limit).collect();
                assert_eq!(
                    page.iter().collect::<Vec<_>>(),
                    want,
                    "page of {prefix} after {after:?}, {limit}"
                );
            }
        }
        let mut walked = Vec::new();
        loop {
            let page =
                store.list_meta_page(prefix, walked.last().map(String::as_str), 7).await.expect("page");
            if page.is_empty() {
                break;
            }
            walked.extend(page);
        }
        assert_eq!(walked, all, "walking {prefix} 7 at a time");
    }
}

/// Keys are a flat namespace: a key may be a prefix of another, at any depth, with components
/// as long as a repository name allows.
async fn flat_keys(store: &dyn Storage) {
    // Prefixes of each other, set in both orders.
    for key in ["flat/k", "flat/k/k", "flat/k/k/k", "flat/j/j", "flat/j"] {
        store.set_meta(key, Bytes::from(key.to_owned())).await.unwrap_or_else(|e| panic!("set {key}: {e}"));
    }
    for key in ["flat/k", "flat/k/k", "flat/k/k/k", "flat/j/j", "flat/j"] {
        assert_eq!(record(store, key).await.as_deref(), Some(key.as_bytes()), "{key}");
    }
    assert_eq!(
        store.list_meta("flat/").await.expect("keys"),
        ["flat/j", "flat/j/j", "flat/k", "flat/k/k", "flat/k/k/k"]
    );
    assert_eq!(store.list_meta("flat/k/").await.expect("keys"), ["flat/k/k", "flat/k/k/k"]);
    // Removing the parent keeps the children, and the other way round.
    assert!(store.remove_meta("flat/k").await.expect("remove"));
    assert!(store.remove_meta("flat/j/j").await.expect("remove"));
    assert_eq!(store.list_meta("flat/").await.expect("keys"), ["flat/j", "flat/k/k", "flat/k/k/k"]);
    store.set_meta("flat/k", Bytes::from_static(b"again")).await.expect("set again");
    assert_eq!(record(store, "flat/k").await.as_deref(), Some(&b"again"[..]));

    // 127 levels deep (a repository name of 127 one-letter components), every level a record.
    let deep: Vec<String> = (1..=127).map(|n| format!("deep/{}", vec!["d"; n].join("/"))).collect();
    store
        .write_steps(vec![deep.iter().map(|k| Write::Set { key: k.clone(), value: Bytes::new() }).collect()])
        .await
        .expect("127 nested records in one batch");
    assert_eq!(store.list_meta("deep/").await.expect("keys").len(), 127);
    assert_eq!(record(store, &deep[126]).await.as_deref(), Some(&b""[..]));
    for key in deep.iter().step_by(2) {
        assert!(store.remove_meta(key).await.expect("remove"));
    }
    assert_eq!(
        store.list_meta("deep/").await.expect("keys"),
        deep.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>()
    );

    // Components of 255 bytes (a repository name's longest), beside 254, with records below
    // (keys stay under 512 bytes, as a registry's do: S3 engines on LMDB, such as Garage,
    // refuse longer ones).
    let c255 = "a".repeat(255);
    let c254 = "a".repeat(254);
    let long = [
        format!("long/{c255}"),
        format!("long/{c255}/_manifests/tags/latest"),
        format!("long/{c254}"),
        format!("long/{c255}/x"),
    ];
    for key in &long {
        store.set_meta(key, Bytes::from(key.clone())).await.unwrap_or_else(|e| panic!("set {key}: {e}"));
    }
    for key in &long {
        assert_eq!(record(store, key).await.as_deref(), Some(key.as_bytes()));
    }
    let mut sorted = long.to_vec();
    sorted.sort();
    assert_eq!(store.list_meta("long/").await.expect("keys"), sorted);
    assert!(store.remove_meta(&long[0]).await.expect("remove"));
    assert_eq!(record(store, &long[0]).await, None);
    assert_eq!(record(store, &long[1]).await.as_deref(), Some(long[1].as_bytes()));
}

/// The records a registry writes for repositories `a`, `a/b` and `a/b/c` (catalog entries,
/// layer links, reverse links, tags, upload sessions), pushed in every order, then removed in
/// another.
async fn repositories_in_every_order(store: &dyn Storage) {
    let digest = Digest::sha256(b"layer");
    let (alg, hex) = (digest.algorithm(), digest.encoded());
    let keys = |repo: &str| {
        vec![
            format!("catalog/{repo}"),
            format!("repositories/{repo}/_layers/{alg}/{hex}"),
            format!("repositories/{repo}/_manifests/revisions/{alg}/{hex}"),
            format!("repositories/{repo}/_manifests/tags/latest"),
            format!("repositories/{repo}/_uploads/u1"),
            format!("blob-repositories/{alg}/{hex}/{repo}"),
        ]
    };
    let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for (n, order) in orders.iter().enumerate() {
        let repos = [format!("o{n}/a"), format!("o{n}/a/b"), format!("o{n}/a/b/c")];
        for &i in order {
            let writes = keys(&repos[i]).into_iter().map(|key| Write::Set { value: key.clone().into(), key });
            store
                .write_steps(vec![writes.collect()])
                .await
                .unwrap_or_else(|e| panic!("push {}: {e}", repos[i]));
        }
        for repo in &repos {
            for key in keys(repo) {
                assert_eq!(record(store, &key).await.as_deref(), Some(key.as_bytes()), "order {order:?}");
            }
        }
        assert_eq!(
            store.list_meta(&format!("catalog/o{n}/")).await.expect("catalog"),
            repos.iter().map(|r| format!("catalog/{r}")).collect::<Vec<_>>()
        );
        assert_eq!(
            store.list_meta(&format!("repositories/o{n}/a/_manifests/tags/")).await.expect("tags"),
            [format!("repositories/o{n}/a/_manifests/tags/latest")]
        );
        // Remove one repository's records; the others are untouched.
        let gone = order[1];
        for key in keys(&repos[gone]) {
            assert!(store.remove_meta(&key).await.expect("remove"), "{key}");
        }
        for (i, repo) in repos.iter().enumerate() {
            for key in keys(repo) {
                let expected = (i != gone).then(|| key.as_bytes().to_vec());
                assert_eq!(record(store, &key).await.map(|b| b.to_vec()), expected, "order {order:?}, {key}");
            }
        }
    }
}

async fn record(store: &dyn Storage, key: &str) -> Option<Bytes> {
    store.get_meta(key).await.unwrap_or_else(|e| panic!("get {key}: {e}"))
}

async fn write_steps(store: &dyn Storage) {
    let manifest = Bytes::from_static(br#"{"schemaVersion":2}"#);
    let digest = Digest::sha256(&manifest);
    let set =
        |key: &str, value: &str| Write::Set { key: key.to_owned(), value: Bytes::from(value.to_owned()) };
    store
        .write_steps(vec![
            vec![Write::Blob { digest: digest.clone(), bytes: manifest.clone() }, set("batch/catalog", "")],
            vec![set("batch/revision", digest.as_str())],
            vec![
                set("batch/tag", "v1"),
                Write::Remove { key: "z".into() },
                Write::Remove { key: "none".into() },
            ],
        ])
        .await
        .expect("a batch");
    assert_eq!(store.read_all(&digest).await.expect("the batch's blob"), manifest);
    assert_eq!(record(store, "batch/revision").await.as_deref(), Some(digest.as_str().as_bytes()));
    assert_eq!(record(store, "batch/tag").await.as_deref(), Some(&b"v1"[..]));
    assert_eq!(record(store, "z").await, None, "removed by the batch");
    assert_eq!(
        store.list_meta("batch/").await.expect("keys"),
        ["batch/catalog", "batch/revision", "batch/tag"]
    );
    // Brief records: seen by the store's own reads and listings at once, in order with the
    // batch's other writes; removed, set again and published like any record.
    let brief =
        |key: &str, value: &str| Write::Brief { key: key.to_owned(), value: Bytes::from(value.to_owned()) };
    store
        .write_steps(vec![vec![brief("brief/a", "1"), brief("brief/b", "2"), brief("brief/c", "3")]])
        .await
        .expect("brief records");
    store
        .write_steps(vec![vec![Write::Remove { key: "brief/b".into() }, set("brief/c", "4")]])
        .await
        .expect("batch");
    assert_eq!(record(store, "brief/a").await.as_deref(), Some(&b"1"[..]));
    assert_eq!(record(store, "brief/b").await, None, "a removed brief record is gone");
    assert!(store.meta_exists("brief/a").await.expect("exists"), "a brief record exists");
    assert!(!store.meta_exists("brief/b").await.expect("exists"), "a removed brief record does not");
    assert_eq!(record(store, "brief/c").await.as_deref(), Some(&b"4"[..]), "a set replaces a brief record");
    assert_eq!(store.list_meta("brief/").await.expect("keys"), ["brief/a", "brief/c"]);
    assert_eq!(store.list_meta_page("brief/", Some("brief/a"), 1).await.expect("page"), ["brief/c"]);
    store.publish("brief/").await.expect("publish");
    assert_eq!(record(store, "brief/a").await.as_deref(), Some(&b"1"[..]), "published");
    assert!(store.remove_meta("brief/a").await.expect("remove"));
    store.write_steps(vec![vec![brief("brief/d", "5")]]).await.expect("brief");
    assert!(store.remove_meta("brief/d").await.expect("remove a brief record"));
    assert_eq!(store.list_meta("brief/").await.expect("keys"), ["brief/c"]);
    assert!(store.remove_meta("brief/c").await.expect("remove"));
    // A blob bigger than a manifest may be (fs keeps it out of its journal).
    let big = content(77, 5 * MIB + 3);
    let big_digest = Digest::sha256(&big);
    store
        .write_steps(vec![
            vec![Write::Blob { digest: big_digest.clone(), bytes: big.clone() }],
            vec![set("batch/big", big_digest.as_str())],
        ])
        .await
        .expect("a batch with a big blob");
    assert_eq!(store.read_all(&big_digest).await.expect("the big blob"), big);
    assert_eq!(record(store, "batch/big").await.as_deref(), Some(big_digest.as_str().as_bytes()));
    // One bad write anywhere fails the batch before anything is written.
    let other = Digest::sha256(b"other");
    for bad in [
        Write::Blob { digest: other.clone(), bytes: manifest.clone() },
        Write::Blob { digest: other.clone(), bytes: big.clone() },
        set("../escape", ""),
        Write::Remove { key: "a//b".into() },
    ] {
        let result = store.write_steps(vec![vec![set("batch/never", "x")], vec![bad.clone()]]).await;
        assert!(result.is_err(), "{bad:?} accepted");
        assert_eq!(record(store, "batch/never").await, None, "{bad:?} wrote the batch's first step");
        assert!(store.stat(&other).await.expect("stat").is_none(), "{bad:?} stored a blob");
    }
}
