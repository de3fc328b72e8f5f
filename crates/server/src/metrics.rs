//! `/metrics` in the Prometheus text format, on `prometheus-client`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as PromRegistry;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// Every label value comes from a fixed set, never from what a client sent or pushed: the
/// size of `/metrics` (and of the process) is the code's, not the traffic's.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
/// The types Harbor's processors record, besides which a pushed config type says `OTHER`.
const HARBOR_TYPES: [&str; 5] =
    [wharf_wasm::HARBOR_WASM, wharf_wasm::HARBOR_IMAGE, "CHART", "CNAB", wharf_wasm::HARBOR_UNKNOWN];

/// `value` when it is one of `known`, `other` otherwise.
fn bounded(value: &str, known: &[&'static str], other: &'static str) -> &'static str {
    known.iter().find(|k| **k == value).copied().unwrap_or(other)
}

/// Labels of a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// Labels of a pushed artifact.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArtifactLabels {
    kind: &'static str,
    harbor_type: &'static str,
}

/// Labels of a finished job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// Labels of a collection run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Labels of what a collection freed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: PromRegistry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    bytes_in: Family<RouteLabels, Counter>,
    bytes_out: Family<RouteLabels, Counter>,
    artifacts: Family<ArtifactLabels, Counter>,
    upload_sessions: Gauge,
    repositories: Gauge,
    quarantined: Gauge,
    jobs: Family<JobLabels, Counter>,
    jobs_pending: Gauge,
    jobs_parked: Gauge,
    gc_runs: Family<OutcomeLabels, Counter>,
    gc_freed_bytes: Counter,
    gc_freed: Family<KindLabels, Counter>,
    gc_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    gc_last_success: Gauge,
    scrub_runs: Family<OutcomeLabels, Counter>,
    scrub_damage: Gauge,
    quota_usage: Family<QuotaLabels, Gauge>,
    quota_limit: Family<QuotaLabels, Gauge>,
    storage_degraded: Family<FaultLabels, Gauge>,
    storage_faults: Family<FaultLabels, Counter>,
    mirror_requests: Family<MirrorLabels, Counter>,
    mirror_bytes: Family<UpstreamLabels, Counter>,
    trust_pulls: Family<TrustLabels, Counter>,
    webhook_deliveries: Family<DeliveryLabels, Counter>,
    webhook_latency: Family<WebhookLabels, Histogram>,
    webhook_dropped: Family<WebhookLabels, Counter>,
    webhook_pending: Family<WebhookLabels, Gauge>,
    webhook_parked: Family<WebhookLabels, Gauge>,
}

/// A trust policy's name (from the config: a bounded set) and its verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TrustLabels {
    policy: String,
    verdict: &'static str,
}

/// Labels of a mirror's answer: the upstream (a configured name) and how it was answered
/// (`hit`, `miss`, `stale`, `error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MirrorLabels {
    pub(crate) upstream: String,
    pub(crate) result: &'static str,
}

/// Labels of an upstream (a configured name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    pub(crate) upstream: String,
}

/// Labels of a storage fault (`full`, `unavailable`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FaultLabels {
    pub(crate) fault: &'static str,
}

/// Labels of a webhook (a configured name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WebhookLabels {
    pub(crate) webhook: String,
}

/// Labels of a webhook delivery: the webhook and how it ended (`delivered`, `failed`,
/// `parked`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeliveryLabels {
    pub(crate) webhook: String,
    pub(crate) outcome: &'static str,
}

/// Labels of a quota.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QuotaLabels {
    pub(crate) quota: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = PromRegistry::with_prefix("wharf");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let bytes_in = Family::<RouteLabels, Counter>::default();
        let bytes_out = Family::<RouteLabels, Counter>::default();
        let artifacts = Family::<ArtifactLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("http_request_bytes", "Request body bytes received, by route", bytes_in.clone());
        registry.register("http_response_bytes", "Response body bytes sent, by route", bytes_out.clone());
        registry.register(
            "artifacts_pushed",
            "Manifests pushed, by Wasm kind and Harbor type",
            artifacts.clone(),
        );
        let upload_sessions = Gauge::default();
        let repositories = Gauge::default();
        registry.register(
            "upload_sessions",
            "Open upload sessions (all processes sharing the storage)",
            upload_sessions.clone(),
        );
        registry.register("repositories", "Repositories in the registry", repositories.clone());
        let quarantined = Gauge::default();
        registry.register(
            "store_quarantined",
            "Journal records the storage could not replay at start and moved to its quarantine folder",
            quarantined.clone(),
        );
        let storage_degraded = Family::<FaultLabels, Gauge>::default();
        registry.register(
            "storage_degraded",
            "1 while the storage is full (writes fail) or unavailable (requests that need it fail), by fault",
            storage_degraded.clone(),
        );
        let storage_faults = Family::<FaultLabels, Counter>::default();
        registry.register(
            "storage_faults",
            "Storage operations that failed because the storage was full or unavailable, by fault",
            storage_faults.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Background jobs this process finished, by kind and outcome (done, retried, parked)",
            jobs.clone(),
        );
        let jobs_pending = Gauge::default();
        registry.register(
            "jobs_pending",
            "Background jobs queued (all processes sharing the storage)",
            jobs_pending.clone(),
        );
        let jobs_parked = Gauge::default();
        registry.register(
            "jobs_parked",
            "Background jobs given up after their attempts (all processes sharing the storage; see jobs/parked/)",
            jobs_parked.clone(),
        );
        let gc_runs = Family::<OutcomeLabels, Counter>::default();
        registry.register("gc_runs", "Garbage collections by outcome (ok, failed, dry-run)", gc_runs.clone());
        let gc_freed_bytes = Counter::default();
        registry.register(
            "gc_freed_bytes",
            "Bytes garbage collection removed from storage",
            gc_freed_bytes.clone(),
        );
        let gc_freed = Family::<KindLabels, Counter>::default();
        registry.register(
            "gc_freed_objects",
            "Objects garbage collection removed, by kind (blob, link, manifest, tag, upload)",
            gc_freed.clone(),
        );
        let gc_duration = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "gc_duration_seconds",
            "How long the last garbage collection took",
            gc_duration.clone(),
        );
        let gc_last_success = Gauge::default();
        registry.register(
            "gc_last_success_timestamp_seconds",
            "When the last garbage collection of this process succeeded (unix seconds)",
            gc_last_success.clone(),
        );
        let scrub_runs = Family::<OutcomeLabels, Counter>::default();
        registry.register("scrub_runs", "Scrubs by outcome (clean, damage, failed)", scrub_runs.clone());
        let scrub_damage = Gauge::default();
        registry.register(
            "scrub_damage",
            "Problems the last scrub of this process found",
            scrub_damage.clone(),
        );
        let mirror_requests = Family::<MirrorLabels, Counter>::default();
        registry.register(
            "mirror_requests",
            "Manifest and blob reads of mirrored repositories, by upstream and result (hit: served \
             from the cache; miss: fetched; stale: the upstream failed and the cache answered; \
             error: the upstream failed and nothing cached could answer)",
            mirror_requests.clone(),
        );
        let mirror_bytes = Family::<UpstreamLabels, Counter>::default();
        registry.register("mirror_fetched_bytes", "Bytes fetched from each upstream", mirror_bytes.clone());
        let trust_pulls = Family::<TrustLabels, Counter>::default();
        registry.register(
            "trust_pulls",
            "Manifest pulls judged by a trust policy, by policy and verdict (verified; unverified: \
             served under audit; denied: refused under enforce)",
            trust_pulls.clone(),
        );
        let webhook_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries this process made, by webhook and outcome (delivered; failed: to be \
             retried; parked: given up after the last attempt)",
            webhook_deliveries.clone(),
        );
        let webhook_latency = Family::<WebhookLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "webhook_delivery_duration_seconds",
            "How long a webhook's receiver took to answer",
            webhook_latency.clone(),
        );
        let webhook_dropped = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_events_dropped",
            "Pull and refusal events not recorded because the webhook's backlog was full (max_pending)",
            webhook_dropped.clone(),
        );
        let webhook_pending = Family::<WebhookLabels, Gauge>::default();
        registry.register(
            "webhook_events_pending",
            "Events waiting to be sent, by webhook (all processes sharing the storage)",
            webhook_pending.clone(),
        );
        let webhook_parked = Family::<WebhookLabels, Gauge>::default();
        registry.register(
            "webhook_events_parked",
            "Events given up after their last attempt, by webhook (re-send: POST /v2/_wharf/webhooks/<name>/resend)",
            webhook_parked.clone(),
        );
        let quota_usage = Family::<QuotaLabels, Gauge>::default();
        registry.register(
            "quota_usage_bytes",
            "Bytes of unique blobs and manifests under a quota",
            quota_usage.clone(),
        );
        let quota_limit = Family::<QuotaLabels, Gauge>::default();
        registry.register("quota_limit_bytes", "A quota's limit", quota_limit.clone());
        Self {
            registry,
            requests,
            latency,
            bytes_in,
            bytes_out,
            artifacts,
            upload_sessions,
            repositories,
            quarantined,
            jobs,
            jobs_pending,
            jobs_parked,
            gc_runs,
            gc_freed_bytes,
            gc_freed,
            gc_duration,
            gc_last_success,
            scrub_runs,
            scrub_damage,
            quota_usage,
            quota_limit,
            storage_degraded,
            storage_faults,
            mirror_requests,
            mirror_bytes,
            trust_pulls,
            webhook_deliveries,
            webhook_latency,
            webhook_dropped,
            webhook_pending,
            webhook_parked,
        }
    }
}

impl Metrics {
    pub(crate) fn request(
        &self,
        route: &'static str,
        method: &str,
        status: u16,
        seconds: f64,
        bytes: (u64, u64),
    ) {
        let method = bounded(method, &METHODS, "other");
        // Statuses this server answers are a fixed set too; anything else is folded.
        let status = if (100..600).contains(&status) { status } else { 0 };
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        let labels = RouteLabels { route };
        self.latency.get_or_create(&labels).observe(seconds);
        self.bytes_in.get_or_create(&labels).inc_by(bytes.0);
        self.bytes_out.get_or_create(&labels).inc_by(bytes.1);
    }

    pub(crate) fn artifact_pushed(&self, kind: &str, harbor_type: &str) {
        let labels = ArtifactLabels {
            kind: bounded(kind, &wharf_wasm::Kind::NAMES, "other"),
            harbor_type: bounded(harbor_type, &HARBOR_TYPES, "OTHER"),
        };
        self.artifacts.get_or_create(&labels).inc();
    }

    pub(crate) fn job_finished(&self, kind: &'static str, outcome: &'static str) {
        self.jobs.get_or_create(&JobLabels { kind, outcome }).inc();
    }

    /// A collection ended: `ok` or not, dry or not, how long it took, what it freed.
    pub(crate) fn gc_finished(
        &self,
        ok: bool,
        dry_run: bool,
        seconds: f64,
        bytes_freed: u64,
        freed: &[(&'static str, usize)],
    ) {
        let outcome = match (ok, dry_run) {
            (false, _) => "failed",
            (true, true) => "dry-run",
            (true, false) => "ok",
        };
        self.gc_runs.get_or_create(&OutcomeLabels { outcome }).inc();
        self.gc_duration.set(seconds);
        if ok && !dry_run {
            self.gc_freed_bytes.inc_by(bytes_freed);
            for &(kind, n) in freed {
                self.gc_freed.get_or_create(&KindLabels { kind }).inc_by(n as u64);
            }
            self.gc_last_success.set(i64::try_from(crate::clock::now_secs()).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn scrub_finished(&self, damage: Option<usize>) {
        let outcome = match damage {
            None => "failed",
            Some(0) => "clean",
            Some(_) => "damage",
        };
        self.scrub_runs.get_or_create(&OutcomeLabels { outcome }).inc();
        if let Some(n) = damage {
            self.scrub_damage.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A read of a mirrored repository answered as `result` (`hit`, `miss`, `stale`, `error`).
    /// A pull a trust policy judged.
    pub(crate) fn trust_pull(&self, policy: &str, verdict: &'static str) {
        self.trust_pulls.get_or_create(&TrustLabels { policy: policy.to_owned(), verdict }).inc();
    }

    pub(crate) fn mirror(&self, upstream: &str, result: &'static str) {
        self.mirror_requests.get_or_create(&MirrorLabels { upstream: upstream.to_owned(), result }).inc();
    }

    /// Bytes fetched from an upstream.
    pub(crate) fn mirror_fetched(&self, upstream: &str, bytes: u64) {
        self.mirror_bytes.get_or_create(&UpstreamLabels { upstream: upstream.to_owned() }).inc_by(bytes);
    }

    /// A webhook delivery ended as `outcome` after `seconds`.
    pub(crate) fn webhook_delivery(&self, webhook: &str, outcome: &'static str, seconds: f64) {
        self.webhook_deliveries.get_or_create(&DeliveryLabels { webhook: webhook.to_owned(), outcome }).inc();
        self.webhook_latency.get_or_create(&WebhookLabels { webhook: webhook.to_owned() }).observe(seconds);
    }

    /// An event not recorded for a webhook whose backlog is full.
    pub(crate) fn webhook_dropped(&self, webhook: &str) {
        self.webhook_dropped.get_or_create(&WebhookLabels { webhook: webhook.to_owned() }).inc();
    }

    /// Events waiting and parked for a webhook, read at scrape time.
    pub(crate) fn webhook_backlog(&self, webhook: &str, pending: usize, parked: usize) {
        let labels = WebhookLabels { webhook: webhook.to_owned() };
        self.webhook_pending.get_or_create(&labels).set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.webhook_parked.get_or_create(&labels).set(i64::try_from(parked).unwrap_or(i64::MAX));
    }

    pub(crate) fn quota(&self, name: &str, usage: u64, limit: u64) {
        let labels = QuotaLabels { quota: name.to_owned() };
        self.quota_usage.get_or_create(&labels).set(i64::try_from(usage).unwrap_or(i64::MAX));
        self.quota_limit.get_or_create(&labels).set(i64::try_from(limit).unwrap_or(i64::MAX));
    }

    /// The storage's health: the fault under way, and how many operations each fault failed
    /// so far.
    pub(crate) fn storage_health(
        &self,
        under_way: Option<wharf_store::Fault>,
        failed: [(wharf_store::Fault, u64); 2],
    ) {
        for (fault, count) in failed {
            let labels = FaultLabels { fault: fault.as_str() };
            self.storage_degraded.get_or_create(&labels).set(i64::from(under_way == Some(fault)));
            let counter = self.storage_faults.get_or_create(&labels);
            counter.inc_by(count.saturating_sub(counter.get()));
        }
    }

    /// The text exposition, with the gauges read from storage at scrape time (`None`: the
    /// storage did not answer; they keep their last values).
    pub(crate) fn render(&self, counts: Option<(usize, usize, (usize, usize))>, quarantined: u64) -> String {
        if let Some((upload_sessions, repositories, (jobs_pending, jobs_parked))) = counts {
            self.jobs_pending.set(i64::try_from(jobs_pending).unwrap_or(i64::MAX));
            self.jobs_parked.set(i64::try_from(jobs_parked).unwrap_or(i64::MAX));
            self.upload_sessions.set(i64::try_from(upload_sessions).unwrap_or(i64::MAX));
            self.repositories.set(i64::try_from(repositories).unwrap_or(i64::MAX));
        }
        self.quarantined.set(i64::try_from(quarantined).unwrap_or(i64::MAX));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
