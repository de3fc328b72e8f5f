//! The crash test: a child process writing blobs and journaled batches is SIGKILLed at random
//! moments; after each kill, every blob and batch the child reported as committed is present
//! and verifies, nothing partial or unverified is visible, and every batch is all or nothing.
//!
//! The child is this test binary again, running the ignored `crash_child` test with
//! `WHARF_CRASH_DIR` set.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use wharf_store::{BlobStore, FsStore, MetaStore, Write, from_chunks, single, testing};
use wharf_types::Digest;

const ROUNDS: usize = 8;

/// A small xorshift generator seeded from the clock: each run kills at other moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn fs_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| u64::from(d.subsec_nanos()) ^ d.as_secs())
            | 1;
    let mut rng = Rng(seed);
    let mut committed: Vec<Digest> = Vec::new();
    let batches = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash::crash_child", "--include-ignored", "--nocapture", "--test-threads=1"])
            .env("WHARF_CRASH_DIR", dir.path())
            .env("WHARF_CRASH_SEED", seed.wrapping_add(2 * round as u64).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let batches_seen = std::sync::Arc::clone(&batches);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(d) = line.strip_prefix("committed ") {
                    let _ = tx.send(d.parse::<Digest>().expect("digest"));
                } else if let Some(b) = line.strip_prefix("batch ") {
                    batches_seen.lock().expect("lock").push(b.to_owned());
                }
            }
        });
        // Let it write for 50–400 ms (after its first commit), then kill it mid-flight.
        let first = rx.recv_timeout(Duration::from_secs(30)).expect("the child commits something");
        committed.push(first);
        let until = Instant::now() + Duration::from_millis(50 + rng.next() % 350);
        while Instant::now() < until {
            if let Ok(d) = rx.recv_timeout(Duration::from_millis(5)) {
                committed.push(d);
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        reader.join().expect("reader");
        committed.extend(rx.try_iter());

        runtime.block_on(async {
            let store = FsStore::open(dir.path()).await.expect("reopen after the crash");
            for digest in &committed {
                let bytes =
                    store.read_all(digest).await.unwrap_or_else(|e| panic!("round {round}: {digest}: {e}"));
                digest.verify(&bytes).unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
            let listed: Vec<Digest> = store.list().try_collect().await.expect("list");
            for digest in &listed {
                let bytes = store.read_all(digest).await.expect("read listed");
                digest
                    .verify(&bytes)
                    .unwrap_or_else(|e| panic!("round {round}: a visible blob does not verify: {e}"));
            }
            let acknowledged: std::collections::BTreeSet<_> = committed.iter().collect();
            assert!(listed.len() >= acknowledged.len(), "round {round}: fewer blobs than acknowledged");
            // Every acknowledged batch is whole; every batch on disk is whole (none half-done).
            let acknowledged_batches = batches.lock().expect("lock").clone();
            for name in &acknowledged_batches {
                check_batch(&store, name).await.unwrap_or_else(|e| panic!("round {round}: acknowledged {e}"));
            }
            for key in store.list_meta("batches/").await.expect("list") {
                let name = key.trim_start_matches("batches/").split('/').next().expect("name").to_owned();
                check_batch(&store, &name).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
            }
        });
    }
    eprintln!(
        "crash test: {ROUNDS} kills, {} acknowledged blobs and {} acknowledged batches all present and \
         verified (seed {seed})",
        committed.len(),
        batches.lock().expect("lock").len()
    );
}

/// The three writes of batch `name` (see `batch`): all present, the blob verifying.
async fn check_batch(store: &FsStore, name: &str) -> Result<(), String> {
    let digest: Digest = store
        .get_meta(&format!("batches/{name}/revision"))
        .await
        .map_err(|e| e.to_string())?
        .and_then(|v| String::from_utf8(v.to_vec()).ok()?.parse().ok())
        .ok_or(format!("batch {name}: no revision record"))?;
    let bytes = store.read_all(&digest).await.map_err(|e| format!("batch {name}: {e}"))?;
    digest.verify(&bytes).map_err(|e| format!("batch {name}: {e}"))?;
    match store.get_meta(&format!("batches/{name}/tag")).await.map_err(|e| e.to_string())? {
        Some(tag) if tag == digest.as_str().as_bytes() => {}
        _ => return Err(format!("batch {name}: the tag is missing")),
    }
    match store.get_meta(&format!("batches/{name}/event")).await.map_err(|e| e.to_string())? {
        Some(event) if event == digest.as_str().as_bytes() => Ok(()),
        _ => Err(format!("batch {name}: the brief record is missing")),
    }
}

/// A manifest-like batch: a small blob, then a record naming it, then a tag and a brief
/// record (an event), which the child's store keeps in its journal only.
fn batch(name: &str, data: &bytes::Bytes) -> Vec<Vec<Write>> {
    let digest = Digest::sha256(data);
    let set = |key: String| Write::Set { key, value: digest.as_str().to_owned().into() };
    vec![
        vec![Write::Blob { digest: digest.clone(), bytes: data.clone() }],
        vec![set(format!("batches/{name}/revision"))],
        vec![
            set(format!("batches/{name}/tag")),
            Write::Brief { key: format!("batches/{name}/event"), value: digest.as_str().to_owned().into() },
        ],
    ]
}

/// The child: writes blobs of 1 KiB–4 MiB forever, half by `put` and half by sessions,
/// printing each digest once the store acknowledged it.
#[test]
#[ignore = "the child process of fs_survives_sigkill_at_random_moments"]
fn crash_child() {
    let Some(dir) = std::env::var_os("WHARF_CRASH_DIR") else {
        return;
    };
    let seed = std::env::var("WHARF_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = Rng(seed | 1);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = FsStore::open(dir).await.expect("open");
        for i in 0u64.. {
            let len = usize::try_from(1024 + rng.next() % (4 * 1024 * 1024)).expect("fits");
            let data = testing::content(rng.next(), len);
            let digest = Digest::sha256(&data);
            if i % 2 == 0 {
                store.put(&digest, from_chunks(testing::pieces(&data, 64 * 1024))).await.expect("put");
            } else {
                let id = store.begin().await.expect("begin");
                let half = len / 2;
                store.append(&id, 0, single(data.slice(..half))).await.expect("append");
                store.append(&id, half as u64, single(data.slice(half..))).await.expect("append");
                store.commit(&id, &digest).await.expect("commit");
            }
            println!("committed {digest}");
            // And a journaled batch (records and a small blob), as a manifest PUT makes.
            let name = format!("{seed}-{i}");
            let small = testing::content(rng.next(), usize::try_from(200 + rng.next() % 8000).expect("fits"));
            store.write_steps(batch(&name, &small)).await.expect("batch");
            println!("batch {name}");
        }
    });
}
