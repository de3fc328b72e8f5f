//! Webhooks (`[[webhook]]`): what happens in the registry, told to other systems — signed,
//! durable, in order.
//!
//! # An event's life
//!
//! A change writes its events **in the same batch** as the change itself (a manifest's
//! records, a tag, a deletion): one record for the change under
//! `webhook-events/<stream>/<first id>` (the stream: the repository's key, 16 hex digits of the
//! SHA-256 of its name), each event naming the webhooks that want it, and the stream's
//! `deliver` job. No event for a change that did not happen, no change without its events.
//! Refusals (a policy, a quota) change nothing: their event is written alone.
//!
//! The job queue delivers: whichever process claims a stream's job (the one whose change
//! queued it, at once) sends its changes oldest first, each event to its webhooks at once, and
//! removes a record once every webhook answered 2xx (in batches: a crash sends the last
//! second's again, under the same ids). It lingers a second for the next change, so a stream
//! pushed to steadily keeps one run; a change written in the process of the run hands its
//! records to it in memory once its batch is written, and wakes it (sent within a moment,
//! nothing read back), and the run lists the stream every 50 ms for the records of other
//! processes. A webhook that fails (an error status, a
//! timeout, a refused connection) has the event — and every later one of the stream, so that
//! it sees each repository's events in order — held for it
//! (`webhooks/<webhook>/pending/<stream>/<id>`); the other webhooks go on. Its own job sends
//! what it holds one at a time after a back-off doubling from `backoff` to `max_backoff`;
//! after `attempts` an event is parked (`webhooks/<webhook>/parked/<id>`), shown in the API, the
//! web page and `/metrics`, and can be sent again. An event keeps its id (`webhook-id`, the
//! CloudEvents `id`) however often it is sent: receivers deduplicate by it.
//!
//! # What it costs
//!
//! Nothing without webhooks. With them, a push writes one small record in the batch it writes
//! anyway — and no job while its stream's run lingers in this process, which it hands the
//! record to; the wire work and the record's removal are the job's. The change that queues a
//! stream's job claims it at birth for this process (`jobs::Adoptions`: the job's
//! lease in the same batch, the run started at once, no claim to settle), so from a stream's
//! first change on, the changes here count on its run. A record handed to a run
//! here is written brief ([`Write::Brief`]): on fs it lives in the journal and in memory only
//! (no file made and removed per change); the run publishes what it leaves unsent when it
//! ends, for whichever process takes its job next. Events that no write
//! bounds — pulls, refusals of pulls — are dropped (and counted) while a webhook's backlog is
//! over `max_pending`, so anonymous traffic cannot grow the records without bound; a run keeps
//! at most 1,024 handed records in memory (past that it lists them from the storage).
//!
//! # Safe by default
//!
//! Targets must be public addresses: an address literal in a loopback, private, link-local or
//! metadata range is refused at start, and names are resolved at each connection keeping only
//! public addresses (`wharf_client::PublicResolver`) — unless `allow_private`. Redirects are not
//! followed; each delivery is bounded in time (`timeout`) and reads at most 64 KiB of the
//! answer. Secrets and extra headers never reach a log or `Debug`.
//!
//! ```toml
//! [[webhook]]
//! name = "deployer"
//! url = "https://hooks.example.com/wharf"
//! events = ["manifest.pushed", "tag.moved"]   # default: every event but manifest.pulled
//! repositories = ["prod/**"]                   # default: every repository
//! secret_env = "DEPLOYER_WEBHOOK_SECRET"       # or secret_file: a Standard Webhooks `whsec_…` key
//! format = "cloudevents"                        # or "distribution"
//! headers = { "X-Team" = "platform" }
//! ```

mod deliver;
mod event;
mod format;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf_store::Write;
use wharf_types::Repository;

pub use deliver::TestDelivery;
pub(crate) use event::Event;
pub use event::{Actor, DeliveryRecord, EventKind, Format, Origin, WebhookSettings};
pub(crate) use format::wasm_fields;

use crate::error::{Error, Result};
use crate::jobs::Outcome;
use crate::metrics::Metrics;
use crate::registry::{Core, keys};

/// Deliveries kept per webhook and process for the API and the page.
const RECENT: usize = 20;
/// How often a process writes its last deliveries to its record (a storage write per
/// delivery run would compete with pushes).
const PERSIST_EVERY: Duration = Duration::from_secs(5);

/// The configured webhooks of a server, and this process's part in delivering their events.
#[derive(Debug, Default)]
pub struct Webhooks {
    hooks: Vec<deliver::Hook>,
    /// This process, in event ids and recent-delivery records.
    process: String,
    /// The last event sequence (µs) this process gave out.
    last_seq: AtomicU64,
    /// Deliveries made here, per webhook, newest last.
    recent: Mutex<HashMap<String, VecDeque<DeliveryRecord>>>,
    /// When each webhook's deliveries were last written to this process's record.
    persisted: Mutex<HashMap<String, std::time::Instant>>,
    /// Each webhook's backlog as last counted (events waiting), and when.
    backlog: Mutex<HashMap<String, (usize, std::time::Instant)>>,
    /// The public URL events name as their source.
    source: String,
    /// The runs over a stream's changes going on in this process.
    runs: Runs,
}

/// The runs over a stream's changes going on in this process, each with the changes in flight
/// that count on it (they queued no job of their own): a run ends only when none does. A
/// change written here hands its records to the run in memory and wakes it (the run reads
/// nothing back, and sends them at once); records written by other processes are found by
/// the run's listing, every [`LINGER_POLL`].
#[derive(Debug, Default)]
struct Runs(Mutex<HashMap<String, Run>>);

/// The most records handed to one run that wait in memory for it to take them (a run is
/// one of at most `deliveries` slots, 16, so a process holds at most 16 × this many).
const HANDED_MAX: usize = 1024;

/// One run over a stream's changes.
#[derive(Debug, Default)]
struct Run {
    /// Changes in flight that count on it.
    counting: usize,
    /// Records written by changes here that the run has not taken yet: key and events.
    handed: Vec<(String, Vec<Event>)>,
    /// Wakes the run when a record is handed to it.
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Runs {
    /// Records a run of `stream` as going on; what wakes it.
    fn begin(&self, stream: &str) -> std::sync::Arc<tokio::sync::Notify> {
        let mut runs = self.0.lock().expect("lock");
        std::sync::Arc::clone(&runs.entry(stream.to_owned()).or_default().wake)
    }

    /// Whether a run of `stream` goes on here with room for more handed records; if so, one
    /// more change counts on it.
    fn count_on(&self, stream: &str) -> bool {
        let mut runs = self.0.lock().expect("lock");
        runs.get_mut(stream)
            .filter(|run| run.handed.len() < HANDED_MAX)
            .map(|run| run.counting += 1)
            .is_some()
    }

    /// Begins a run of `stream` that the change asking counts on — a job claimed at birth, to
    /// be started once the change's batch is written — unless one goes on here already
    /// (false).
    fn prospect(&self, stream: &str) -> bool {
        let mut runs = self.0.lock().expect("lock");
        if runs.contains_key(stream) {
            return false;
        }
        runs.insert(stream.to_owned(), Run { counting: 1, ..Run::default() });
        true
    }

    /// A change that counted on the run of `stream` is written, with the record `key` holding
    /// `events` (`None`: it failed). At most [`HANDED_MAX`] records wait in memory for a run
    /// (one held up by a slow receiver while pulls are recorded); the rest it lists. False
    /// when the run ended meanwhile.
    fn written(&self, stream: &str, record: Option<(String, Vec<Event>)>) -> bool {
        let mut runs = self.0.lock().expect("lock");
        let Some(run) = runs.get_mut(stream) else { return false };
        run.counting = run.counting.saturating_sub(1);
        if let Some(record) = record {
            if run.handed.len() < HANDED_MAX {
                run.handed.push(record);
            }
            run.wake.notify_one();
        }
        true
    }

    /// The records handed to the run of `stream` since it last looked.
    fn take(&self, stream: &str) -> Vec<(String, Vec<Event>)> {
        self.0
            .lock()
            .expect("lock")
            .get_mut(stream)
            .map(|run| std::mem::take(&mut run.handed))
            .unwrap_or_default()
    }

    /// Ends the run of `stream` unless a change in flight counts on it or handed it a record;
    /// true when ended.
    fn try_end(&self, stream: &str) -> bool {
        let mut runs = self.0.lock().expect("lock");
        match runs.get(stream) {
            Some(run) if run.counting > 0 || !run.handed.is_empty() => false,
            _ => {
                runs.remove(stream);
                true
            }
        }
    }

    /// The run of `stream` ended otherwise (waiting, failed: its job stays queued, and the
    /// records handed to it wait in the storage, published by [`Webhooks::deliver`]).
    fn end(&self, stream: &str) {
        self.0.lock().expect("lock").remove(stream);
    }
}

/// The writes that record a change's events ([`Webhooks::writes_checked`]), to go in the
/// change's batch; [`written`](Self::written) once that batch is written (dropped otherwise).
pub(crate) struct EventWrites<'a> {
    pub(crate) writes: Vec<Write>,
    /// Whether a job was queued (to wake the worker once the batch is written).
    queued: bool,
    runs: &'a Runs,
    /// The records left to the runs of their streams here: stream, key and events.
    counting_on: Vec<(String, String, Vec<Event>)>,
    /// The jobs the batch claims at birth, handed to the worker once it is written (or not).
    adopt: Vec<crate::jobs::Job>,
    adoptions: &'a crate::jobs::Adoptions,
}

impl EventWrites<'_> {
    /// The change's batch is written: its records go to the runs of their streams here. A
    /// record whose run ended meanwhile is published (it was written brief), for whichever
    /// process claims the stream's job next. Whether a job was queued (the job worker is to
    /// be woken).
    pub(crate) async fn written(mut self, core: &Core) -> bool {
        for (stream, key, events) in std::mem::take(&mut self.counting_on) {
            if !self.runs.written(&stream, Some((key, events)))
                && let Err(e) = core.storage().publish(&keys::webhook_events(&stream)).await
            {
                tracing::error!(error = %e, stream, "publishing a change's event record failed; it is delivered after a restart");
            }
        }
        self.queued
    }
}

impl Drop for EventWrites<'_> {
    fn drop(&mut self) {
        for (stream, ..) in &self.counting_on {
            self.runs.written(stream, None);
        }
        // After the records are handed over; and when the batch failed too, for the changes
        // that counted on the run meanwhile.
        for job in self.adopt.drain(..) {
            self.adoptions.adopt(job);
        }
    }
}

impl Webhooks {
    /// The webhooks of `settings`, each checked (see [`WebhookSettings::check`]) and given its
    /// HTTP client; `public_url` names the registry in events (`source`).
    pub fn new(settings: Vec<WebhookSettings>, public_url: Option<&str>) -> Result<Self> {
        let mut names = std::collections::BTreeSet::new();
        let mut hooks = Vec::new();
        for s in settings {
            s.check()?;
            if !names.insert(s.name.clone()) {
                return Err(Error::BadRequest(format!("[[webhook]] `{}` is named twice", s.name)));
            }
            hooks.push(deliver::Hook::new(s)?);
        }
        Ok(Self {
            hooks,
            process: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            source: public_url.unwrap_or_default().trim_end_matches('/').to_owned(),
            ..Self::default()
        })
    }

    /// Whether any webhook is configured.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The webhooks' settings.
    pub fn settings(&self) -> impl Iterator<Item = &WebhookSettings> {
        self.hooks.iter().map(|h| &h.settings)
    }

    fn hook(&self, name: &str) -> Option<&deliver::Hook> {
        self.hooks.iter().find(|h| h.settings.name == name)
    }

    /// Whether a webhook wants events of `kind` in `repo` (so their facts are worth reading);
    /// never without webhooks.
    pub(crate) fn wants(&self, kind: EventKind, repo: &Repository) -> bool {
        self.hooks.iter().any(|h| h.settings.wants(kind, Some(repo)))
    }

    /// The next event id of this process: `<µs, 16 digits>-<process>`, increasing.
    fn next_id(&self) -> String {
        let now = u64::try_from(crate::clock::now_ms() * 1000).unwrap_or(u64::MAX);
        let mut last = self.last_seq.load(Ordering::Relaxed);
        let seq = loop {
            let next = now.max(last + 1);
            match self.last_seq.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        format!("{seq:016}-{}", self.process)
    }

    /// The writes that record `events` (of one change, in order) for every webhook that
    /// wants them — one record per webhook and stream, holding its events — and their
    /// streams' `deliver` jobs: to go in the batch of the change they tell of. Empty when none
    /// wants them (or, for events no write bounds, when a webhook's backlog is full: dropped
    /// and counted). A job already queued is not written again
    /// ([`Webhooks::writes_checked`] reads which are).
    pub(crate) fn writes(&self, events: Vec<Event>, metrics: &Metrics) -> Vec<Write> {
        let changes = self.records(events, metrics);
        let mut writes: Vec<Write> = changes.iter().map(Change::write).collect();
        writes.extend(changes.iter().map(|c| c.job().write()));
        writes
    }

    /// [`writes`](Self::writes) for a change (a push, a deletion, a refusal), without the jobs
    /// it need not queue: none while a run of its stream lingers in this process (the
    /// answer keeps that run going until it is dropped — after the change's batch; the record
    /// is then written brief, [`Write::Brief`]: the run removes it a moment later, and on fs
    /// it never becomes a file), nor while the stream's job is queued (read). A job another
    /// process ends in the instant between that read and the batch is caught by the run's
    /// last look at its stream, or by [`requeue`](Self::requeue). A job nobody has queued is
    /// claimed at birth for this process's worker ([`crate::jobs::Adoptions`]): its run
    /// begins here at once, counted on by this change and the ones after it, whose records
    /// are brief too.
    pub(crate) async fn writes_checked<'a>(
        &'a self,
        core: &Core,
        adoptions: &'a crate::jobs::Adoptions,
        events: Vec<Event>,
        metrics: &Metrics,
    ) -> Result<EventWrites<'a>> {
        let changes = self.records(events, metrics);
        let mut out = EventWrites {
            writes: Vec::new(),
            queued: false,
            runs: &self.runs,
            counting_on: Vec::new(),
            adopt: Vec::new(),
            adoptions,
        };
        for change in changes {
            if self.runs.count_on(&change.stream) {
                out.writes.push(change.write_brief());
                out.counting_on.push((change.stream, change.key, change.events));
                continue;
            }
            let job = change.job();
            if job.is_queued(&**core.storage()).await? {
                out.writes.push(change.write());
                continue;
            }
            if let Some(lease) = adoptions.claim_at_birth(&job)
                && self.runs.prospect(&change.stream)
            {
                out.writes.extend([change.write_brief(), job.write(), lease]);
                out.counting_on.push((change.stream, change.key, change.events));
                out.adopt.push(job);
                continue;
            }
            out.writes.extend([change.write(), job.write()]);
            out.queued = true;
        }
        Ok(out)
    }

    /// The records of `events` — one per stream, each event naming the webhooks that want
    /// it. An event no webhook wants is left out.
    fn records(&self, events: Vec<Event>, metrics: &Metrics) -> Vec<Change> {
        let mut records: std::collections::BTreeMap<String, Vec<Event>> = std::collections::BTreeMap::new();
        for mut event in events {
            event.id = self.next_id();
            event.to = self
                .settings()
                .filter(|s| s.wants(event.kind, event.repository.as_ref()))
                .filter(|s| {
                    let full = !event.kind.bounded_by_writes() && self.backlog_full(&s.name, s.max_pending);
                    if full {
                        metrics.webhook_dropped(&s.name);
                    }
                    !full
                })
                .map(|s| s.name.clone())
                .collect();
            if !event.to.is_empty() {
                records.entry(event.stream()).or_default().push(event);
            }
        }
        records
            .into_iter()
            .map(|(stream, events)| Change {
                key: keys::webhook_change(&stream, &events[0].id),
                stream,
                events,
            })
            .collect()
    }

    /// Whether the backlog of webhook `name` — records waiting (one per change) and events
    /// parked, as last counted, at most 10 s ago or by a scrape — is at `max`.
    fn backlog_full(&self, name: &str, max: usize) -> bool {
        self.backlog.lock().expect("lock").get(name).is_some_and(|(n, _)| *n >= max)
    }

    /// Records the backlog of webhook `name`.
    fn set_backlog(&self, name: &str, n: usize) {
        self.backlog.lock().expect("lock").insert(name.to_owned(), (n, std::time::Instant::now()));
    }

    /// Whether the backlog of `name` was counted within 10 s.
    fn backlog_fresh(&self, name: &str) -> bool {
        self.backlog
            .lock()
            .expect("lock")
            .get(name)
            .is_some_and(|(_, at)| at.elapsed() < Duration::from_secs(10))
    }
}

/// The record of one change's events in one stream.
struct Change {
    stream: String,
    key: String,
    events: Vec<Event>,
}

impl Change {
    /// The write of the record.
    fn write(&self) -> Write {
        Write::Set {
            key: self.key.clone(),
            value: serde_json::to_vec(&self.events).expect("events serialise").into(),
        }
    }

    /// The write of the record, brief: for the run of its stream here to remove.
    fn write_brief(&self) -> Write {
        Write::Brief {
            key: self.key.clone(),
            value: serde_json::to_vec(&self.events).expect("events serialise").into(),
        }
    }

    /// The job that delivers its stream.
    fn job(&self) -> crate::jobs::Job {
        crate::jobs::Job::Deliver { stream: self.stream.clone(), webhook: None, attempts: 0 }
    }
}

/// What the Wasm fields of an event wait for.
enum WasmFields {
    /// Known (or nothing to know).
    Ready(Option<serde_json::Value>),
    /// The artifact's modules are still being read.
    Wait,
}

/// How long a run over a stream's changes waits for the next one before it ends.
const LINGER: Duration = Duration::from_secs(1);
/// How often it looks while it waits.
const LINGER_POLL: Duration = Duration::from_millis(50);
/// How long the removal of sent records may wait, to be written with others (a crash sends
/// them again, under the same ids).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How long a stream waits for an inspection before it sends what it knows.
const INSPECTION_WAIT: Duration = Duration::from_secs(120);

/// A run over a stream's changes: which webhooks hold events of the stream (those events go
/// first, so later ones queue behind them), and the held jobs it queued.
#[derive(Default)]
struct Holds {
    /// Whether each webhook holds events of the stream: read when first needed and after each
    /// write of the run's own (only the run of the stream's changes, which one process at a
    /// time makes, adds to them).
    holding: HashMap<String, bool>,
    /// The held jobs looked at (queued, or found queued).
    queued: std::collections::HashSet<String>,
    /// The soonest a held job this run queued is due.
    due: Option<Duration>,
}

impl Holds {
    /// Whether `webhook` holds events of `stream`.
    async fn holding(&mut self, core: &Core, stream: &str, webhook: &str) -> Result<bool> {
        if let Some(holding) = self.holding.get(webhook) {
            return Ok(*holding);
        }
        let holding = !core.storage().list_meta(&keys::webhook_stream(webhook, stream)).await?.is_empty();
        self.holding.insert(webhook.to_owned(), holding);
        Ok(holding)
    }

    /// What this run held is written: whether a webhook still holds events (its job may have
    /// sent them all since) and whether its job is queued are read again when next needed.
    fn written(&mut self) {
        self.holding.retain(|_, holding| !*holding);
        self.queued.clear();
    }

    /// Holds `event` for `webhook` (behind what it holds already), and queues the webhook's
    /// job of the stream unless it is queued: due after `wait` when a send just failed.
    async fn hold(
        &mut self,
        core: &Core,
        writes: &mut Vec<Write>,
        stream: &str,
        webhook: &str,
        event: &Event,
        wait: Option<Duration>,
    ) -> Result<()> {
        writes.push(Write::Set {
            key: keys::webhook_event(webhook, stream, &event.id),
            value: serde_json::to_vec(&[event]).expect("an event serialises").into(),
        });
        self.holding.insert(webhook.to_owned(), true);
        let job = crate::jobs::Job::Deliver {
            stream: stream.to_owned(),
            webhook: Some(webhook.to_owned()),
            attempts: 0,
        };
        if self.queued.insert(job.id()) && !job.is_queued(&**core.storage()).await? {
            match wait {
                Some(wait) => {
                    writes.extend(job.write_after(wait));
                    self.due = Some(self.due.map_or(wait, |d| d.min(wait)));
                }
                None => writes.push(job.write()),
            }
        }
        Ok(())
    }
}

/// Ends a run's record however the run ends.
struct Ended<'a>(&'a Runs, &'a str);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.end(self.1);
    }
}

/// What one send came to.
enum Settled {
    Delivered,
    /// Out of attempts: to be parked.
    Parked,
    /// To be tried again after this wait.
    Retry(Duration),
}

impl Webhooks {
    /// Sends the events of `stream`, oldest first, until none is left (done) or one must wait
    /// (try again later): with no `webhook`, the changes' records, each event to every webhook
    /// it names at once; with one, the events held for it after a failed send. The job
    /// `deliver-<stream>[-<webhook>]` calls this in whichever process claimed it.
    pub(crate) async fn deliver(
        &self,
        core: &Core,
        metrics: &Metrics,
        stream: &str,
        webhook: Option<&str>,
    ) -> Result<Outcome> {
        // Sent events are removed in batches (one storage write for many; a crash in between
        // sends them again, under the same ids), and the deliveries are recorded once, at the
        // run's end.
        let mut writes = Vec::new();
        let outcome = match webhook {
            None => self.send_changes(core, metrics, stream, &mut writes).await,
            Some(webhook) => self.send_held(core, metrics, stream, webhook, &mut writes).await,
        };
        let mut flushed = Self::flush(core, &mut writes).await;
        if webhook.is_none() {
            // What this run was handed and did not send (it waits, or failed) — written brief —
            // goes to the storage for whichever process claims the job next (even when the
            // removals failed: what was sent is then sent again, under the same ids). The run
            // has ended: a change counting on it publishes its record itself.
            let published = core.storage().publish(&keys::webhook_events(stream)).await.map_err(Error::from);
            flushed = flushed.and(published);
        }
        for hook in self.hooks.iter().filter(|h| webhook.is_none_or(|w| w == h.settings.name)) {
            self.persist_recent(core, &hook.settings.name).await;
        }
        flushed?;
        outcome
    }

    /// Applies the writes gathered so far.
    async fn flush(core: &Core, writes: &mut Vec<Write>) -> Result<()> {
        if !writes.is_empty() {
            core.storage().write_steps(vec![std::mem::take(writes)]).await?;
        }
        Ok(())
    }

    /// [`deliver`](Self::deliver) of a stream's changes: each event goes to the webhooks it
    /// names, at once. What a webhook fails — and whatever comes for it while it holds
    /// events of the stream, so that it sees them in order — is held for it, and its own job
    /// sends it after a back-off; the other webhooks go on.
    async fn send_changes(
        &self,
        core: &Core,
        metrics: &Metrics,
        stream: &str,
        writes: &mut Vec<Write>,
    ) -> Result<Outcome> {
        let storage = core.storage();
        let prefix = keys::webhook_events(stream);
        let mut holds = Holds::default();
        let mut wake = self.runs.begin(stream);
        let _ended = Ended(&self.runs, stream);
        // The records sent whose removal waits in `writes`, and those removed by the last
        // flush (a record handed over a moment after the listing found it is not sent twice);
        // when `writes` was last applied, and the stream last listed.
        let (mut sent, mut removed) = (HashSet::new(), HashSet::new());
        let mut flushed = std::time::Instant::now();
        let mut listed: Option<std::time::Instant> = None;
        let mut idle: Option<std::time::Instant> = None;
        loop {
            if writes.len() >= 64 || flushed.elapsed() >= FLUSH_EVERY {
                Self::flush(core, writes).await?;
                removed = std::mem::take(&mut sent);
                holds.written();
                flushed = std::time::Instant::now();
            }
            let fresh = |key: &String| !sent.contains(key) && !removed.contains(key);
            // Records handed over by changes here (in memory), and every LINGER_POLL those
            // of other processes (and of runs before this one) found by listing.
            let mut pending: std::collections::BTreeMap<String, Option<Vec<Event>>> = self
                .runs
                .take(stream)
                .into_iter()
                .filter(|(k, _)| fresh(k))
                .map(|(k, e)| (k, Some(e)))
                .collect();
            if listed.is_none_or(|at| at.elapsed() >= LINGER_POLL) {
                for key in storage.list_meta(&prefix).await?.into_iter().filter(|k| fresh(k)) {
                    pending.entry(key).or_insert(None);
                }
                listed = Some(std::time::Instant::now());
            }
            if pending.is_empty() {
                // Lingers a moment for the next change: a stream pushed to steadily keeps its
                // run (no job record, lease and removal per push).
                let since = *idle.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= LINGER && self.runs.try_end(stream) {
                    // Changes from now on queue the job themselves; one last look for those
                    // written before.
                    if storage.list_meta(&prefix).await?.iter().all(|k| !fresh(k)) {
                        return Ok(holds.due.map_or(Outcome::Done, Outcome::DoneThen));
                    }
                    wake = self.runs.begin(stream);
                    listed = None;
                }
                let _ = tokio::time::timeout(LINGER_POLL, wake.notified()).await;
                continue;
            }
            idle = None;
            if pending.len() > 256 {
                // The rest on the next turn, listed.
                listed = None;
            }
            for (key, handed) in pending.into_iter().take(256) {
                let (bytes, mut events) = match handed {
                    Some(events) => (None, events),
                    None => match Self::read_record(core, &key, writes).await? {
                        Some((bytes, events)) => (Some(bytes), events),
                        None => continue,
                    },
                };
                while let Some(event) = events.first_mut() {
                    let wasm = match self.wasm_fields(core, event).await? {
                        WasmFields::Ready(wasm) => wasm,
                        WasmFields::Wait => {
                            Self::keep(writes, key, &events, bytes.as_deref().unwrap_or_default());
                            return Ok(Outcome::Later(Duration::from_secs(1)));
                        }
                    };
                    let mut event = events.remove(0);
                    let mut hooks = Vec::new();
                    for name in std::mem::take(&mut event.to) {
                        let Some(hook) = self.hook(&name) else {
                            // Its webhook is gone from the config: parked, for an operator who
                            // brings it back to send again.
                            let mut parked = event.clone();
                            parked.last_error = Some("the webhook is no longer configured".into());
                            writes.push(Self::parked(&name, &parked));
                            continue;
                        };
                        if holds.holding(core, stream, &name).await? {
                            holds.hold(core, writes, stream, &name, &event, None).await?;
                        } else {
                            hooks.push(hook);
                        }
                    }
                    let mut bodies: [Option<Vec<u8>>; 2] = [None, None];
                    let sends = hooks.iter().map(|hook| {
                        let format = hook.settings.format;
                        let body = bodies[usize::from(format == Format::Distribution)]
                            .get_or_insert_with(|| {
                                format::body(format, &event, &self.source, wasm.as_ref(), &self.process)
                            })
                            .clone();
                        hook.send(&event.id, body)
                    });
                    let answers = futures_util::future::join_all(sends.collect::<Vec<_>>()).await;
                    for (hook, answer) in hooks.into_iter().zip(answers) {
                        let name = hook.settings.name.as_str();
                        let mut event = event.clone();
                        match self.settle(metrics, hook, &mut event, &answer) {
                            Settled::Delivered => {}
                            Settled::Parked => writes.push(Self::parked(name, &event)),
                            Settled::Retry(wait) => {
                                holds.hold(core, writes, stream, name, &event, Some(wait)).await?;
                            }
                        }
                    }
                }
                writes.push(Write::Remove { key: key.clone() });
                sent.insert(key);
            }
        }
    }

    /// [`deliver`](Self::deliver) of the events held for `webhook`: one at a time, each
    /// until it is delivered, waits (its back-off) or is parked.
    async fn send_held(
        &self,
        core: &Core,
        metrics: &Metrics,
        stream: &str,
        webhook: &str,
        writes: &mut Vec<Write>,
    ) -> Result<Outcome> {
        let storage = core.storage();
        let prefix = keys::webhook_stream(webhook, stream);
        let Some(hook) = self.hook(webhook) else {
            // Its webhook is gone from the config: what waited is parked, for an operator who
            // brings it back to send again.
            for key in storage.list_meta(&prefix).await? {
                self.park(core, webhook, &key, "the webhook is no longer configured").await?;
            }
            return Ok(Outcome::Done);
        };
        loop {
            Self::flush(core, writes).await?;
            let mut pending = storage.list_meta(&prefix).await?;
            if pending.is_empty() {
                return Ok(Outcome::Done);
            }
            pending.sort();
            for key in pending.into_iter().take(256) {
                let Some((bytes, mut events)) = Self::read_record(core, &key, writes).await? else {
                    continue;
                };
                while let Some(event) = events.first_mut() {
                    let wasm = match self.wasm_fields(core, event).await? {
                        WasmFields::Ready(wasm) => wasm,
                        WasmFields::Wait => {
                            Self::keep(writes, key, &events, &bytes);
                            return Ok(Outcome::Later(Duration::from_secs(1)));
                        }
                    };
                    let body =
                        format::body(hook.settings.format, event, &self.source, wasm.as_ref(), &self.process);
                    let sent = hook.send(&event.id, body).await;
                    match self.settle(metrics, hook, event, &sent) {
                        Settled::Delivered => {
                            events.remove(0);
                        }
                        Settled::Parked => writes.push(Self::parked(webhook, &events.remove(0))),
                        Settled::Retry(wait) => {
                            Self::keep(writes, key, &events, &[]);
                            return Ok(Outcome::Later(wait));
                        }
                    }
                }
                writes.push(Write::Remove { key });
                if writes.len() >= 64 {
                    Self::flush(core, writes).await?;
                }
            }
        }
    }

    /// The events of the record at `key`, and its bytes; none when it is gone, or when it does
    /// not parse (its removal is added to `writes`).
    async fn read_record(
        core: &Core,
        key: &str,
        writes: &mut Vec<Write>,
    ) -> Result<Option<(bytes::Bytes, Vec<Event>)>> {
        let Some(bytes) = core.storage().get_meta(key).await? else { return Ok(None) };
        if let Ok(events) = serde_json::from_slice::<Vec<Event>>(&bytes) {
            return Ok(Some((bytes, events)));
        }
        tracing::error!(key, "dropping an event record that does not parse");
        writes.push(Write::Remove { key: key.to_owned() });
        Ok(None)
    }

    /// What a send of `event` to `hook` came to, its attempt counted: noted, measured, logged.
    fn settle(
        &self,
        metrics: &Metrics,
        hook: &deliver::Hook,
        event: &mut Event,
        sent: &deliver::Sent,
    ) -> Settled {
        let webhook = hook.settings.name.as_str();
        event.attempts += 1;
        let outcome = match (&sent.error, event.attempts >= hook.settings.attempts) {
            (None, _) => "delivered",
            (Some(_), false) => "failed",
            (Some(_), true) => "parked",
        };
        metrics.webhook_delivery(webhook, outcome, sent.latency.as_secs_f64());
        self.note(webhook, event, sent, outcome);
        let Some(why) = &sent.error else { return Settled::Delivered };
        event.last_error = Some(why.clone());
        if outcome == "parked" {
            tracing::warn!(
                webhook,
                event = event.id,
                attempts = event.attempts,
                error = why,
                "parking an event"
            );
            Settled::Parked
        } else {
            tracing::info!(
                webhook,
                event = event.id,
                attempts = event.attempts,
                error = why,
                "a delivery failed; it will be retried"
            );
            Settled::Retry(hook.settings.backoff_after(event.attempts))
        }
    }

    /// The write that parks `event` for `webhook`.
    fn parked(webhook: &str, event: &Event) -> Write {
        Write::Set {
            key: keys::webhook_parked(webhook, &event.id),
            value: serde_json::to_vec(event).expect("an event serialises").into(),
        }
    }

    /// The write that keeps what is left of a record (`events`), unless it is as read.
    fn keep(writes: &mut Vec<Write>, key: String, events: &[Event], read: &[u8]) {
        let value = serde_json::to_vec(events).expect("events serialise");
        if value != read {
            writes.push(Write::Set { key, value: value.into() });
        }
    }

    /// Whether events of `stream` wait: the changes' records (no `webhook`), or those held for
    /// `webhook`.
    pub(crate) async fn waiting(&self, core: &Core, stream: &str, webhook: Option<&str>) -> Result<bool> {
        let prefix = match webhook {
            None => keys::webhook_events(stream),
            Some(webhook) => keys::webhook_stream(webhook, stream),
        };
        Ok(!core.storage().list_meta(&prefix).await?.is_empty())
    }

    /// The Wasm fields of the artifact an event is about, read from its artifact record when
    /// sent (so they hold what the inspection found); wait while the modules are being read,
    /// for at most [`INSPECTION_WAIT`] after the event.
    async fn wasm_fields(&self, core: &Core, event: &Event) -> Result<WasmFields> {
        if let Some(wasm) = &event.wasm {
            return Ok(WasmFields::Ready(Some(wasm.clone())));
        }
        let (Some(repo), Some(digest)) = (&event.repository, &event.digest) else {
            return Ok(WasmFields::Ready(None));
        };
        if !event.read_wasm || matches!(event.kind, EventKind::ManifestDeleted | EventKind::TagDeleted) {
            return Ok(WasmFields::Ready(None));
        }
        let Some(record) = core.artifact_record(repo, digest).await? else {
            return Ok(WasmFields::Ready(None));
        };
        let pending = record["inspection"]["status"] == "pending";
        let age = event_age(&event.id);
        if pending && age < INSPECTION_WAIT {
            return Ok(WasmFields::Wait);
        }
        Ok(WasmFields::Ready(format::wasm_fields(&record)))
    }

    /// Moves the events of the record at `key` to the parked ones (as they are, with `why`).
    async fn park(&self, core: &Core, webhook: &str, key: &str, why: &str) -> Result<()> {
        let Some(bytes) = core.storage().get_meta(key).await? else { return Ok(()) };
        let mut writes = vec![Write::Remove { key: key.to_owned() }];
        for mut event in serde_json::from_slice::<Vec<Event>>(&bytes).unwrap_or_default() {
            event.last_error = Some(why.to_owned());
            writes.push(Self::parked(webhook, &event));
        }
        core.storage().write_steps(vec![writes]).await?;
        Ok(())
    }

    /// Keeps the delivery among this process's last ones for the webhook (in memory; see
    /// [`persist_recent`](Self::persist_recent)).
    fn note(&self, webhook: &str, event: &Event, sent: &deliver::Sent, outcome: &str) {
        let record = DeliveryRecord {
            event: event.id.clone(),
            kind: event.kind.name().to_owned(),
            repository: event.repository.as_ref().map(ToString::to_string),
            at: crate::clock::now_rfc3339(),
            status: sent.status,
            latency_ms: u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
            attempt: event.attempts,
            outcome: outcome.to_owned(),
            error: sent.error.clone(),
        };
        let mut recent = self.recent.lock().expect("lock");
        let list = recent.entry(webhook.to_owned()).or_default();
        list.push_back(record);
        while list.len() > RECENT {
            list.pop_front();
        }
    }

    /// Writes this process's last deliveries to `webhook` to its record (what the API and
    /// the page merge across processes), at most every [`PERSIST_EVERY`] (this process's
    /// own API answers read them from memory). A record that cannot be written is only
    /// logged: the deliveries happened.
    async fn persist_recent(&self, core: &Core, webhook: &str) {
        {
            let mut persisted = self.persisted.lock().expect("lock");
            if persisted.get(webhook).is_some_and(|at| at.elapsed() < PERSIST_EVERY) {
                return;
            }
            persisted.insert(webhook.to_owned(), std::time::Instant::now());
        }
        let list: Vec<DeliveryRecord> = {
            let recent = self.recent.lock().expect("lock");
            match recent.get(webhook) {
                Some(list) => list.iter().cloned().collect(),
                None => return,
            }
        };
        let value = serde_json::to_vec(&list).expect("JSON serialises");
        if let Err(e) =
            core.storage().set_meta(&keys::webhook_recent(webhook, &self.process), value.into()).await
        {
            tracing::warn!(webhook, error = %e, "recording deliveries failed");
        }
    }

    /// Puts parked events of `webhook` back in line (all, or the one with id `event`), each
    /// with its attempts reset and its id kept; returns how many.
    pub(crate) async fn resend(&self, core: &Core, webhook: &str, event: Option<&str>) -> Result<usize> {
        if self.hook(webhook).is_none() {
            return Err(Error::RouteUnknown(format!("webhook `{}`", crate::text::printable(webhook, 64))));
        }
        let storage = core.storage();
        let mut n = 0;
        for key in storage.list_meta(&keys::webhook_parked_all(webhook)).await? {
            let Some(bytes) = storage.get_meta(&key).await? else { continue };
            let Ok(mut parked) = serde_json::from_slice::<Event>(&bytes) else { continue };
            if event.is_some_and(|id| id != parked.id) {
                continue;
            }
            parked.attempts = 0;
            parked.last_error = None;
            let stream = parked.stream();
            let writes = vec![
                Write::Set {
                    key: keys::webhook_event(webhook, &stream, &parked.id),
                    value: serde_json::to_vec(&[&parked]).expect("an event serialises").into(),
                },
                crate::jobs::Job::Deliver { stream, webhook: Some(webhook.to_owned()), attempts: 0 }.write(),
                Write::Remove { key },
            ];
            storage.write_steps(vec![writes]).await?;
            n += 1;
        }
        if n == 0 && event.is_some() {
            return Err(Error::RouteUnknown(format!(
                "parked event `{}`",
                crate::text::printable(event.unwrap_or_default(), 80)
            )));
        }
        Ok(n)
    }

    /// Queues the delivery of every stream that has events waiting and no job (a job removed
    /// in the instant another process wrote an event to its stream, or held one for a
    /// webhook). A server does this at start and every 30 s. Returns how many jobs it queued.
    pub(crate) async fn requeue(&self, core: &Core) -> Result<usize> {
        let storage = core.storage();
        let streams = |prefix: &str, keys: Vec<String>| {
            keys.iter()
                .filter_map(|k| k[prefix.len()..].split_once('/').map(|(s, _)| s.to_owned()))
                .collect::<std::collections::BTreeSet<String>>()
        };
        let mut jobs = Vec::new();
        for stream in streams(keys::WEBHOOK_EVENTS, storage.list_meta(keys::WEBHOOK_EVENTS).await?) {
            jobs.push(crate::jobs::Job::Deliver { stream, webhook: None, attempts: 0 });
        }
        for hook in &self.hooks {
            let name = &hook.settings.name;
            let prefix = keys::webhook_pending_all(name);
            for stream in streams(&prefix, storage.list_meta(&prefix).await?) {
                jobs.push(crate::jobs::Job::Deliver { stream, webhook: Some(name.clone()), attempts: 0 });
            }
        }
        let mut writes = Vec::new();
        for job in jobs {
            if !job.is_queued(&**storage).await? {
                writes.push(job.write());
            }
        }
        let n = writes.len();
        if !writes.is_empty() {
            storage.write_steps(vec![writes]).await?;
        }
        Ok(n)
    }

    /// Counts the backlogs when one was not counted within 10 s (what bounds events no
    /// write bounds). Cheap when fresh.
    pub(crate) async fn refresh_backlog(&self, core: &Core) -> Result<()> {
        if self.settings().any(|s| !self.backlog_fresh(&s.name)) {
            self.backlogs(core).await?;
        }
        Ok(())
    }

    /// Each webhook's backlog, in the order of the config: the events waiting for it (in the
    /// changes' records, and held for it) and the keys of its parked events; counted (what
    /// bounds the events no write bounds). The changes' records are read: few wait unless
    /// no process delivers (a failing webhook's events are held for it, not left there).
    async fn backlogs(&self, core: &Core) -> Result<Vec<(usize, Vec<String>)>> {
        let storage = core.storage();
        let mut waiting: HashMap<String, usize> = HashMap::new();
        for key in storage.list_meta(keys::WEBHOOK_EVENTS).await? {
            let Some(bytes) = storage.get_meta(&key).await? else { continue };
            for event in serde_json::from_slice::<Vec<Event>>(&bytes).unwrap_or_default() {
                for name in event.to {
                    *waiting.entry(name).or_default() += 1;
                }
            }
        }
        let mut out = Vec::new();
        for s in self.settings() {
            let held = storage.list_meta(&keys::webhook_pending_all(&s.name)).await?.len();
            let pending = held + waiting.get(&s.name).copied().unwrap_or(0);
            let parked = storage.list_meta(&keys::webhook_parked_all(&s.name)).await?;
            self.set_backlog(&s.name, pending + parked.len());
            out.push((pending, parked));
        }
        Ok(out)
    }

    /// Each webhook as the API shows it: settings (the URL without query or credentials),
    /// events waiting, parked events (at most 100), the last deliveries of every process.
    pub(crate) async fn status(&self, core: &Core) -> Result<Vec<WebhookStatus>> {
        let storage = core.storage();
        let mut out = Vec::new();
        for (hook, (pending, parked_keys)) in self.hooks.iter().zip(self.backlogs(core).await?) {
            let s = &hook.settings;
            let mut parked = Vec::new();
            for key in parked_keys.iter().take(100) {
                if let Some(event) =
                    storage.get_meta(key).await?.and_then(|b| serde_json::from_slice::<Event>(&b).ok())
                {
                    parked.push(ParkedEvent {
                        event: event.id.clone(),
                        kind: event.kind.name().to_owned(),
                        repository: event.repository.as_ref().map(ToString::to_string),
                        time: event.time.clone(),
                        attempts: event.attempts,
                        error: event.last_error.clone(),
                    });
                }
            }
            let mut recent: Vec<DeliveryRecord> = self
                .recent
                .lock()
                .expect("lock")
                .get(&s.name)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            let own = keys::webhook_recent(&s.name, &self.process);
            for key in storage.list_meta(&keys::webhook_recent_all(&s.name)).await? {
                if key == own {
                    continue;
                }
                if let Some(list) = storage
                    .get_meta(&key)
                    .await?
                    .and_then(|b| serde_json::from_slice::<Vec<DeliveryRecord>>(&b).ok())
                {
                    recent.extend(list);
                }
            }
            recent.sort_by(|a, b| b.at.cmp(&a.at));
            recent.truncate(RECENT);
            out.push(WebhookStatus {
                name: s.name.clone(),
                url: event::redacted_url(&s.url),
                format: match s.format {
                    Format::CloudEvents => "cloudevents",
                    Format::Distribution => "distribution",
                }
                .to_owned(),
                events: s.events.iter().map(|k| k.name().to_owned()).collect(),
                repositories: s.repositories.iter().map(ToString::to_string).collect(),
                signed: s.secret.is_some(),
                pending,
                parked_count: parked_keys.len(),
                parked,
                recent,
            });
        }
        Ok(out)
    }

    /// Sends a test event (`webhook.test`) to `webhook` now, outside the queue.
    pub async fn test(&self, webhook: &str) -> Result<TestDelivery> {
        let hook = self.hook(webhook).ok_or_else(|| {
            Error::RouteUnknown(format!("webhook `{}`", crate::text::printable(webhook, 64)))
        })?;
        let mut event = Event::new(EventKind::Test, &Origin::system());
        event.id = self.next_id();
        event.reason = Some("a test from `wharf-server webhook test`".into());
        let body = format::body(hook.settings.format, &event, &self.source, None, &self.process);
        let sent = hook.send(&event.id, body).await;
        Ok(TestDelivery {
            webhook: webhook.to_owned(),
            event: event.id,
            status: sent.status,
            latency_ms: u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
            error: sent.error,
        })
    }

    /// The gauges of `/metrics`: events waiting and parked, per webhook.
    pub(crate) async fn counts(&self, core: &Core) -> Result<Vec<(String, usize, usize)>> {
        let backlogs = self.backlogs(core).await?;
        Ok(self
            .settings()
            .zip(backlogs)
            .map(|(s, (pending, parked))| (s.name.clone(), pending, parked.len()))
            .collect())
    }
}

/// The age of an event by its id (`<µs>-<process>`).
fn event_age(id: &str) -> Duration {
    let micros: u128 = id.split('-').next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let now = crate::clock::now_ms() * 1000;
    Duration::from_micros(u64::try_from(now.saturating_sub(micros)).unwrap_or(u64::MAX))
}

/// A parked event, as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ParkedEvent {
    /// Its id.
    pub event: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// When it happened.
    pub time: String,
    /// Sends that failed.
    pub attempts: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One webhook as the API shows it (`GET /v2/_wharf/webhooks`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WebhookStatus {
    /// Its name.
    pub name: String,
    /// Its URL, without query or credentials.
    pub url: String,
    /// `cloudevents` or `distribution`.
    pub format: String,
    /// The events it is told of.
    pub events: Vec<String>,
    /// Its repository patterns (none: all).
    pub repositories: Vec<String>,
    /// Whether deliveries are signed.
    pub signed: bool,
    /// Events waiting.
    pub pending: usize,
    /// Events parked.
    pub parked_count: usize,
    /// The parked events (the first 100).
    pub parked: Vec<ParkedEvent>,
    /// The last deliveries, newest first.
    pub recent: Vec<DeliveryRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_handed_what_is_written_here_and_ends_only_when_nothing_waits_for_it() {
        let runs = Runs::default();
        assert!(!runs.count_on("s"), "no run: the change queues its job");
        let _wake = runs.begin("s");
        assert!(runs.count_on("s"));
        assert!(!runs.try_end("s"), "a change in flight counts on the run");
        let event = Event::new(EventKind::TagMoved, &Origin::system());
        assert!(runs.written("s", Some(("webhook-events/s/1".into(), vec![event]))));
        assert!(!runs.try_end("s"), "a record handed over and not taken keeps the run");
        let taken = runs.take("s");
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, "webhook-events/s/1");
        assert!(runs.take("s").is_empty(), "taken once");
        // A change whose batch failed hands nothing over.
        assert!(runs.count_on("s"));
        runs.written("s", None);
        assert!(runs.take("s").is_empty());
        assert!(runs.try_end("s"));
        assert!(!runs.count_on("s"), "ended");
        // A change whose run ended while its batch was written is told so (it publishes its
        // record for the next run, wherever that runs).
        let _wake = runs.begin("s");
        assert!(runs.count_on("s"));
        runs.end("s");
        assert!(!runs.written("s", Some(("webhook-events/s/2".into(), Vec::new()))));
        // A run that does not take what it is handed (a slow receiver) holds at most
        // HANDED_MAX records in memory: changes after that queue its job as if it were not
        // here (their records are ordinary ones, listed), and those that counted on it before
        // are listed too.
        let _wake = runs.begin("s");
        for _ in 0..HANDED_MAX + 100 {
            assert!(runs.count_on("s"));
        }
        for i in 0..HANDED_MAX + 100 {
            let event = Event::new(EventKind::ManifestPulled, &Origin::system());
            assert!(runs.written("s", Some((format!("webhook-events/s/{i}"), vec![event]))));
        }
        assert!(!runs.count_on("s"), "a full run is not counted on");
        assert_eq!(runs.take("s").len(), HANDED_MAX);
        assert!(runs.count_on("s"), "room again");
    }

    #[test]
    fn ids_increase_and_only_wanted_events_are_written() {
        let mut only = WebhookSettings::new("only", "http://127.0.0.1:9/");
        only.allow_private = true;
        only.events = vec![EventKind::TagMoved];
        only.repositories = vec!["prod/**".parse().expect("pattern")];
        let mut all = WebhookSettings::new("all", "http://127.0.0.1:9/");
        all.allow_private = true;
        all.events = EventKind::ALL.to_vec();
        let hooks = Webhooks::new(vec![only, all], None).expect("webhooks");
        let ids: Vec<String> = (0..1000).map(|_| hooks.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids sort as they were given");
        let repo: Repository = "prod/app".parse().expect("repo");
        let metrics = Metrics::default();
        let moved = Event::new(EventKind::TagMoved, &Origin::system()).about(&repo, None);
        let pushed = Event::new(EventKind::ManifestPushed, &Origin::system()).about(&repo, None);
        let writes = hooks.writes(vec![moved, pushed], &metrics);
        let keys: Vec<String> = writes
            .iter()
            .map(|w| match w {
                Write::Set { key, .. } | Write::Brief { key, .. } | Write::Remove { key } => key.clone(),
                Write::Blob { .. } => String::new(),
            })
            .collect();
        // One record of the change, each event naming the webhooks it is for, and one job for
        // the stream.
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys.iter().filter(|k| k.starts_with("webhook-events/")).count(), 1, "{keys:?}");
        let record: Vec<Event> = writes
            .iter()
            .find_map(|w| match w {
                Write::Set { key, value } if key.starts_with("webhook-events/") => {
                    serde_json::from_slice(value).ok()
                }
                _ => None,
            })
            .expect("the change's record");
        assert_eq!(
            record.iter().map(|e| (e.kind, e.to.clone())).collect::<Vec<_>>(),
            [
                (EventKind::TagMoved, vec!["only".to_owned(), "all".to_owned()]),
                (EventKind::ManifestPushed, vec!["all".to_owned()])
            ]
        );
        let stream = crate::jobs::repository_key(&repo);
        assert!(keys.contains(&format!("jobs/pending/deliver-{stream}")), "{keys:?}");
        // Nothing for an event no webhook wants.
        let elsewhere =
            Event::new(EventKind::TagMoved, &Origin::system()).about(&"dev/app".parse().expect("repo"), None);
        let pushed = Event::new(EventKind::ManifestPushed, &Origin::system()).about(&repo, None);
        let records = |writes: Vec<Write>| -> Vec<Vec<Event>> {
            writes
                .iter()
                .filter_map(|w| match w {
                    Write::Set { key, value } if key.starts_with("webhook-events/") => {
                        serde_json::from_slice(value).ok()
                    }
                    _ => None,
                })
                .collect()
        };
        let two = records(hooks.writes(vec![elsewhere, pushed], &metrics));
        assert_eq!(two.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1], "one record per stream");
        assert!(two.iter().flatten().all(|e| e.to == ["all"]), "only `all` wants them: {two:?}");
        let mut hooks_only = WebhookSettings::new("only", "http://127.0.0.1:9/");
        hooks_only.allow_private = true;
        hooks_only.events = vec![EventKind::TagMoved];
        let only = Webhooks::new(vec![hooks_only], None).expect("webhooks");
        let pushed = Event::new(EventKind::ManifestPushed, &Origin::system()).about(&repo, None);
        assert!(only.writes(vec![pushed], &metrics).is_empty(), "nothing wanted, nothing written");
        // Pulls beyond a full backlog are dropped; pushes never are.
        let pull = Event::new(EventKind::ManifestPulled, &Origin::system()).about(&repo, None);
        assert!(!hooks.writes(vec![pull], &metrics).is_empty());
        hooks.set_backlog("all", 10_000);
        let pull = Event::new(EventKind::ManifestPulled, &Origin::system()).about(&repo, None);
        assert!(hooks.writes(vec![pull], &metrics).is_empty());
        let pushed = Event::new(EventKind::ManifestPushed, &Origin::system()).about(&repo, None);
        assert!(!hooks.writes(vec![pushed], &metrics).is_empty());
    }
}
