//! Durable background jobs in the backend's records: work a request started but need not wait
//! for (today, reading the modules out of a manifest's layers), done once, surviving restarts,
//! shared by every process over one backend.
//!
//! # Records
//!
//! ```text
//! jobs/pending/<id>    a job (JSON: what, attempts); written in the same batch as the manifest
//!                      that asks for it, so an acknowledged push always has its job
//! jobs/leases/<id>     `<owner> <expires, unix ms>`: a process is working on it
//! ```
//!
//! # Claiming without compare-and-swap
//!
//! S3 engines such as Garage ignore conditional writes, so a worker claims a job by writing a
//! lease, waiting [`SETTLE`], and reading the lease back: of several workers that raced, only
//! the last writer sees its own lease and goes on. A worker that dies leaves its lease to
//! expire ([`LEASE`]), and the job is taken again. Jobs are idempotent (the same manifest gives
//! the same result), so the rare double run a very slow claimer could cause costs time, never
//! correctness. A job that fails [`MAX_ATTEMPTS`] times for a storage error is given up, its
//! record saying why.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf_store::Write;
use wharf_types::{Digest, Repository};

use crate::error::Result;
use crate::registry::Registry;

/// How long a claim holds before another worker may take the job; a worker renews its lease
/// every third of this while the job runs, so a dead worker's job is taken within a minute.
pub(crate) const LEASE: Duration = Duration::from_secs(60);
/// How long a claimer waits before reading its lease back.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);
/// How often the queue is looked at when nothing wakes the worker (jobs other processes
/// enqueued, expired leases).
const POLL: Duration = Duration::from_secs(5);
/// How many jobs a worker claims at once (one settle wait for them all).
const BATCH: usize = 32;
/// Storage failures after which a job is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// What a job does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Job {
    /// Read the Wasm modules out of a manifest's layers and complete its artifact record.
    #[serde(rename_all = "camelCase")]
    Inspect {
        /// The repository.
        repository: Repository,
        /// The manifest.
        digest: Digest,
        /// Storage failures so far.
        #[serde(default)]
        attempts: u32,
    },
}

impl Job {
    /// The job's id: one per manifest in a repository, so pushing it again does not queue twice.
    pub(crate) fn id(&self) -> String {
        match self {
            Self::Inspect { repository, digest, .. } => {
                let repo = Digest::sha256(repository.as_str().as_bytes());
                format!("inspect-{}-{}-{}", digest.algorithm(), digest.encoded(), &repo.encoded()[..16])
            }
        }
    }

    /// The write that queues it.
    pub(crate) fn write(&self) -> Write {
        Write::Set {
            key: format!("jobs/pending/{}", self.id()),
            value: serde_json::to_vec(self).expect("a job serialises").into(),
        }
    }
}

/// The queue's worker in this process.
#[derive(Debug)]
pub(crate) struct Worker {
    owner: String,
}

pub(crate) fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

impl Worker {
    pub(crate) fn new() -> Self {
        Self { owner: uuid::Uuid::new_v4().simple().to_string() }
    }

    /// Works the queue forever: whenever a push wakes it, and every few seconds.
    pub(crate) async fn run(self: Arc<Self>, registry: Registry) {
        loop {
            match self.drain(&registry).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "reading the job queue failed"),
            }
            tokio::select! {
                () = registry.job_wake().notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Runs every pending job this process can claim, a batch of at most [`BATCH`] claimed
    /// at once and run one after the other; returns when none is left to claim.
    pub(crate) async fn drain(&self, registry: &Registry) -> Result<()> {
        loop {
            let pending = registry.storage().list_meta("jobs/pending/").await?;
            let ids: Vec<String> = pending.iter().map(|k| k["jobs/pending/".len()..].to_owned()).collect();
            let mut ran = false;
            for chunk in ids.chunks(BATCH) {
                let held = Arc::new(tokio::sync::Mutex::new(self.claim(registry, chunk).await?));
                let ids: Vec<String> = held.lock().await.iter().cloned().collect();
                if ids.is_empty() {
                    continue;
                }
                ran = true;
                let renewal = tokio::spawn(self.renew(Arc::clone(registry.storage()), Arc::clone(&held)));
                for id in &ids {
                    let outcome = self.run_one(registry, id, &held).await;
                    if let Err(e) = outcome {
                        renewal.abort();
                        return Err(e);
                    }
                }
                renewal.abort();
            }
            if !ran {
                return Ok(());
            }
        }
    }

    /// Takes the leases of the jobs in `ids` nobody holds a live lease on: writes them all,
    /// waits [`SETTLE`] once, and keeps those that read back as its own.
    async fn claim(&self, registry: &Registry, ids: &[String]) -> Result<BTreeSet<String>> {
        let storage = registry.storage();
        let mut wanted = Vec::new();
        for id in ids {
            let key = format!("jobs/leases/{id}");
            if let Some(lease) = storage.get_meta(&key).await?
                && let Some((owner, expires)) = parse_lease(&lease)
                && (owner != self.owner && expires > now_ms())
            {
                continue;
            }
            wanted.push(id.clone());
        }
        if wanted.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mine = format!("{} {}", self.owner, now_ms() + LEASE.as_millis());
        let leases = wanted
            .iter()
            .map(|id| Write::Set { key: format!("jobs/leases/{id}"), value: mine.clone().into() })
            .collect();
        storage.write_steps(vec![leases]).await?;
        tokio::time::sleep(SETTLE).await;
        let mut held = BTreeSet::new();
        for id in wanted {
            if storage.get_meta(&format!("jobs/leases/{id}")).await?.is_some_and(|l| l == mine.as_bytes()) {
                held.insert(id);
            }
        }
        Ok(held)
    }

    /// Renews the leases still `held` every third of [`LEASE`] (under the lock that a finished
    /// job takes to give its lease up, so a lease is never written back after its removal).
    fn renew(
        &self,
        storage: Arc<dyn wharf_store::Storage>,
        held: Arc<tokio::sync::Mutex<BTreeSet<String>>>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let owner = self.owner.clone();
        async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let held = held.lock().await;
                let value = format!("{owner} {}", now_ms() + LEASE.as_millis());
                let leases = held
                    .iter()
                    .map(|id| Write::Set { key: format!("jobs/leases/{id}"), value: value.clone().into() })
                    .collect();
                if let Err(e) = storage.write_steps(vec![leases]).await {
                    tracing::warn!(error = %e, "renewing job leases failed");
                }
            }
        }
    }

    /// Runs job `id` (held) and gives its lease up: removed with the job when done, or turned
    /// into a back-off when it is to be retried. The `held` lock is kept while the lease is
    /// given up, so the renewal never writes it back.
    async fn run_one(
        &self,
        registry: &Registry,
        id: &str,
        held: &tokio::sync::Mutex<BTreeSet<String>>,
    ) -> Result<()> {
        let pending = format!("jobs/pending/{id}");
        let lease = format!("jobs/leases/{id}");
        let done = vec![Write::Remove { key: pending.clone() }, Write::Remove { key: lease.clone() }];
        let job = match registry.storage().get_meta(&pending).await? {
            Some(bytes) => serde_json::from_slice::<Job>(&bytes).map_err(|_| {
                tracing::error!(job = id, "dropping a job record that does not parse");
            }),
            None => Err(()),
        };
        let Ok(Job::Inspect { repository, digest, attempts }) = job else {
            let mut held = held.lock().await;
            held.remove(id);
            registry.storage().write_steps(vec![done]).await?;
            return Ok(());
        };
        let outcome = registry.inspect_stored(&repository, &digest, None).await;
        let mut held = held.lock().await;
        held.remove(id);
        match outcome {
            Ok(()) => {
                registry.storage().write_steps(vec![done]).await?;
                registry.metrics().job_finished("inspect", "done");
            }
            Err(e) if attempts + 1 >= MAX_ATTEMPTS => {
                tracing::error!(job = id, error = %e, "giving up a job");
                registry.inspect_stored(&repository, &digest, Some(&e.to_string())).await.ok();
                registry.storage().write_steps(vec![done]).await?;
                registry.metrics().job_finished("inspect", "given-up");
            }
            Err(e) => {
                // Retried later: the lease becomes a back-off nobody owns (30 s, 60 s, …).
                tracing::warn!(job = id, error = %e, attempts = attempts + 1, "a job failed; it will be retried");
                let retry = Job::Inspect { repository, digest, attempts: attempts + 1 };
                let until = now_ms() + 30_000 * u128::from(attempts + 1);
                let backoff = Write::Set { key: lease, value: format!("backoff {until}").into() };
                registry.storage().write_steps(vec![vec![retry.write(), backoff]]).await?;
                registry.metrics().job_finished("inspect", "retried");
            }
        }
        Ok(())
    }
}

/// `<owner> <expires, unix ms>`.
pub(crate) fn parse_lease(value: &[u8]) -> Option<(&str, u128)> {
    let (owner, expires) = std::str::from_utf8(value).ok()?.split_once(' ')?;
    Some((owner, expires.parse().ok()?))
}
