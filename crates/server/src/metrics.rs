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
    method: String,
    status: u16,
}

/// Labels of a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// Labels of a pushed artifact.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArtifactLabels {
    kind: String,
    harbor_type: String,
}

/// Labels of a finished job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: &'static str,
    outcome: &'static str,
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
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Background jobs this process finished, by kind and outcome (done, retried, given-up)",
            jobs.clone(),
        );
        let jobs_pending = Gauge::default();
        registry.register(
            "jobs_pending",
            "Background jobs queued (all processes sharing the storage)",
            jobs_pending.clone(),
        );
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
        self.requests.get_or_create(&RequestLabels { route, method: method.to_owned(), status }).inc();
        let labels = RouteLabels { route };
        self.latency.get_or_create(&labels).observe(seconds);
        self.bytes_in.get_or_create(&labels).inc_by(bytes.0);
        self.bytes_out.get_or_create(&labels).inc_by(bytes.1);
    }

    pub(crate) fn artifact_pushed(&self, kind: &str, harbor_type: &str) {
        self.artifacts
            .get_or_create(&ArtifactLabels { kind: kind.to_owned(), harbor_type: harbor_type.to_owned() })
            .inc();
    }

    pub(crate) fn job_finished(&self, kind: &'static str, outcome: &'static str) {
        self.jobs.get_or_create(&JobLabels { kind, outcome }).inc();
    }

    /// The text exposition, with the gauges read from storage at scrape time.
    pub(crate) fn render(
        &self,
        upload_sessions: usize,
        repositories: usize,
        quarantined: u64,
        jobs_pending: usize,
    ) -> String {
        self.jobs_pending.set(i64::try_from(jobs_pending).unwrap_or(i64::MAX));
        self.upload_sessions.set(i64::try_from(upload_sessions).unwrap_or(i64::MAX));
        self.quarantined.set(i64::try_from(quarantined).unwrap_or(i64::MAX));
        self.repositories.set(i64::try_from(repositories).unwrap_or(i64::MAX));
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
