//! Durable background jobs in the backend's records: work a request started but need not wait
//! for (reading the modules out of a manifest's layers; copying a mirrored tag on a schedule),
//! done once, surviving restarts, shared by every process over one backend.
//!
//! # Records
//!
//! ```text
//! jobs/pending/<id>    a job (JSON: what, attempts); written in the same batch as the manifest
//!                      that asks for it, so an acknowledged push always has its job
//! jobs/leases/<id>     `<owner> <expires, unix ms>`: a process is working on it
//! jobs/parked/<id>     a job given up after MAX_ATTEMPTS (JSON: the job, why); kept for operators
//! ```
//!
//! Ids are `inspect-<repository key>-<alg>-<hex>`, `trust-<repository key>-<alg>-<hex>`,
//! `sync-<repository key>-<tag>` and `deliver-<repository key>-<webhook>` (the key:
//! 16 hex digits of the SHA-256 of the repository's name), so a listing tells which repository
//! each job is for.
//!
//! # Claiming without compare-and-swap
//!
//! A worker claims a job with the server's one lease protocol ([`crate::lease`]: write,
//! settle [`SETTLE`], read back); a worker that dies leaves its lease to expire ([`LEASE`]),
//! and the job is taken again. Jobs are idempotent (the same manifest gives
//! the same result), so the rare double run a very slow claimer could cause costs time, never
//! correctness.
//!
//! A change that queues a job nobody has queued may claim it **at birth** ([`Adoptions`]):
//! its batch writes the job's lease, in this process's worker's name, beside the job, and the
//! worker starts it as soon as the batch is written — no claim, no settle. Nobody else could
//! have claimed a job that did not exist; two processes that queue the same job in the same
//! instant may both run it (once each: what a slow claimer could cause too). Webhook
//! deliveries are claimed so: the changes that follow count on the run from the first one on.
//!
//! # Fair, bounded, never forever
//!
//! A process runs at most as many jobs as it has inspection [`Slots`] (shared with the manifest
//! PUTs that policies make read modules), claims no more than it can start, and takes pending
//! jobs round-robin by repository, the one served longest ago first; one repository never
//! holds every slot. Each run first counts an attempt in the job's record: a job whose runs
//! keep failing, or keep ending the process (a crash, an out-of-memory kill), is parked after
//! [`MAX_ATTEMPTS`], its artifact record saying why, and never run again.

mod slots;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf_store::Write;
use wharf_types::{Digest, Repository, Tag};

pub(crate) use slots::Slots;

use crate::error::Result;
use crate::lease::Leases;
use crate::metrics::Metrics;
use crate::registry::keys;

/// How long a claim holds before another worker may take the job; a worker renews its lease
/// every third of this while the job runs, so a dead worker's job is taken within a minute.
pub(crate) const LEASE: Duration = Duration::from_secs(60);
/// How long a claimer waits before reading its lease back.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);
/// How often the queue is looked at when nothing wakes the worker (jobs other processes
/// enqueued, expired leases).
const POLL: Duration = Duration::from_secs(5);
/// The longest pause between two looks at the queue while the storage is full or unavailable.
const FAULT_PAUSE: Duration = Duration::from_secs(60);
/// Runs of a job (each counted before it starts) after which it is parked.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

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
        /// Runs started so far.
        #[serde(default)]
        attempts: u32,
    },
    /// Verify every signature over a manifest and record what they say (`trust`).
    #[serde(rename_all = "camelCase")]
    Trust {
        /// The repository.
        repository: Repository,
        /// The manifest signed.
        digest: Digest,
        /// Runs started so far.
        #[serde(default)]
        attempts: u32,
    },
    /// Send the events of one stream (a repository's, in order) to the webhooks they name,
    /// or those held for one webhook after a failed send.
    #[serde(rename_all = "camelCase")]
    Deliver {
        /// The stream: the repository's key ([`repository_key`]), or all zeros for events of
        /// the whole registry.
        stream: String,
        /// The webhook whose held events are sent; none: the stream's events for every webhook.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook: Option<String>,
        /// Runs started so far.
        #[serde(default)]
        attempts: u32,
    },
    /// Copy a tag of a mirror's upstream here, whole (its manifest, children and blobs): one
    /// job per tag, so a sync interrupted midway resumes where it stopped.
    #[serde(rename_all = "camelCase")]
    Sync {
        /// The local repository (under an upstream's prefix).
        repository: Repository,
        /// The tag.
        tag: Tag,
        /// Runs started so far.
        #[serde(default)]
        attempts: u32,
    },
}

/// The key jobs and inspections of `repo` share their slots under: 16 hex digits of the
/// SHA-256 of its name.
pub(crate) fn repository_key(repo: &Repository) -> String {
    Digest::sha256(repo.as_str().as_bytes()).encoded()[..16].to_owned()
}

/// The repository key of a job id (`<kind>-<key>-…`, and the earlier
/// `inspect-<alg>-<hex>-<key>`).
fn key_of(id: &str) -> &str {
    let rest =
        ["inspect-", "sync-", "trust-", "deliver-"].iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id);
    match rest.split_once('-') {
        Some((first, _)) if first.len() == 16 && first.bytes().all(|b| b.is_ascii_hexdigit()) => first,
        _ => rest.rsplit('-').next().unwrap_or(rest),
    }
}

impl Job {
    /// The job's id: one per manifest in a repository (per tag, for a sync), so asking again
    /// does not queue twice.
    pub(crate) fn id(&self) -> String {
        match self {
            Self::Inspect { repository, digest, .. } => {
                format!("inspect-{}-{}-{}", repository_key(repository), digest.algorithm(), digest.encoded())
            }
            Self::Sync { repository, tag, .. } => format!("sync-{}-{tag}", repository_key(repository)),
            Self::Trust { repository, digest, .. } => {
                format!("trust-{}-{}-{}", repository_key(repository), digest.algorithm(), digest.encoded())
            }
            Self::Deliver { stream, webhook: None, .. } => format!("deliver-{stream}"),
            Self::Deliver { stream, webhook: Some(webhook), .. } => format!("deliver-{stream}-{webhook}"),
        }
    }

    /// The kind, for metrics and logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Inspect { .. } => "inspect",
            Self::Sync { .. } => "sync",
            Self::Trust { .. } => "trust",
            Self::Deliver { .. } => "deliver",
        }
    }

    /// Whether each run counts as an attempt in the job's record (a job that keeps ending
    /// the process is parked). Not a delivery's: its events count their own attempts and park
    /// themselves, and a write per run would compete with the pushes that keep queueing it;
    /// its record is not rewritten by its runs either, so [`Handler::more`] says whether it is
    /// wanted again.
    pub(crate) fn counts_attempts(&self) -> bool {
        !matches!(self, Self::Deliver { .. })
    }

    fn attempts(&self) -> u32 {
        match self {
            Self::Inspect { attempts, .. }
            | Self::Sync { attempts, .. }
            | Self::Trust { attempts, .. }
            | Self::Deliver { attempts, .. } => *attempts,
        }
    }

    fn with_attempts(&self, n: u32) -> Self {
        let mut job = self.clone();
        match &mut job {
            Self::Inspect { attempts, .. }
            | Self::Sync { attempts, .. }
            | Self::Trust { attempts, .. }
            | Self::Deliver { attempts, .. } => *attempts = n,
        }
        job
    }

    /// Whether it is queued (its record is there; its bytes are not read).
    pub(crate) async fn is_queued(&self, storage: &dyn wharf_store::Storage) -> Result<bool> {
        Ok(storage.meta_exists(&keys::job_pending(&self.id())).await?)
    }

    /// The write that queues it (or records its attempts).
    pub(crate) fn write(&self) -> Write {
        self.write_as(&self.id())
    }

    /// The writes that queue it to run no sooner than `wait` from now: its record, and a
    /// back-off lease nobody owns.
    pub(crate) fn write_after(&self, wait: Duration) -> Vec<Write> {
        self.write_after_as(&self.id(), wait)
    }

    fn write_after_as(&self, id: &str, wait: Duration) -> Vec<Write> {
        let until = crate::clock::now_ms() + wait.as_millis();
        let backoff = Write::Set { key: keys::job_lease(id), value: format!("backoff {until}").into() };
        vec![self.write_as(id), backoff]
    }

    fn write_as(&self, id: &str) -> Write {
        Write::Set {
            key: keys::job_pending(id),
            value: serde_json::to_vec(self).expect("a job serialises").into(),
        }
    }
}

/// How a run ended that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The job is done.
    Done,
    /// The job is done, and work it queued is due after this wait (a webhook's held events,
    /// after a failed send): the worker looks at the queue then.
    DoneThen(Duration),
    /// Run it again after this wait (a webhook's receiver failed: its stream backs off). Not
    /// an attempt that counts towards parking the job.
    Later(Duration),
}

/// What runs the jobs: given by the layer above (the façade: classification reads the
/// modules, the mirror copies tags, webhooks send).
pub(crate) trait Handler: Clone + Send + Sync + 'static {
    /// Does the job.
    fn run(&self, job: &Job) -> impl Future<Output = Result<Outcome>> + Send;

    /// Records that the job was given up, and why (an inspection's artifact record says so).
    fn give_up(&self, job: &Job, why: &str) -> impl Future<Output = Result<()>> + Send;

    /// After a run ended and its record went: whether work for it arrived in between (its
    /// record is then written again). Without compare-and-swap, a push that asks again just
    /// before the record goes is removed with it; what the push wrote for the job to read is
    /// visible by then ([`Core::write_manifest`](crate::registry::Core::write_manifest) writes
    /// job records last), so this look finds it.
    fn more(&self, job: &Job) -> impl Future<Output = Result<bool>> + Send;
}

/// The queue over one storage: where jobs are, the slots they run in, what wakes the worker,
/// what counts them.
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    pub(crate) storage: Arc<dyn wharf_store::Storage>,
    pub(crate) slots: Arc<Slots>,
    /// Webhook deliveries run in slots of their own: a receiver that stalls holds one of
    /// these, never an inspection's.
    pub(crate) deliveries: Arc<Slots>,
    /// Wakes this process's worker when a push queues a job.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// Jobs claimed at birth, for this process's worker to start.
    pub(crate) adoptions: Arc<Adoptions>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Jobs a change in this process queued and claimed in the same batch (the job's record and
/// its lease in the name of the worker working the queue here), for that worker to start at
/// once: no listing, no claim, no settle.
#[derive(Debug, Default)]
pub(crate) struct Adoptions {
    /// The owner of the leases of the worker working the queue here, while one does.
    owner: std::sync::Mutex<Option<String>>,
    /// Jobs to start.
    jobs: std::sync::Mutex<Vec<Job>>,
    /// Wakes the worker's adoption loop.
    ready: tokio::sync::Notify,
}

impl Adoptions {
    /// The write that claims `job` at birth for the worker working the queue here — its
    /// lease, to go in the batch that queues the job, before [`adopt`](Self::adopt) — or
    /// none when no worker does (tools, tests that run the jobs themselves).
    pub(crate) fn claim_at_birth(&self, job: &Job) -> Option<Write> {
        let owner = self.owner.lock().expect("lock").clone()?;
        Some(Write::Set { key: keys::job_lease(&job.id()), value: crate::lease::value(&owner, LEASE).into() })
    }

    /// Hands `job`, claimed at birth, to the worker. Whether or not the batch that queued it
    /// was written: what counted on its run (a webhook stream's changes) is served either way.
    pub(crate) fn adopt(&self, job: Job) {
        self.jobs.lock().expect("lock").push(job);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<Job> {
        std::mem::take(&mut *self.jobs.lock().expect("lock"))
    }
}

/// A worker's adoptions: claims at birth are made in its name until it stops.
struct Adopting(Arc<Adoptions>, tokio::task::JoinHandle<()>);

impl Drop for Adopting {
    fn drop(&mut self) {
        *self.0.owner.lock().expect("lock") = None;
        self.1.abort();
    }
}

/// The queue's worker in this process.
#[derive(Debug)]
pub(crate) struct Worker {
    leases: Leases,
    /// When each repository key last had a job started here (a counter), for round-robin.
    served: std::sync::Mutex<HashMap<String, u64>>,
    turns: std::sync::atomic::AtomicU64,
    finished: tokio::sync::Notify,
    /// The earliest moment a job this process backed off for less than [`POLL`] may run
    /// again: the worker looks then rather than at its next poll.
    soonest: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Worker {
    pub(crate) fn new(storage: Arc<dyn wharf_store::Storage>) -> Self {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        Self {
            leases: Leases::new(storage, &owner, LEASE, SETTLE),
            served: std::sync::Mutex::default(),
            turns: std::sync::atomic::AtomicU64::new(0),
            finished: tokio::sync::Notify::new(),
            soonest: std::sync::Mutex::new(None),
        }
    }

    /// Works the queue forever: whenever a push wakes it, a job ends, and every few seconds;
    /// while the storage is full or unavailable, at intervals doubling up to a minute (the
    /// fault is logged once, by the core).
    pub(crate) async fn run(self: Arc<Self>, queue: Queue, handler: impl Handler) {
        let _renewal = self.leases.renewing();
        let _adopting = self.adopting(&queue, &handler);
        let mut pause = POLL;
        loop {
            match self.start_jobs(&queue, &handler).await {
                Ok(_) => pause = POLL,
                Err(e) if e.fault().is_some() => {
                    pause = (pause * 2).min(FAULT_PAUSE);
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "reading the job queue failed"),
            }
            let now = tokio::time::Instant::now();
            let wait = self
                .soonest
                .lock()
                .expect("lock")
                .take()
                .map_or(POLL, |at| at.saturating_duration_since(now).min(POLL));
            tokio::select! {
                () = queue.wake.notified() => {}
                () = self.finished.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Starts the jobs claimed at birth in this worker's name as they are handed over, until
    /// the guard drops.
    fn adopting(self: &Arc<Self>, queue: &Queue, handler: &impl Handler) -> Adopting {
        *queue.adoptions.owner.lock().expect("lock") = Some(self.leases.owner().to_owned());
        let (worker, queue, handler) = (Arc::clone(self), queue.clone(), handler.clone());
        let adoptions = Arc::clone(&queue.adoptions);
        Adopting(
            adoptions,
            tokio::spawn(async move {
                loop {
                    queue.adoptions.ready.notified().await;
                    for job in queue.adoptions.take() {
                        let id = job.id();
                        // Claimed by a listing meanwhile (the lease reads as this worker's):
                        // started there.
                        if worker.leases.adopt(&keys::job_lease(&id)).await {
                            worker.start(&queue, &handler, id, Some(job));
                        }
                    }
                }
            }),
        )
    }

    /// Runs every pending job this process can claim, and waits for them; returns when none
    /// is left to claim (what [`Wharf::run_pending_jobs`](crate::Wharf::run_pending_jobs)
    /// does for tools and tests).
    pub(crate) async fn drain(self: &Arc<Self>, queue: &Queue, handler: &impl Handler) -> Result<()> {
        let _renewal = self.leases.renewing();
        loop {
            let started = self.start_jobs(queue, handler).await?;
            if started.is_empty() {
                return Ok(());
            }
            for task in started {
                let _ = task.await;
            }
        }
    }

    /// Claims pending jobs — as many as slots are free (at least one), round-robin by
    /// repository — and starts each on a task that waits for its slot. Returns the tasks.
    async fn start_jobs(
        self: &Arc<Self>,
        queue: &Queue,
        handler: &impl Handler,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let room = queue.slots.free().max(1) + queue.deliveries.free();
        let held = self.leases.held().await;
        let pending = queue.storage.list_meta(keys::JOBS_PENDING).await?;
        let ids: Vec<String> = pending
            .iter()
            .map(|k| k[keys::JOBS_PENDING.len()..].to_owned())
            .filter(|id| !held.contains(&keys::job_lease(id)))
            .collect();
        let mut order = self.fair_order(ids).into_iter();
        let mut started = Vec::new();
        while started.len() < room {
            let batch: Vec<String> = order.by_ref().take(room - started.len()).collect();
            if batch.is_empty() {
                break;
            }
            let leases: Vec<String> = batch.iter().map(|id| keys::job_lease(id)).collect();
            let claimed = self.leases.claim(&leases).await?;
            for id in batch.into_iter().filter(|id| claimed.contains(&keys::job_lease(id))) {
                started.push(self.start(queue, handler, id, None));
            }
        }
        Ok(started)
    }

    /// Starts job `id` (held) on a task that waits for its slot; `adopted`: the job claimed at
    /// birth, run even when the batch that queued it was not written.
    fn start(
        self: &Arc<Self>,
        queue: &Queue,
        handler: &impl Handler,
        id: String,
        adopted: Option<Job>,
    ) -> tokio::task::JoinHandle<()> {
        self.served
            .lock()
            .expect("lock")
            .insert(key_of(&id).to_owned(), self.turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let (worker, queue, handler) = (Arc::clone(self), queue.clone(), handler.clone());
        tokio::spawn(async move {
            let slots = if id.starts_with("deliver-") { &queue.deliveries } else { &queue.slots };
            let _slot = slots.acquire(key_of(&id)).await;
            match worker.run_one(&queue, &handler, &id, adopted).await {
                Err(e) if e.fault().is_none() => {
                    tracing::warn!(job = id, error = %e, "a job could not be finished");
                }
                _ => {}
            }
            worker.finished.notify_one();
        })
    }

    /// `ids` round-robin by repository: the first job of each repository (those served longest
    /// ago first), then the second of each, and so on.
    fn fair_order(&self, ids: Vec<String>) -> Vec<String> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in ids {
            by_key.entry(key_of(&id).to_owned()).or_default().push(id);
        }
        let served = self.served.lock().expect("lock");
        let mut keys: Vec<(u64, String)> =
            by_key.keys().map(|k| (served.get(k).map_or(0, |t| t + 1), k.clone())).collect();
        drop(served);
        keys.sort();
        let mut queues: Vec<std::vec::IntoIter<String>> =
            keys.into_iter().filter_map(|(_, k)| by_key.remove(&k)).map(Vec::into_iter).collect();
        let mut out = Vec::new();
        loop {
            let before = out.len();
            for queue in &mut queues {
                out.extend(queue.next());
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// Makes the worker look at the queue at `at` at the latest.
    fn look_at(&self, at: tokio::time::Instant) {
        let mut soonest = self.soonest.lock().expect("lock");
        *soonest = Some(soonest.map_or(at, |s| s.min(at)));
    }

    /// Runs job `id` (held): counts the attempt first, parks a job out of attempts, then gives
    /// the lease up — removed with the job when done, turned into a back-off when it is to be
    /// retried. A job claimed at birth (`adopted`) runs even without its record.
    async fn run_one(
        &self,
        queue: &Queue,
        handler: &impl Handler,
        id: &str,
        adopted: Option<Job>,
    ) -> Result<()> {
        let storage = &queue.storage;
        let pending = keys::job_pending(id);
        let lease = keys::job_lease(id);
        let done = || vec![Write::Remove { key: pending.clone() }, Write::Remove { key: lease.clone() }];
        let job = match storage.get_meta(&pending).await? {
            Some(bytes) => serde_json::from_slice::<Job>(&bytes).map_err(|_| {
                tracing::error!(job = id, "dropping a job record that does not parse");
            }),
            None => adopted.ok_or(()),
        };
        let Ok(job) = job else {
            self.leases.release(&lease, done()).await?;
            return Ok(());
        };
        let (kind, attempts) = (job.kind(), job.attempts());
        if attempts >= MAX_ATTEMPTS {
            let why = match kind {
                "inspect" => format!(
                    "not inspected: gave up after {attempts} attempts (each failed, or ended the process \
                     that ran it)"
                ),
                _ => format!("gave up after {attempts} attempts"),
            };
            tracing::error!(job = id, attempts, "parking a job");
            handler.give_up(&job, &why).await.ok();
            let parked = Write::Set {
                key: keys::job_parked(id),
                value: serde_json::to_vec(&serde_json::json!({ "job": job, "reason": why }))
                    .expect("JSON serialises")
                    .into(),
            };
            let mut writes = done();
            writes.push(parked);
            self.leases.release(&lease, writes).await?;
            queue.metrics.job_finished(kind, "parked");
            return Ok(());
        }
        // Counted before the run: a run that never returns (the process died) still counts.
        if job.counts_attempts() {
            storage.write_steps(vec![vec![job.with_attempts(attempts + 1).write_as(id)]]).await?;
        }
        match handler.run(&job).await {
            Ok(Outcome::Later(wait)) => {
                // Not a failure of the job: the attempt is given back, and the lease becomes a
                // back-off nobody owns.
                self.leases.release(&lease, job.write_after_as(id, wait)).await?;
                self.look_at(tokio::time::Instant::now() + wait + SETTLE);
                queue.metrics.job_finished(kind, "later");
            }
            Ok(outcome @ (Outcome::Done | Outcome::DoneThen(_))) => {
                if let Outcome::DoneThen(wait) = outcome {
                    self.look_at(tokio::time::Instant::now() + wait + SETTLE);
                }
                // Asked for again while it ran (the record rewritten with no attempts: a
                // signature pushed meanwhile, say): the record stays for another run.
                let asked_again = job.counts_attempts()
                    && storage.get_meta(&pending).await?.is_some_and(|bytes| {
                        serde_json::from_slice::<Job>(&bytes).is_ok_and(|j| j.attempts() == 0)
                    });
                let writes = if asked_again { vec![Write::Remove { key: lease.clone() }] } else { done() };
                self.leases.release(&lease, writes).await?;
                if !asked_again && handler.more(&job).await? {
                    // Work that came after the run's last look and before its record went.
                    storage.write_steps(vec![vec![job.with_attempts(0).write_as(id)]]).await?;
                    queue.wake.notify_one();
                }
                if asked_again {
                    queue.wake.notify_one();
                }
                queue.metrics.job_finished(kind, "done");
            }
            Err(e) if e.fault().is_some() => {
                // The storage failed, not the job: the attempt is given back (when the storage
                // takes the write) and the job waits 30 s.
                self.leases.release(&lease, job.write_after_as(id, Duration::from_secs(30))).await?;
                queue.metrics.job_finished(kind, "retried");
            }
            Err(e) => {
                // Retried later (or parked on its next turn): the lease becomes a back-off
                // nobody owns (30 s, 60 s, …).
                tracing::warn!(job = id, error = %e, attempts = attempts + 1, "a job failed; it will be retried");
                let until = crate::clock::now_ms() + 30_000 * u128::from(attempts + 1);
                let backoff = Write::Set { key: lease.clone(), value: format!("backoff {until}").into() };
                self.leases.release(&lease, vec![backoff]).await?;
                queue.metrics.job_finished(kind, "retried");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_repository_and_the_order_is_round_robin() {
        let repo: Repository = "team/app".parse().expect("repo");
        let job = Job::Inspect { repository: repo.clone(), digest: Digest::sha256(b"m"), attempts: 0 };
        let id = job.id();
        assert_eq!(key_of(&id), repository_key(&repo));
        // An id of an earlier version: `inspect-<alg>-<hex>-<key>`.
        let old = format!("inspect-sha256-{}-{}", Digest::sha256(b"m").encoded(), repository_key(&repo));
        assert_eq!(key_of(&old), repository_key(&repo));
        let worker = Worker::new(std::sync::Arc::new(wharf_store::MemoryStore::new()));
        let ids = [
            "inspect-aaaaaaaaaaaaaaaa-sha256-1",
            "inspect-aaaaaaaaaaaaaaaa-sha256-2",
            "inspect-aaaaaaaaaaaaaaaa-sha256-3",
            "inspect-bbbbbbbbbbbbbbbb-sha256-1",
        ];
        let order = worker.fair_order(ids.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(
            order[..2].iter().map(|id| key_of(id)).collect::<Vec<_>>(),
            ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
        );
        worker.served.lock().expect("lock").insert("aaaaaaaaaaaaaaaa".into(), 7);
        let order = worker.fair_order(ids.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(key_of(&order[0]), "bbbbbbbbbbbbbbbb", "the repository served longest ago first");
    }

    /// A handler whose run stands for a push racing the end of a job: the push rewrote the
    /// record just before the worker removed it (so its request went with the record), and
    /// left what the job reads, which `more` finds.
    #[derive(Clone, Debug, Default)]
    struct Raced {
        runs: Arc<std::sync::atomic::AtomicU32>,
        arrived: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Handler for Raced {
        async fn run(&self, job: &Job) -> Result<Outcome> {
            // Queued after a failed run (one attempt), then again as new: a run that succeeded
            // leaves no attempts behind.
            let first = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            assert_eq!(job.attempts(), u32::from(first), "{job:?}");
            if first {
                self.arrived.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(Outcome::Done)
        }

        async fn give_up(&self, _job: &Job, _why: &str) -> Result<()> {
            Ok(())
        }

        async fn more(&self, _job: &Job) -> Result<bool> {
            Ok(self.arrived.swap(false, std::sync::atomic::Ordering::SeqCst))
        }
    }

    /// A queue over `storage`, two slots of each kind.
    fn queue_over(storage: &Arc<dyn wharf_store::Storage>) -> Queue {
        Queue {
            storage: Arc::clone(storage),
            slots: Arc::new(Slots::new(2)),
            deliveries: Arc::new(Slots::new(2)),
            wake: Arc::default(),
            adoptions: Arc::default(),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// A handler that counts its runs.
    #[derive(Clone, Debug, Default)]
    struct Counted(Arc<std::sync::atomic::AtomicU32>);

    impl Handler for Counted {
        async fn run(&self, _job: &Job) -> Result<Outcome> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Outcome::Done)
        }

        async fn give_up(&self, _job: &Job, _why: &str) -> Result<()> {
            Ok(())
        }

        async fn more(&self, _job: &Job) -> Result<bool> {
            Ok(false)
        }
    }

    /// A job claimed at birth is run by the worker working the queue, once, though its
    /// listing finds it too; one whose batch was not written runs all the same (what counted
    /// on it is served); and nothing is claimed at birth while no worker works the queue.
    #[tokio::test]
    async fn a_job_claimed_at_birth_runs_once_without_a_claim() {
        let storage: Arc<dyn wharf_store::Storage> = Arc::new(wharf_store::MemoryStore::new());
        let queue = queue_over(&storage);
        let job = |stream: &str| Job::Deliver { stream: stream.to_owned(), webhook: None, attempts: 0 };
        let (written, unwritten) = (job("00000000000000aa"), job("00000000000000bb"));
        assert!(queue.adoptions.claim_at_birth(&written).is_none(), "no worker works the queue yet");
        let handler = Counted::default();
        let worker = Arc::new(Worker::new(Arc::clone(&storage)));
        let working = tokio::spawn(Arc::clone(&worker).run(queue.clone(), handler.clone()));
        let runs = || handler.0.load(std::sync::atomic::Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let lease = loop {
            if let Some(lease) = queue.adoptions.claim_at_birth(&written) {
                break lease;
            }
            assert!(tokio::time::Instant::now() < deadline, "the worker claims at birth");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        storage.write_steps(vec![vec![written.write(), lease]]).await.expect("queued");
        // The listing looks as well: the job is run once.
        queue.wake.notify_one();
        queue.adoptions.adopt(written);
        queue.adoptions.adopt(unwritten);
        while runs() < 2 || !storage.list_meta(keys::JOBS_PENDING).await.expect("list").is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "both run, and their records go: {} runs",
                runs()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Time for a listing's claim to settle and run it again, were it to.
        tokio::time::sleep(SETTLE * 3).await;
        assert_eq!(runs(), 2, "each runs once");
        working.abort();
        let _ = working.await;
        assert!(queue.adoptions.claim_at_birth(&job("00000000000000cc")).is_none(), "the worker stopped");
    }

    /// Work that arrived for a counted job (a trust job) while its record went is queued again
    /// and run, once: the job is not lost, and not run forever.
    #[tokio::test]
    async fn work_arriving_as_a_job_ends_runs_it_again() {
        let storage: Arc<dyn wharf_store::Storage> = Arc::new(wharf_store::MemoryStore::new());
        let queue = queue_over(&storage);
        let job = Job::Trust {
            repository: "a/b".parse().expect("repo"),
            digest: Digest::sha256(b"m"),
            attempts: 1,
        };
        storage.write_steps(vec![vec![job.write()]]).await.expect("queued");
        let worker = Arc::new(Worker::new(Arc::clone(&storage)));
        let handler = Raced::default();
        worker.drain(&queue, &handler).await.expect("drained");
        assert_eq!(handler.runs.load(std::sync::atomic::Ordering::SeqCst), 2, "run again for what arrived");
        assert!(storage.list_meta(keys::JOBS_PENDING).await.expect("list").is_empty(), "done");
    }
}
