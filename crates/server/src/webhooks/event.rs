//! What a webhook is told: the kinds of event, where a change came from, an event as
//! recorded, a webhook's settings, a delivery as shown.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wharf_auth::Pattern;
use wharf_types::{Digest, Repository};

use crate::error::{Error, Result};

/// The stream of events that belong to no repository (collections).
pub(crate) const REGISTRY_STREAM: &str = "0000000000000000";
/// The most names listed of a WIT world's imports or exports in one event.
pub(crate) const MAX_LISTED: usize = 256;

/// What happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// A manifest was pushed (by tag or by digest).
    #[serde(rename = "manifest.pushed")]
    ManifestPushed,
    /// A tag was set for the first time.
    #[serde(rename = "tag.created")]
    TagCreated,
    /// A tag moved to another manifest.
    #[serde(rename = "tag.moved")]
    TagMoved,
    /// A tag was deleted.
    #[serde(rename = "tag.deleted")]
    TagDeleted,
    /// A manifest was deleted (with its tags).
    #[serde(rename = "manifest.deleted")]
    ManifestDeleted,
    /// A manifest was pulled (by tag or digest): only when asked for.
    #[serde(rename = "manifest.pulled")]
    ManifestPulled,
    /// A push was refused for going over a quota.
    #[serde(rename = "quota.exceeded")]
    QuotaExceeded,
    /// A push or a pull was refused by a policy (Wasm, versioning, trust).
    #[serde(rename = "policy.refused")]
    PolicyRefused,
    /// The modules of a Wasm artifact were read (its WIT world, WASI version known).
    #[serde(rename = "inspection.finished")]
    InspectionFinished,
    /// A garbage collection removed something.
    #[serde(rename = "gc.finished")]
    GarbageCollected,
    /// `wharf-server webhook test`.
    #[default]
    #[serde(rename = "webhook.test")]
    Test,
}

impl EventKind {
    /// Every kind a webhook may ask for.
    pub const ALL: [Self; 10] = [
        Self::ManifestPushed,
        Self::TagCreated,
        Self::TagMoved,
        Self::TagDeleted,
        Self::ManifestDeleted,
        Self::ManifestPulled,
        Self::QuotaExceeded,
        Self::PolicyRefused,
        Self::InspectionFinished,
        Self::GarbageCollected,
    ];

    /// Its name in the config and in events (`manifest.pushed`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ManifestPushed => "manifest.pushed",
            Self::TagCreated => "tag.created",
            Self::TagMoved => "tag.moved",
            Self::TagDeleted => "tag.deleted",
            Self::ManifestDeleted => "manifest.deleted",
            Self::ManifestPulled => "manifest.pulled",
            Self::QuotaExceeded => "quota.exceeded",
            Self::PolicyRefused => "policy.refused",
            Self::InspectionFinished => "inspection.finished",
            Self::GarbageCollected => "gc.finished",
            Self::Test => "webhook.test",
        }
    }

    /// Its action in distribution's notification envelope (`push`, `pull`, `delete`), if it has
    /// one there.
    pub fn distribution_action(self) -> Option<&'static str> {
        match self {
            Self::ManifestPushed | Self::TagCreated | Self::TagMoved => Some("push"),
            Self::TagDeleted | Self::ManifestDeleted => Some("delete"),
            Self::ManifestPulled => Some("pull"),
            Self::Test => Some("test"),
            _ => None,
        }
    }

    /// Whether a write bounds how many there can be (a change, by someone allowed to make
    /// it); pulls and refusals are bounded by the backlog instead.
    pub(crate) fn bounded_by_writes(self) -> bool {
        !matches!(self, Self::ManifestPulled | Self::PolicyRefused | Self::QuotaExceeded)
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
            format!("unknown event `{}` (known: {})", crate::text::printable(s, 64), names.join(", "))
        })
    }
}

/// How an event is put on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// CloudEvents 1.0, structured mode (`application/cloudevents+json`).
    #[default]
    CloudEvents,
    /// distribution's notification envelope (`application/vnd.docker.distribution.events.v1+json`).
    Distribution,
}

/// Who made a change: the caller's identity, as the access log names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Actor {
    /// The user name (`-` for anonymous, `wharf` for the server itself).
    pub name: String,
    /// `user`, `external` (an external issuer's subject), `anonymous` or `system`.
    pub kind: String,
}

/// Where a change came from: who, from which address, in which request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Origin {
    /// Who.
    pub actor: Actor,
    /// The client's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// The request's id (the access log's `request_id`, echoed in `X-Request-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The origin of the request being served (set by the HTTP edge around each handler).
    static CURRENT: Origin;
}

impl Origin {
    /// The origin of the request this task serves: what the HTTP edge set with
    /// [`scope`](Self::scope), else [`system`](Self::system) (a program embedding the
    /// registry, a collection). So events name who made a change without every operation
    /// taking it as an argument.
    pub fn current() -> Self {
        CURRENT.try_with(Clone::clone).unwrap_or_else(|_| Self::system())
    }

    /// Runs `f` with `self` as [`current`](Self::current).
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// The server itself (a collection, a program embedding the registry).
    pub fn system() -> Self {
        Self { actor: Actor { name: "wharf".into(), kind: "system".into() }, client: None, request_id: None }
    }

    /// A request's origin: the caller's identity, address and request id.
    pub fn request(
        identity: &wharf_auth::Identity,
        client: Option<IpAddr>,
        request_id: Option<String>,
    ) -> Self {
        let kind = match identity {
            wharf_auth::Identity::Anonymous => "anonymous",
            wharf_auth::Identity::User(_) => "user",
            wharf_auth::Identity::External(_) => "external",
            wharf_auth::Identity::Robot(_) => "robot",
        };
        Self { actor: Actor { name: identity.name().to_owned(), kind: kind.into() }, client, request_id }
    }
}

/// One event as recorded (and re-read by the delivery): the facts at the time of the change.
/// The Wasm fields a later inspection finds are read when it is sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    /// Stable across retries and re-sends: `<µs since the epoch, 16 digits>-<process>`.
    pub(crate) id: String,
    pub(crate) kind: EventKind,
    /// RFC 3339.
    pub(crate) time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) repository: Option<Repository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) digest: Option<Digest>,
    /// Where a moved tag pointed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) previous: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size: Option<u64>,
    /// For refusals: what was refused (`push`, `pull`), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The Wasm fields when known at the time of the event (a deleted or refused artifact);
    /// otherwise read from the artifact record when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) wasm: Option<serde_json::Value>,
    /// Whether the artifact record is read for the Wasm fields when the event is sent: a
    /// push of what classified as Wasm, a finished inspection, a pull (the other events need
    /// no read).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) read_wasm: bool,
    /// What else the kind carries (a collection's counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) origin: Origin,
    /// Sends that failed so far.
    #[serde(default)]
    pub(crate) attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    /// In a change's record: the webhooks still to be told (in a webhook's own queue, or
    /// parked: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) to: Vec<String>,
}

impl Event {
    /// An event of `kind` now, from `origin` (its id given when it is recorded).
    pub(crate) fn new(kind: EventKind, origin: &Origin) -> Self {
        Self { kind, time: crate::clock::now_rfc3339(), origin: origin.clone(), ..Self::default() }
    }

    /// In `repository`, about manifest `digest`.
    pub(crate) fn about(mut self, repository: &Repository, digest: Option<&Digest>) -> Self {
        self.repository = Some(repository.clone());
        self.digest = digest.cloned();
        self
    }

    pub(crate) fn stream(&self) -> String {
        self.repository.as_ref().map_or_else(|| REGISTRY_STREAM.to_owned(), crate::jobs::repository_key)
    }
}

/// One webhook's settings, parsed and checked (`[[webhook]]`).
#[derive(Clone)]
#[non_exhaustive]
pub struct WebhookSettings {
    /// Its name: lowercase letters, digits, `-` and `_`, 1 to 64 (keys, metrics, the API).
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// What it is told of.
    pub events: Vec<EventKind>,
    /// Of which repositories (empty: all).
    pub repositories: Vec<Pattern>,
    /// The Standard Webhooks key (the bytes of `whsec_<base64>`).
    pub secret: Option<Vec<u8>>,
    /// Headers added to every delivery (never logged).
    pub headers: Vec<(String, String)>,
    /// The wire format.
    pub format: Format,
    /// A target in a loopback, private or link-local range is allowed.
    pub allow_private: bool,
    /// How long one delivery may take [default: 10 s].
    pub timeout: Duration,
    /// Sends of an event before it is parked [default: 10].
    pub attempts: u32,
    /// The first wait after a failure [default: 1 s]; it doubles on each failure …
    pub backoff: Duration,
    /// … up to this [default: 10 min].
    pub max_backoff: Duration,
    /// Events that no write bounds (pulls, refusals) are dropped while this many records wait
    /// or events are parked [default: 10,000].
    pub max_pending: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret and the headers' values are never shown.
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WebhookSettings")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("events", &self.events)
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("headers", &headers)
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

/// A URL as shown: scheme, host and path, without credentials or query (a token in either
/// stays out of logs and pages).
pub(crate) fn redacted_url(url: &str) -> String {
    match wharf_client::reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<invalid URL>".into(),
    }
}

impl WebhookSettings {
    /// A webhook called `name` to `url` with the defaults (every event but pulls, every
    /// repository, CloudEvents, unsigned, public addresses only).
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            events: EventKind::ALL.into_iter().filter(|k| *k != EventKind::ManifestPulled).collect(),
            repositories: Vec::new(),
            secret: None,
            headers: Vec::new(),
            format: Format::CloudEvents,
            allow_private: false,
            timeout: Duration::from_secs(10),
            attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            max_pending: 10_000,
        }
    }

    /// Its URL as logs and pages show it (no credentials, no query).
    pub fn shown_url(&self) -> String {
        redacted_url(&self.url)
    }

    /// Reads a Standard Webhooks secret: `whsec_` and base64 of 24 to 64 bytes.
    pub fn parse_secret(text: &str) -> std::result::Result<Vec<u8>, String> {
        use base64::Engine as _;
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "not `whsec_` followed by base64 (Standard Webhooks)".to_owned())?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!("{} bytes of key: Standard Webhooks keys are 24 to 64 bytes", key.len()));
        }
        Ok(key)
    }

    /// Checks what can be checked before anything is sent: the name, the URL (an address
    /// literal outside the public internet is refused unless `allow_private`), the header
    /// names, the numbers, and that a distribution-format webhook asks only for what that
    /// envelope can say.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Error::BadRequest(format!("[[webhook]] `{}`: {why}", self.name));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(Error::BadRequest(format!(
                "[[webhook]] name `{}`: 1 to 64 lowercase letters, digits, `-` and `_`",
                crate::text::printable(&self.name, 80)
            )));
        }
        let url = wharf_client::reqwest::Url::parse(&self.url).map_err(|e| bad(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad("url: expected http(s)://host[:port]/path".into()));
        }
        if !self.allow_private {
            let host = url.host_str().unwrap_or_default();
            if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
                return Err(bad(format!(
                    "url {}: `{host}` is a loopback name; webhook targets must be public addresses \
                     (set allow_private = true to send inside this network)",
                    redacted_url(&self.url)
                )));
            }
            wharf_client::check_url(&url).map_err(|e| {
                bad(format!(
                    "url {}: {e}; webhook targets must be public addresses (set allow_private = true to \
                     send inside this network)",
                    redacted_url(&self.url)
                ))
            })?;
        }
        for (name, value) in &self.headers {
            let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && http::HeaderValue::from_str(value).is_ok();
            let reserved = [
                "content-type",
                "content-length",
                "host",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            ];
            if !ok || reserved.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(bad(format!("header `{}` cannot be set", crate::text::printable(name, 64))));
            }
        }
        if self.events.is_empty() {
            return Err(bad("events: at least one".into()));
        }
        if self.attempts == 0
            || self.timeout.is_zero()
            || self.backoff.is_zero()
            || self.max_backoff < self.backoff
        {
            return Err(bad("attempts and timeout must be at least 1, max_backoff at least backoff".into()));
        }
        if self.format == Format::Distribution
            && let Some(k) = self.events.iter().find(|k| k.distribution_action().is_none())
        {
            return Err(bad(format!(
                "format distribution has no action for `{}` (it tells pushes, pulls and deletes)",
                k.name()
            )));
        }
        Ok(())
    }

    pub(crate) fn wants(&self, kind: EventKind, repository: Option<&Repository>) -> bool {
        self.events.contains(&kind)
            && (self.repositories.is_empty()
                || repository.is_none_or(|r| self.repositories.iter().any(|p| p.matches(r.as_str()))))
    }

    /// The wait after the `failures`-th failure in a row.
    pub(crate) fn backoff_after(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1).min(30)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// One delivery as the API and the page show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// The event's id.
    pub event: String,
    /// Its kind (`manifest.pushed`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// When it was sent (RFC 3339).
    pub at: String,
    /// The receiver's HTTP status (none: no answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// Which send of the event this was (1 for the first).
    pub attempt: u32,
    /// `delivered`, `failed` (to be retried) or `parked`.
    pub outcome: String,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let mut s = WebhookSettings::new("a", "https://h.example/");
        s.backoff = Duration::from_secs(1);
        s.max_backoff = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=6).map(|n| s.backoff_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(s.backoff_after(u32::MAX), Duration::from_secs(10), "no overflow");
    }

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(redacted_url("https://user:pw@hooks.example/x?token=abc#f"), "https://hooks.example/x");
        assert_eq!(redacted_url("not a url"), "<invalid URL>");
        let mut s = WebhookSettings::new("a", "https://hooks.example/x?token=abc");
        s.secret = Some(vec![7; 32]);
        s.headers = vec![("Authorization".into(), "Bearer top-secret".into())];
        let shown = format!("{s:?}");
        assert!(!shown.contains("abc") && !shown.contains("top-secret") && shown.contains("Authorization"));
    }

    #[test]
    fn secrets_are_standard_webhooks_keys() {
        assert_eq!(
            WebhookSettings::parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()),
            Ok(24)
        );
        assert!(
            WebhookSettings::parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok(),
            "the prefix is optional"
        );
        assert!(WebhookSettings::parse_secret("whsec_not base64!").is_err());
        assert!(WebhookSettings::parse_secret("whsec_c2hvcnQ=").is_err(), "too short");
    }

    #[test]
    fn reserved_headers_and_private_targets_are_refused() {
        let mut s = WebhookSettings::new("a", "https://hooks.example/");
        s.headers = vec![("webhook-signature".into(), "v1,forged".into())];
        assert!(s.check().is_err());
        for url in ["http://127.0.0.1/", "http://[fd00::1]/", "http://100.64.0.1/", "http://app.localhost/"] {
            let e = WebhookSettings::new("a", url).check().expect_err(url).to_string();
            assert!(e.contains("allow_private"), "{e}");
        }
    }
}
