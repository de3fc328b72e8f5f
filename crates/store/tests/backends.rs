//! The conformance suite and the model check on every backend.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use wharf_store::{BlobStore, FsStore, MemoryStore, MetaStore, S3Store, Write, single, testing};
use wharf_types::Digest;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// The S3 URL of a real engine (`WHARF_S3_URL`, e.g. `s3://registry?endpoint=http://127.0.0.1:3900&region=garage`,
/// with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or `None` with a note that the test was
/// skipped. With `WHARF_REQUIRE_ALL=1` a missing engine fails the test.
fn s3_url(test: &str) -> Option<String> {
    match std::env::var("WHARF_S3_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("WHARF_REQUIRE_ALL").is_ok_and(|v| v == "1") => {
            panic!(
                "{test}: WHARF_S3_URL is not set and WHARF_REQUIRE_ALL=1 (.ci/run starts Garage and sets it)"
            )
        }
        _ => {
            eprintln!("SKIPPED {test}: no S3 engine (set WHARF_S3_URL; .ci/run starts Garage)");
            None
        }
    }
}

/// A fresh prefix in the configured bucket, so runs and tests never see each other's keys.
fn garage(url: &str, name: &str) -> S3Store {
    let (location, query) = url.split_once('?').unwrap_or((url, ""));
    let unique = format!("{name}-{}", wharf_store::UploadId::random());
    S3Store::from_url(&format!("{}/{unique}?{query}", location.trim_end_matches('/'))).expect("S3 store")
}

fn s3_in_memory() -> S3Store {
    S3Store::new(Arc::new(object_store::memory::InMemory::new()), "registry")
}

#[test]
fn conformance_memory() {
    runtime().block_on(testing::run_all(&MemoryStore::new()));
}

#[test]
fn conformance_fs() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let store = FsStore::open(dir.path()).await.expect("open");
        testing::run_all(&store).await;
        // Nothing is left behind in the working areas.
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0, "leftover temp files");
        assert_eq!(
            std::fs::read_dir(dir.path().join("uploads")).expect("uploads").count(),
            0,
            "leftover sessions"
        );
    });
}

#[test]
fn conformance_s3_backend_on_object_store_memory() {
    runtime().block_on(testing::run_all(&s3_in_memory()));
}

#[test]
fn conformance_s3_on_garage() {
    let Some(url) = s3_url("conformance_s3_on_garage") else {
        return;
    };
    runtime().block_on(async {
        let store = garage(&url, "conformance");
        testing::run_all(&store).await;
    });
}

#[test]
fn meta_conformance_on_every_backend() {
    let rt = runtime();
    rt.block_on(async {
        testing::meta_all(&MemoryStore::new()).await;
        let dir = tempfile::tempdir().expect("tempdir");
        testing::meta_all(&FsStore::open(dir.path()).await.expect("open")).await;
        testing::meta_all(&s3_in_memory()).await;
    });
    if let Some(url) = s3_url("meta_conformance_on_every_backend (garage)") {
        rt.block_on(async { testing::meta_all(&garage(&url, "meta")).await });
    }
}

#[test]
fn model_check_memory_fs_and_s3() {
    let rt = runtime();
    testing::model_check(&rt, 48, || async { MemoryStore::new() });
    let dirs = tempfile::tempdir().expect("tempdir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    testing::model_check(&rt, 24, || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dirs.path().join(n.to_string());
        async move { FsStore::open(path).await.expect("open") }
    });
    testing::model_check(&rt, 24, || async { s3_in_memory() });
}

#[test]
fn model_check_garage() {
    let Some(url) = s3_url("model_check_garage") else {
        return;
    };
    let rt = runtime();
    testing::model_check(&rt, 12, || {
        let store = garage(&url, "model");
        async move { store }
    });
}

/// A session begun through one store instance continues through another on the same
/// storage, as when a load balancer sends consecutive PATCHes to different servers.
async fn session_moves(first: &dyn BlobStore, second: &dyn BlobStore) {
    let data = testing::content(900, 3 * 1024 * 1024 + 17);
    let digest = Digest::sha256(&data);
    let id = first.begin().await.expect("begin");
    first.append(&id, 0, single(data.slice(..1_000_000))).await.expect("append 1");
    assert_eq!(second.status(&id).await.expect("status"), 1_000_000);
    second.append(&id, 1_000_000, single(data.slice(1_000_000..2_000_000))).await.expect("append 2");
    // The first instance's running hash is stale now: it must notice and re-hash.
    first.append(&id, 2_000_000, single(data.slice(2_000_000..))).await.expect("append 3");
    second.commit(&id, &digest).await.expect("commit elsewhere");
    assert_eq!(first.read_all(&digest).await.expect("read"), data);
}

#[test]
fn sessions_move_between_processes() {
    let rt = runtime();
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) =
            (FsStore::open(dir.path()).await.expect("open"), FsStore::open(dir.path()).await.expect("open"));
        session_moves(&a, &b).await;
        let shared: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let (a, b) = (S3Store::new(shared.clone(), "r"), S3Store::new(shared, "r"));
        session_moves(&a, &b).await;
    });
    if let Some(url) = s3_url("sessions_move_between_processes (garage)") {
        rt.block_on(async {
            let a = garage(&url, "moves");
            // The same prefix through a second client.
            let prefix = a.list().try_collect::<Vec<_>>().await.map(drop);
            prefix.expect("list");
            let (location, query) = url.split_once('?').unwrap_or((&url, ""));
            let unique = format!("moves-shared-{}", wharf_store::UploadId::random());
            let open = || {
                S3Store::from_url(&format!("{}/{unique}?{query}", location.trim_end_matches('/')))
                    .expect("store")
            };
            session_moves(&open(), &open()).await;
        });
    }
}

fn journals(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("journal")).expect("journal dir").count()
}

#[test]
fn fs_journal_is_replayed_on_open_unless_its_store_is_live() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = FsStore::open(dir.path()).await.expect("open");
        let manifest = Bytes::from_static(b"{}");
        let digest = Digest::sha256(&manifest);
        let set = |key: &str| Write::Set { key: key.to_owned(), value: Bytes::from_static(b"v") };
        a.write_steps(vec![
            vec![Write::Blob { digest: digest.clone(), bytes: manifest.clone() }],
            vec![set("r/revision")],
            vec![set("r/tag")],
        ])
        .await
        .expect("batch");
        a.set_meta("r/gone", Bytes::new()).await.expect("set");
        assert!(a.remove_meta("r/gone").await.expect("remove"));
        // Lose the applied files, as a machine crash before write-back would.
        let blob = dir.path().join("blobs/sha256").join(&digest.encoded()[..2]).join(digest.encoded());
        for path in [dir.path().join("records/r/revision="), dir.path().join("records/r/tag="), blob] {
            std::fs::remove_file(path).expect("remove");
        }
        // A live store's journal is not touched by another store opened on the directory.
        let b = FsStore::open(dir.path()).await.expect("open beside");
        assert_eq!(b.get_meta("r/revision").await.expect("get"), None);
        assert_eq!(journals(dir.path()), 2);
        drop((a, b));
        // Once its store is gone, the journal is replayed in order, synced and removed.
        let c = FsStore::open(dir.path()).await.expect("reopen");
        assert_eq!(c.read_all(&digest).await.expect("blob replayed"), manifest);
        assert_eq!(c.list_meta("r/").await.expect("keys"), ["r/revision", "r/tag"]);
        assert_eq!(journals(dir.path()), 1, "only the new store's journal is left");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    });
}

/// A journal file as a store that is gone would leave it (another instance's name).
fn leave_journal(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("journal").join(name);
    std::fs::write(&path, bytes).expect("write journal");
    path
}

fn set(key: &str, value: &'static [u8]) -> Write {
    Write::Set { key: key.to_owned(), value: Bytes::from_static(value) }
}

#[test]
fn fs_a_batch_that_cannot_be_applied_is_refused_and_never_replayed() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsStore::open(dir.path()).await.expect("open");
        // A stray file where the batch needs a directory: refused before it is journaled.
        std::fs::write(dir.path().join("records/blocked"), b"stray").expect("write");
        let result =
            store.write_steps(vec![vec![set("ok/first", b"1")], vec![set("blocked/key", b"2")]]).await;
        assert!(result.is_err(), "a batch that cannot be staged was accepted");
        assert_eq!(store.get_meta("ok/first").await.expect("get"), None, "a refused batch wrote a record");
        // A directory where the record file goes: staged and journaled, but the rename fails;
        // the record is cancelled in the journal.
        std::fs::create_dir_all(dir.path().join("records/ok/second=")).expect("mkdir");
        let result = store.set_meta("ok/second", Bytes::from_static(b"2")).await;
        assert!(result.is_err(), "a batch that cannot be applied was accepted");
        drop(store);
        // Neither comes back at the next open, once the obstacles are gone.
        std::fs::remove_file(dir.path().join("records/blocked")).expect("rm");
        std::fs::remove_dir(dir.path().join("records/ok/second=")).expect("rmdir");
        let store = FsStore::open(dir.path()).await.expect("reopen");
        assert_eq!(store.get_meta("blocked/key").await.expect("get"), None);
        assert_eq!(store.get_meta("ok/first").await.expect("get"), None);
        assert_eq!(store.get_meta("ok/second").await.expect("get"), None, "a refused batch was replayed");
        assert_eq!(store.quarantined_count(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0, "staged files left");
    });
}

#[test]
fn fs_a_corrupted_journal_never_keeps_the_store_from_opening() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(FsStore::open(dir.path()).await.expect("create"));
        let good = [
            wharf_store::encode_journal_record(&[set("j/one", b"1")]),
            wharf_store::encode_journal_record(&[set("j/two", b"2")]),
        ]
        .concat();
        // 1. A byte flipped inside the second of three records: the first is replayed, the rest
        //    is moved to quarantine.
        let mut flipped =
            [good.clone(), wharf_store::encode_journal_record(&[set("j/three", b"3")])].concat();
        flipped[good.len() - 3] ^= 0x40;
        leave_journal(dir.path(), "aaaaaaaaaaaaaaaa-00000001.log", &[flipped, vec![0; 1000]].concat());
        // 2. A record that decodes but cannot be applied (a directory where its file goes),
        //    between two that can.
        std::fs::create_dir_all(dir.path().join("records/k/blocked=")).expect("mkdir");
        let blocked = [
            wharf_store::encode_journal_record(&[set("k/before", b"b")]),
            wharf_store::encode_journal_record(&[set("k/blocked", b"x")]),
            wharf_store::encode_journal_record(&[set("k/after", b"a")]),
        ]
        .concat();
        leave_journal(dir.path(), "bbbbbbbbbbbbbbbb-00000001.log", &blocked);
        // 3. A record torn by a crash (its first half, then zeros): dropped quietly.
        let torn = wharf_store::encode_journal_record(&[set("t/torn", b"t")]);
        let torn = [
            wharf_store::encode_journal_record(&[set("t/kept", b"k")]),
            torn[..torn.len() / 2].to_vec(),
            vec![0; 100],
        ]
        .concat();
        leave_journal(dir.path(), "cccccccccccccccc-00000001.log", &torn);
        // 4. A journal that cannot be read at all (here a directory by that name): moved aside whole.
        std::fs::create_dir(dir.path().join("journal/dddddddddddddddd-00000001.log")).expect("mkdir");

        let store = FsStore::open(dir.path()).await.expect("the store opens");
        assert_eq!(store.get_meta("j/one").await.expect("get").as_deref(), Some(&b"1"[..]));
        assert_eq!(store.get_meta("j/two").await.expect("get"), None);
        assert_eq!(store.get_meta("k/before").await.expect("get").as_deref(), Some(&b"b"[..]));
        assert_eq!(store.get_meta("k/after").await.expect("get").as_deref(), Some(&b"a"[..]));
        assert_eq!(store.get_meta("t/kept").await.expect("get").as_deref(), Some(&b"k"[..]));
        assert_eq!(store.get_meta("t/torn").await.expect("get"), None);
        assert_eq!(
            store.quarantined_count(),
            3,
            "the damaged tail, the unappliable record, the unreadable file"
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("quarantine"))
            .expect("quarantine")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names[0].starts_with("aaaaaaaaaaaaaaaa-00000001-at-"), "{names:?}");
        assert!(names[1].starts_with("bbbbbbbbbbbbbbbb-00000001-at-"), "{names:?}");
        assert_eq!(names[2], "dddddddddddddddd-00000001.log", "{names:?}");
        // The quarantined record is the exact record, ready for a person to look at.
        let kept = std::fs::read(dir.path().join("quarantine").join(&names[1])).expect("read");
        assert_eq!(wharf_store::decode_journal(&kept), [vec![set("k/blocked", b"x")]]);
        assert_eq!(journals(dir.path()), 1, "the replayed journals were removed");
        drop(store);
        // And the next open is clean.
        assert_eq!(FsStore::open(dir.path()).await.expect("reopen").quarantined_count(), 0);
    });
}

#[test]
fn fs_records_of_an_older_layout_are_migrated_on_open() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        // The layout of earlier versions: one plain file per record under `meta/`.
        for (key, value) in
            [("catalog/org", ""), ("repositories/org/_manifests/tags/v1", "sha256:x"), ("uploads/u", "1 org")]
        {
            let path = dir.path().join("meta").join(key);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, value).expect("write");
        }
        let store = FsStore::open(dir.path()).await.expect("open");
        assert!(!dir.path().join("meta").exists(), "the old folder is gone");
        assert_eq!(
            store.get_meta("repositories/org/_manifests/tags/v1").await.expect("get").as_deref(),
            Some(&b"sha256:x"[..])
        );
        assert_eq!(store.list_meta("catalog/").await.expect("list"), ["catalog/org"]);
        // What was impossible before: a child of an existing record.
        store.set_meta("catalog/org/app", Bytes::new()).await.expect("a child");
        assert_eq!(store.list_meta("catalog/").await.expect("list"), ["catalog/org", "catalog/org/app"]);
    });
}

#[test]
fn fs_full_journals_are_retired_and_their_writes_kept() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsStore::open(dir.path()).await.expect("open");
        let mut digests = Vec::new();
        // 3 MiB blobs through the journal: a new journal file every two batches.
        for i in 0..7u64 {
            let data = testing::content(i, 3 * 1024 * 1024);
            let digest = Digest::sha256(&data);
            let key = format!("full/{i}");
            store
                .write_steps(vec![
                    vec![Write::Blob { digest: digest.clone(), bytes: data }],
                    vec![Write::Set { key, value: digest.as_str().to_owned().into() }],
                ])
                .await
                .expect("batch");
            digests.push(digest);
        }
        // The background thread syncs and removes the full ones (poll: it runs on its own).
        for _ in 0..600 {
            if journals(dir.path()) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(journals(dir.path()), 1, "full journals were not retired");
        drop(store);
        let again = FsStore::open(dir.path()).await.expect("reopen");
        for (i, digest) in digests.iter().enumerate() {
            let data = again.read_all(digest).await.expect("blob");
            digest.verify(&data).expect("verifies");
            let record = again.get_meta(&format!("full/{i}")).await.expect("get").expect("record");
            assert_eq!(record, digest.as_str().as_bytes());
        }
    });
}

/// A brief record costs the fs store its journal bytes only: no file while it is kept, one
/// when it is published or its journal file retires, an ordinary record after a crash.
#[test]
fn fs_brief_records_live_in_the_journal_until_published_retired_or_replayed() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = FsStore::open(dir.path()).await.expect("open");
        let brief = |key: &str, value: &'static [u8]| Write::Brief {
            key: key.to_owned(),
            value: Bytes::from_static(value),
        };
        let file = |key: &str| dir.path().join("records").join(format!("{key}="));
        a.write_steps(vec![vec![brief("e/s/1", b"one"), brief("e/s/2", b"two"), brief("e/t/1", b"three")]])
            .await
            .expect("batch");
        assert_eq!(a.get_meta("e/s/1").await.expect("get").as_deref(), Some(&b"one"[..]));
        assert_eq!(a.list_meta("e/").await.expect("keys"), ["e/s/1", "e/s/2", "e/t/1"]);
        assert!(!dir.path().join("records/e").exists(), "a brief record was written out");
        // Another process does not see it until it is published.
        let b = FsStore::open(dir.path()).await.expect("open beside");
        assert_eq!(b.get_meta("e/s/1").await.expect("get"), None);
        assert!(a.remove_meta("e/s/2").await.expect("remove"));
        a.publish("e/s/").await.expect("publish");
        assert!(file("e/s/1").exists() && !file("e/s/2").exists() && !file("e/t/1").exists());
        assert_eq!(b.get_meta("e/s/1").await.expect("get").as_deref(), Some(&b"one"[..]));
        assert_eq!(a.list_meta("e/").await.expect("keys"), ["e/s/1", "e/t/1"]);
        // A full journal file is retired only once what it alone held is on disk.
        for i in 0..3u64 {
            let data = testing::content(i, 3 * 1024 * 1024);
            let digest = Digest::sha256(&data);
            a.write_steps(vec![vec![Write::Blob { digest, bytes: data }]]).await.expect("batch");
        }
        assert!(file("e/t/1").exists(), "a brief record of a retired journal was not written out");
        a.write_steps(vec![vec![brief("e/u/1", b"four"), brief("e/u/2", b"five")]]).await.expect("batch");
        a.write_steps(vec![vec![Write::Remove { key: "e/u/2".into() }]]).await.expect("batch");
        // A store closed writes out what it kept, for the others open to see.
        drop(a);
        assert_eq!(b.get_meta("e/u/1").await.expect("get").as_deref(), Some(&b"four"[..]));
        assert_eq!(b.list_meta("e/").await.expect("keys"), ["e/s/1", "e/t/1", "e/u/1"]);
        // (A crash — nothing written out — leaves them to the next open's replay: the child
        // killed in `crash::fs_survives_sigkill_at_random_moments` writes one in every batch.)
        b.write_steps(vec![vec![brief("e/v/1", b"six")]]).await.expect("batch");
        drop(b);
        let c = FsStore::open(dir.path()).await.expect("reopen");
        assert_eq!(c.get_meta("e/v/1").await.expect("get").as_deref(), Some(&b"six"[..]));
        assert!(file("e/v/1").exists());
        assert_eq!(c.list_meta("e/").await.expect("keys"), ["e/s/1", "e/t/1", "e/u/1", "e/v/1"]);
    });
}

/// The fs store keeps sorted listings of large record folders; a record another store (another
/// process) adds to or removes from a kept folder shows at once.
#[test]
fn fs_kept_listings_see_other_processes_writes() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = FsStore::open(dir.path()).await.expect("open");
        let keys: Vec<String> = (0..400).map(|n| format!("tags/t{n:04}")).collect();
        // A catalog: repositories nested in others (`o5`, `o5/app`, `o5-x`, `o50/x/y`).
        let mut catalog: Vec<String> = (0..300).map(|n| format!("cat/o{n}")).collect();
        catalog.extend(["cat/o5/app", "cat/o5-x", "cat/o50/x/y", "cat/o5/app/z"].map(String::from));
        let writes =
            keys.iter().chain(&catalog).map(|k| Write::Set { key: k.clone(), value: Bytes::new() }).collect();
        first.write_steps(vec![writes]).await.expect("records");
        catalog.sort();
        // Older than the settling time, so the folder's listing is kept from now on.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(first.list_meta_page("tags/", None, 2).await.expect("page"), ["tags/t0000", "tags/t0001"]);
        assert_eq!(first.list_meta_page("tags/", Some("tags/t0200"), 1).await.expect("page"), ["tags/t0201"]);
        for _ in 0..2 {
            // Read, then kept: the same pages both times.
            let mut walked: Vec<String> = Vec::new();
            loop {
                let after = walked.last().cloned();
                let page = first.list_meta_page("cat/", after.as_deref(), 7).await.expect("page");
                if page.is_empty() {
                    break;
                }
                walked.extend(page);
            }
            assert_eq!(walked, catalog);
            for after in ["cat/o5", "cat/o5/", "cat/o5/app", "cat/o5-", "cat/o50/x", "cat/o"] {
                let want: Vec<&String> = catalog.iter().filter(|k| k.as_str() > after).take(3).collect();
                let page = first.list_meta_page("cat/", Some(after), 3).await.expect("page");
                assert_eq!(page.iter().collect::<Vec<_>>(), want, "after {after}");
            }
        }

        let second = FsStore::open(dir.path()).await.expect("open again");
        second.set_meta("tags/t0000a", Bytes::new()).await.expect("add");
        second.remove_meta("tags/t0201").await.expect("remove");
        assert_eq!(
            first.list_meta_page("tags/", None, 2).await.expect("page"),
            ["tags/t0000", "tags/t0000a"]
        );
        assert_eq!(first.list_meta_page("tags/", Some("tags/t0200"), 1).await.expect("page"), ["tags/t0202"]);
        assert_eq!(first.list_meta("tags/").await.expect("list").len(), 400);
        // And the first store's own writes.
        first.remove_meta("tags/t0000a").await.expect("remove own");
        assert_eq!(first.list_meta_page("tags/", None, 2).await.expect("page"), ["tags/t0000", "tags/t0001"]);
    });
}

#[test]
fn fs_sessions_survive_a_restart() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, data) = rt.block_on(async {
        let store = FsStore::open(dir.path()).await.expect("open");
        let id = store.begin().await.expect("begin");
        let data = testing::content(901, 100_000);
        store.append(&id, 0, single(data.slice(..40_000))).await.expect("append");
        (id, data)
    });
    rt.block_on(async {
        let store = FsStore::open(dir.path()).await.expect("reopen");
        assert_eq!(store.status(&id).await.expect("status"), 40_000);
        store.append(&id, 40_000, single(data.slice(40_000..))).await.expect("append after restart");
        store.commit(&id, &Digest::sha256(&data)).await.expect("commit");
        assert_eq!(store.read_all(&Digest::sha256(&data)).await.expect("read"), data);
    });
}

#[test]
fn fs_layout_and_stray_files() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(async {
        let store = FsStore::open(dir.path()).await.expect("open");
        let digest = Digest::sha256(b"layout");
        store.put_bytes(&digest, Bytes::from_static(b"layout")).await.expect("put");
        let path = dir.path().join("blobs/sha256").join(&digest.encoded()[..2]).join(digest.encoded());
        assert_eq!(std::fs::read(&path).expect("blob file"), b"layout");
        // Files that are not blobs in the right place are never listed.
        std::fs::write(dir.path().join("blobs/sha256").join(&digest.encoded()[..2]).join("junk"), b"x")
            .expect("write");
        std::fs::create_dir_all(dir.path().join("blobs/sha256/zz")).expect("mkdir");
        let other = Digest::sha256(b"other");
        std::fs::write(dir.path().join("blobs/sha256/zz").join(other.encoded()), b"other").expect("write");
        std::fs::write(dir.path().join("tmp/partial"), b"half a blob").expect("write");
        let listed: Vec<Digest> = store.list().try_collect().await.expect("list");
        assert_eq!(listed, [digest]);
        // Records are `records/<key>=`; other files there are never listed as records.
        store.set_meta("r/key", Bytes::from_static(b"v")).await.expect("set");
        assert_eq!(std::fs::read(dir.path().join("records/r/key=")).expect("record file"), b"v");
        for stray in ["records/r/junk", "records/r/a b=", "records/r/=", "records/r/.."] {
            let _ = std::fs::write(dir.path().join(stray), b"x");
        }
        std::fs::create_dir_all(dir.path().join("records/r/bad dir")).expect("mkdir");
        std::fs::write(dir.path().join("records/r/bad dir/k="), b"x").expect("write");
        assert_eq!(store.list_meta("r/").await.expect("list"), ["r/key"]);
    });
}

#[test]
fn s3_urls() {
    assert!(S3Store::from_url("http://x").is_err());
    assert!(S3Store::from_url("s3://?region=x").is_err());
    assert!(S3Store::from_url("s3://b?nonsense=1").is_err());
    let plain = S3Store::from_url("s3://bucket/some/prefix?endpoint=http://127.0.0.1:3900&region=garage");
    assert!(!plain.expect("valid").redirects());
    let url = "s3://bucket?endpoint=http://127.0.0.1:3900&region=garage&redirect=true";
    assert!(S3Store::from_url(url).expect("valid").redirects());
    assert!(S3Store::from_url("s3://bucket?redirect=yes").is_err());
}

/// An object store that counts the bytes read back from upload chunks.
#[derive(Debug)]
struct CountingChunkReads {
    inner: object_store::memory::InMemory,
    read: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for CountingChunkReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountingChunkReads({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for CountingChunkReads {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let got = self.inner.get_opts(location, options).await?;
        if location.filename().is_some_and(|f| f.starts_with("chunk-")) {
            self.read.fetch_add(got.range.end - got.range.start, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A chunked upload that moves between processes at every append reads its bytes back once,
/// at commit: each process resumes the hash state the previous one saved. A process that
/// stopped before saving its state costs the next one its chunk alone; a single chunk is
/// copied, never read, unless its state is damaged (then it is hashed once, and still right).
#[test]
fn s3_sessions_read_their_chunks_back_once() {
    use object_store::{ObjectStore as _, ObjectStoreExt as _};
    use std::sync::atomic::Ordering::Relaxed;
    runtime().block_on(async {
        let counting =
            Arc::new(CountingChunkReads { inner: object_store::memory::InMemory::new(), read: 0.into() });
        let shared: Arc<dyn object_store::ObjectStore> = counting.clone();
        let process = || S3Store::new(shared.clone(), "r");
        let data = testing::content(901, 10 * 1024 * 1024 + 5);
        let digest = Digest::sha256(&data);
        let cuts = [0, 3_000_000, 3_000_001, 7_000_000, data.len()];
        let upload = |states: bool| {
            let (process, data, shared, counting) = (&process, data.clone(), shared.clone(), &counting);
            async move {
                let id = process().begin().await.expect("begin");
                for (i, w) in cuts.windows(2).enumerate() {
                    if !states && i == 3 {
                        // The last process stopped before saving its state: a new one appends.
                        let dir = object_store::path::Path::from(format!("r/uploads/{}", id.as_str()));
                        let keys: Vec<_> = shared.list(Some(&dir)).try_collect().await.expect("list");
                        let last = keys
                            .iter()
                            .map(|m| m.location.clone())
                            .filter(|k| k.filename().is_some_and(|f| f.starts_with("hash-")))
                            .max()
                            .expect("a state");
                        counting.inner.delete(&last).await.expect("delete");
                    }
                    let at = process().append(&id, w[0] as u64, single(data.slice(w[0]..w[1]))).await;
                    assert_eq!(at.expect("append"), w[1] as u64);
                }
                id
            }
        };
        let id = upload(true).await;
        assert_eq!(counting.read.load(Relaxed), 0, "appends read no chunk back");
        process().commit(&id, &digest).await.expect("commit");
        assert_eq!(counting.read.load(Relaxed), data.len() as u64, "commit streams each chunk once");
        assert_eq!(process().read_all(&digest).await.expect("read"), data);
        process().delete(&digest).await.expect("delete");

        counting.read.store(0, Relaxed);
        let id = upload(false).await;
        assert_eq!(
            counting.read.load(Relaxed),
            (cuts[3] - cuts[2]) as u64,
            "only the chunk after the last state"
        );

        counting.read.store(0, Relaxed);
        process().commit(&id, &digest).await.expect("commit");
        assert_eq!(counting.read.load(Relaxed), data.len() as u64, "streamed once, hashed on the way");
        assert_eq!(process().read_all(&digest).await.expect("read"), data);

        // One chunk from another process: a server-side copy, nothing read.
        let other = testing::content(902, 6 * 1024 * 1024);
        let other_digest = Digest::sha256(&other);
        let one_chunk = |data: Bytes| {
            let process = &process;
            async move {
                let id = process().begin().await.expect("begin");
                process().append(&id, 0, single(data)).await.expect("append");
                id
            }
        };
        let id = one_chunk(other.clone()).await;
        counting.read.store(0, Relaxed);
        process().commit(&id, &other_digest).await.expect("commit");
        assert_eq!(counting.read.load(Relaxed), 0);
        assert_eq!(process().read_all(&other_digest).await.expect("read"), other);
        process().delete(&other_digest).await.expect("delete");

        // Its state damaged: the chunk is hashed (read once), then copied; the blob is right.
        let id = one_chunk(other.clone()).await;
        let dir = object_store::path::Path::from(format!("r/uploads/{}", id.as_str()));
        let keys: Vec<_> = shared.list(Some(&dir)).try_collect().await.expect("list");
        for key in
            keys.iter().map(|m| &m.location).filter(|k| k.filename().is_some_and(|f| f.starts_with("hash-")))
        {
            counting.inner.put(key, Bytes::from_static(b"2\x01\x02").into()).await.expect("damage");
        }
        counting.read.store(0, Relaxed);
        process().commit(&id, &other_digest).await.expect("commit");
        assert_eq!(counting.read.load(Relaxed), other.len() as u64);
        assert_eq!(process().read_all(&other_digest).await.expect("read"), other);
    });
}
