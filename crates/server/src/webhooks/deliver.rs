//! One webhook's sending: its HTTP client (public addresses only unless allowed, no
//! redirects, bounded in time) and one POST of one event, signed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use wharf_client::reqwest;

use super::event::WebhookSettings;
use super::format;
use crate::error::{Error, Result};

/// The most of a receiver's answer read (and thrown away).
const MAX_ANSWER: usize = 64 * 1024;

/// A webhook with its client.
pub(crate) struct Hook {
    pub(crate) settings: WebhookSettings,
    /// `settings.url`, parsed once.
    url: reqwest::Url,
    client: reqwest::Client,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `settings` shows its URL redacted; the parsed one is not shown.
        f.debug_struct("Hook").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// What one send came to.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    /// The receiver's status, when it answered.
    pub(crate) status: Option<u16>,
    pub(crate) latency: Duration,
    /// What went wrong (an error status, a timeout, a refused connection).
    pub(crate) error: Option<String>,
}

/// What `wharf-server webhook test` reports.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TestDelivery {
    /// The webhook.
    pub webhook: String,
    /// The test event's id.
    pub event: String,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// What went wrong.
    pub error: Option<String>,
}

impl Hook {
    pub(crate) fn new(settings: WebhookSettings) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(4)
            .user_agent(format!("wharf-server/{} (webhook)", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private {
            builder = builder.dns_resolver(Arc::new(wharf_client::PublicResolver));
        }
        let client = builder
            .build()
            .map_err(|e| Error::BadRequest(format!("[[webhook]] `{}`: HTTP client: {e}", settings.name)))?;
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|e| Error::BadRequest(format!("[[webhook]] `{}`: url: {e}", settings.name)))?;
        Ok(Self { settings, url, client })
    }

    /// POSTs `body` as event `id`: signed when the webhook has a secret, with its headers.
    /// Never an error: what happened is in the answer (the error text names no secret and no
    /// header value).
    pub(crate) async fn send(&self, id: &str, body: Vec<u8>) -> Sent {
        let started = Instant::now();
        let result = self.post(id, body).await;
        let latency = started.elapsed();
        match result {
            Ok(status) if (200..300).contains(&status) => Sent { status: Some(status), latency, error: None },
            Ok(status) => {
                Sent { status: Some(status), latency, error: Some(format!("the receiver answered {status}")) }
            }
            Err(why) => Sent { status: None, latency, error: Some(why) },
        }
    }

    async fn post(&self, id: &str, body: Vec<u8>) -> std::result::Result<u16, String> {
        let settings = &self.settings;
        let url = self.url.clone();
        if !settings.allow_private {
            wharf_client::check_url(&url).map_err(|e| e.to_string())?;
        }
        let timestamp = crate::clock::now_secs();
        let mut request = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, format::content_type(settings.format))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(key) = &settings.secret {
            request = request.header("webhook-signature", format::signature(key, id, timestamp, &body));
        }
        for (name, value) in &settings.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = request.body(body).send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        // The answer is read (so the connection can be reused), at most MAX_ANSWER of it.
        let mut read = 0;
        while read < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(status)
    }
}

/// A send's failure in words: the kind of failure and its cause, never the URL's query or
/// credentials (reqwest's own text carries the URL).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { what.to_owned() } else { format!("{what}: {}", crate::text::cut(&cause, 200)) }
}
