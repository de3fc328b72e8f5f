//! Webhooks (`[[webhook]]`): what happens in the registry, told to other systems — signed,
//! durable, in order.
//!
//! # An event's life
//!
//! A change writes its events **in the same batch** as the change itself (a manifest's
//! records, a tag, a deletion): one record per webhook that wants it, under
//! `webhooks/<webhook>/pending/<stream>/<seq>`, and the `deliver` job of that stream (the
//! repository's key: 16 hex digits of the SHA-256 of its name). No event for a change that did not
//! happen, no change without its events. Refusals (a policy, a quota) change nothing: their
//! event is written alone.
//!
//! The job queue delivers: whichever process claims a stream's job
//! sends its events one at a time, oldest first, and removes each once the receiver answered
//! 2xx. A failure (an error status, a timeout, a refused connection) holds the stream back —
//! later events of the same repository wait, so a receiver sees each repository's events in
//! order — and is retried after a back-off doubling from `backoff` to `max_backoff`; after
//! `attempts` the event is parked (`webhooks/<webhook>/parked/<seq>`), shown in the API, the
//! web page and `/metrics`, and can be sent again. An event keeps its id
//! (`webhook-id`, the CloudEvents `id`) however often it is sent: receivers deduplicate by it.
//!
//! # What it costs
//!
//! Nothing without webhooks. With them, a push writes one small record per webhook (and one
//! job record) in the batch it writes anyway; the wire work is the job's. Events that no write
//! bounds — pulls, refusals of pulls — are dropped (and counted) while a webhook's backlog is
//! over `max_pending`, so anonymous traffic cannot grow the records without bound.
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

use std::collections::{HashMap, VecDeque};
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
        let (mut writes, jobs) = self.records(events, metrics);
        writes.extend(jobs.into_iter().map(|job| job.write()));
        writes
    }

    /// [`writes`](Self::writes), without the jobs already queued: a push re-queues nothing
    /// while its stream's job waits or runs (each record rewritten is a file on fs). A job
    /// that ends in the instant between this read and the batch is caught by the run's last
    /// look at its stream, or by [`requeue`](Self::requeue).
    pub(crate) async fn writes_checked(
        &self,
        core: &Core,
        events: Vec<Event>,
        metrics: &Metrics,
    ) -> Result<Vec<Write>> {
        let (mut writes, jobs) = self.records(events, metrics);
        for job in jobs {
            if core.storage().get_meta(&keys::job_pending(&job.id())).await?.is_none() {
                writes.push(job.write());
            }
        }
        Ok(writes)
    }

    /// The records of `events` per webhook and stream, and the jobs of those streams.
    fn records(&self, events: Vec<Event>, metrics: &Metrics) -> (Vec<Write>, Vec<crate::jobs::Job>) {
        let mut records: std::collections::BTreeMap<(String, String), Vec<Event>> =
            std::collections::BTreeMap::new();
        for mut event in events {
            event.id = self.next_id();
            let stream = event.stream();
            for hook in self.hooks.iter().filter(|h| h.settings.wants(event.kind, event.repository.as_ref()))
            {
                let name = &hook.settings.name;
                if !event.kind.bounded_by_writes() && self.backlog_full(name, hook.settings.max_pending) {
                    metrics.webhook_dropped(name);
                    continue;
                }
                records.entry((name.clone(), stream.clone())).or_default().push(event.clone());
            }
        }
        let mut writes = Vec::new();
        let mut jobs = Vec::new();
        for ((webhook, stream), events) in records {
            writes.push(Write::Set {
                key: keys::webhook_event(&webhook, &stream, &events[0].id),
                value: serde_json::to_vec(&events).expect("events serialise").into(),
            });
            jobs.push(crate::jobs::Job::Deliver { stream, webhook, attempts: 0 });
        }
        (writes, jobs)
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

/// What the Wasm fields of an event wait for.
enum WasmFields {
    /// Known (or nothing to know).
    Ready(Option<serde_json::Value>),
    /// The artifact's modules are still being read.
    Wait,
}

/// How long a stream waits for an inspection before it sends what it knows.
const INSPECTION_WAIT: Duration = Duration::from_secs(120);

impl Webhooks {
    /// Sends the events of `stream` waiting for `webhook`, oldest first, until none is left
    /// (done) or one fails (try again later: the back-off of its failures so far). The job of
    /// `deliver-<stream>-<webhook>` calls this in whichever process claimed it.
    pub(crate) async fn deliver(
        &self,
        core: &Core,
        metrics: &Metrics,
        stream: &str,
        webhook: &str,
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
        // Delivered events are removed in batches (one storage write for many; a crash in
        // between sends them again, under the same ids), and this run's deliveries are
        // recorded once, at its end.
        let mut delivered = Vec::new();
        let outcome = self.send_stream(core, metrics, hook, &prefix, &mut delivered).await;
        let flushed = Self::flush(core, &mut delivered).await;
        self.persist_recent(core, webhook).await;
        flushed?;
        outcome
    }

    /// Removes the records of the events delivered so far.
    async fn flush(core: &Core, delivered: &mut Vec<Write>) -> Result<()> {
        if !delivered.is_empty() {
            core.storage().write_steps(vec![std::mem::take(delivered)]).await?;
        }
        Ok(())
    }

    /// [`deliver`](Self::deliver)'s loop: `delivered` collects the removals of what was sent.
    async fn send_stream(
        &self,
        core: &Core,
        metrics: &Metrics,
        hook: &deliver::Hook,
        prefix: &str,
        delivered: &mut Vec<Write>,
    ) -> Result<Outcome> {
        let storage = core.storage();
        let webhook = hook.settings.name.as_str();
        loop {
            Self::flush(core, delivered).await?;
            let mut pending = storage.list_meta(prefix).await?;
            if pending.is_empty() {
                return Ok(Outcome::Done);
            }
            pending.sort();
            for key in pending.into_iter().take(256) {
                let Some(bytes) = storage.get_meta(&key).await? else { continue };
                let Ok(mut events) = serde_json::from_slice::<Vec<Event>>(&bytes) else {
                    tracing::error!(webhook, key, "dropping an event record that does not parse");
                    delivered.push(Write::Remove { key });
                    continue;
                };
                while let Some(event) = events.first_mut() {
                    let wasm = match self.wasm_fields(core, event).await? {
                        WasmFields::Ready(wasm) => wasm,
                        WasmFields::Wait => {
                            Self::keep(delivered, key, &events, &bytes);
                            return Ok(Outcome::Later(Duration::from_secs(1)));
                        }
                    };
                    let body =
                        format::body(hook.settings.format, event, &self.source, wasm.as_ref(), &self.process);
                    let sent = hook.send(&event.id, body).await;
                    event.attempts += 1;
                    let outcome = match (&sent.error, event.attempts >= hook.settings.attempts) {
                        (None, _) => "delivered",
                        (Some(_), false) => "failed",
                        (Some(_), true) => "parked",
                    };
                    metrics.webhook_delivery(webhook, outcome, sent.latency.as_secs_f64());
                    self.note(webhook, event, &sent, outcome);
                    match &sent.error {
                        None => {
                            events.remove(0);
                        }
                        Some(why) if outcome == "parked" => {
                            tracing::warn!(
                                webhook,
                                event = event.id,
                                attempts = event.attempts,
                                error = why,
                                "parking an event"
                            );
                            event.last_error = Some(why.clone());
                            let parked = events.remove(0);
                            delivered.push(Write::Set {
                                key: keys::webhook_parked(webhook, &parked.id),
                                value: serde_json::to_vec(&parked).expect("an event serialises").into(),
                            });
                        }
                        Some(why) => {
                            tracing::info!(
                                webhook,
                                event = event.id,
                                attempts = event.attempts,
                                error = why,
                                "a delivery failed; it will be retried"
                            );
                            event.last_error = Some(why.clone());
                            let wait = hook.settings.backoff_after(event.attempts);
                            Self::keep(delivered, key, &events, &[]);
                            return Ok(Outcome::Later(wait));
                        }
                    }
                }
                delivered.push(Write::Remove { key });
                if delivered.len() >= 64 {
                    Self::flush(core, delivered).await?;
                }
            }
        }
    }

    /// The write that keeps what is left of a record (`events`), unless it is as read.
    fn keep(delivered: &mut Vec<Write>, key: String, events: &[Event], read: &[u8]) {
        let value = serde_json::to_vec(events).expect("events serialise");
        if value != read {
            delivered.push(Write::Set { key, value: value.into() });
        }
    }

    /// Whether events of `stream` wait for `webhook`.
    pub(crate) async fn waiting(&self, core: &Core, stream: &str, webhook: &str) -> Result<bool> {
        Ok(!core.storage().list_meta(&keys::webhook_stream(webhook, stream)).await?.is_empty())
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
            writes.push(Write::Set {
                key: keys::webhook_parked(webhook, &event.id),
                value: serde_json::to_vec(&event).expect("an event serialises").into(),
            });
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
                crate::jobs::Job::Deliver { stream, webhook: webhook.to_owned(), attempts: 0 }.write(),
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
    /// in the instant another process wrote an event to its stream); counts each webhook's
    /// backlog on the way. A server does this at start and every few minutes. Returns how
    /// many streams were queued.
    pub(crate) async fn requeue(&self, core: &Core) -> Result<usize> {
        let storage = core.storage();
        let mut jobs = Vec::new();
        for hook in &self.hooks {
            let name = &hook.settings.name;
            let prefix = keys::webhook_pending_all(name);
            let pending = storage.list_meta(&prefix).await?;
            let streams: std::collections::BTreeSet<&str> =
                pending.iter().filter_map(|k| k[prefix.len()..].split_once('/').map(|(s, _)| s)).collect();
            for stream in streams {
                let job = crate::jobs::Job::Deliver {
                    stream: stream.to_owned(),
                    webhook: name.clone(),
                    attempts: 0,
                };
                if storage.get_meta(&keys::job_pending(&job.id())).await?.is_none() {
                    jobs.push(job.write());
                }
            }
        }
        let n = jobs.len();
        if !jobs.is_empty() {
            storage.write_steps(vec![jobs]).await?;
        }
        Ok(n)
    }

    /// Counts the backlog of every webhook not counted within 10 s (what bounds events no
    /// write bounds). Cheap when fresh.
    pub(crate) async fn refresh_backlog(&self, core: &Core) -> Result<()> {
        for hook in &self.hooks {
            let name = &hook.settings.name;
            if !self.backlog_fresh(name) {
                self.backlog(core, name).await?;
            }
        }
        Ok(())
    }

    /// Webhook `name`'s records waiting and the keys of its parked events, counted (what
    /// bounds the events no write bounds).
    async fn backlog(&self, core: &Core, name: &str) -> Result<(usize, Vec<String>)> {
        let pending = core.storage().list_meta(&keys::webhook_pending_all(name)).await?.len();
        let parked = core.storage().list_meta(&keys::webhook_parked_all(name)).await?;
        self.set_backlog(name, pending + parked.len());
        Ok((pending, parked))
    }

    /// Each webhook as the API shows it: settings (the URL without query or credentials),
    /// events waiting, parked events (at most 100), the last deliveries of every process.
    pub(crate) async fn status(&self, core: &Core) -> Result<Vec<WebhookStatus>> {
        let storage = core.storage();
        let mut out = Vec::new();
        for hook in &self.hooks {
            let s = &hook.settings;
            let (pending, parked_keys) = self.backlog(core, &s.name).await?;
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
        let mut out = Vec::new();
        for hook in &self.hooks {
            let name = &hook.settings.name;
            let (pending, parked) = self.backlog(core, name).await?;
            out.push((name.clone(), pending, parked.len()));
        }
        Ok(out)
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
                Write::Set { key, .. } | Write::Remove { key } => key.clone(),
                Write::Blob { .. } => String::new(),
            })
            .collect();
        // One record of two events for `all`, one of one for `only`, one job per (stream, webhook).
        assert_eq!(keys.iter().filter(|k| k.starts_with("webhooks/all/pending/")).count(), 1, "{keys:?}");
        let all: Vec<Event> = writes
            .iter()
            .find_map(|w| match w {
                Write::Set { key, value } if key.starts_with("webhooks/all/") => {
                    serde_json::from_slice(value).ok()
                }
                _ => None,
            })
            .expect("the record of `all`");
        assert_eq!(
            all.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [EventKind::TagMoved, EventKind::ManifestPushed]
        );
        assert_eq!(keys.iter().filter(|k| k.starts_with("webhooks/only/pending/")).count(), 1, "{keys:?}");
        assert_eq!(keys.iter().filter(|k| k.starts_with("jobs/pending/deliver-")).count(), 2, "{keys:?}");
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
