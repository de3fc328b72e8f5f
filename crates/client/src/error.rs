//! The one error type of `wharf-client`.

use wharf_types::{Digest, ErrorCode, ErrorResponse};

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a registry.
///
/// The helpers answer the usual questions without a `match`: [`status`](Self::status),
/// [`code`](Self::code), [`is_not_found`](Self::is_not_found),
/// [`is_unauthorized`](Self::is_unauthorized), [`is_denied`](Self::is_denied).
///
/// ```
/// # async fn run(client: wharf_client::Client) -> wharf_client::Result<()> {
/// let reference = "localhost:5000/org/app:v1".parse()?;
/// match client.pull_manifest(&reference).await {
///     Ok(manifest) => println!("{}", manifest.digest()),
///     Err(e) if e.is_not_found() => println!("no such tag"),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder's settings cannot work.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The connection or the HTTP exchange failed: refused, unknown host, TLS, timeout. The
    /// message names the cause (and, for a TLS handshake with a plain-HTTP registry, what to
    /// do).
    #[error("{}", transport_message(.0))]
    Http(#[from] reqwest::Error),
    /// The registry answered with an error status.
    #[error("registry answered {}", answer(*status, errors.as_ref(), body))]
    Registry {
        /// The HTTP status.
        status: u16,
        /// The OCI error body, when there was one.
        errors: Option<ErrorResponse>,
        /// The start of the body, for anything else.
        body: String,
    },
    /// Authentication failed or was impossible.
    #[error("authentication to {host} failed: {detail}")]
    Unauthorized {
        /// The registry host.
        host: String,
        /// Why.
        detail: String,
    },
    /// Content did not match its digest.
    #[error("digest mismatch: expected {expected}, received content hashes to {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A blob too large to read into memory for this operation.
    #[error(
        "blob {digest} of {size} bytes is larger than the {limit} bytes this operation reads into memory"
    )]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A public-only client was asked to reach an address that is not public
    /// ([`ClientBuilder::with_public_addresses_only`](crate::ClientBuilder::with_public_addresses_only)).
    #[error("`{host}` is not a public address: this client connects only to public addresses")]
    NotPublic {
        /// The address.
        host: String,
    },
    /// The registry answered something the spec does not allow.
    #[error("invalid registry response: {0}")]
    InvalidResponse(String),
    /// A manifest or reference that does not parse.
    #[error(transparent)]
    Types(#[from] wharf_types::Error),
    /// The reference names something that is not WebAssembly; the classification says what
    /// it is and why.
    #[cfg(feature = "wasm")]
    #[error("{reference} is not WebAssembly: its manifest classifies as {}", classification.kind)]
    NotWasm {
        /// What was pulled.
        reference: Box<wharf_types::Reference>,
        /// The classification of its manifest (and config).
        classification: Box<wharf_wasm::Classification>,
    },
    /// A Wasm artifact could not be built, or no module could be read out of a Wasm layer.
    #[cfg(feature = "wasm")]
    #[error("{context}: {source}")]
    Wasm {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: wharf_wasm::Error,
    },
    /// A file of an OCI layout could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing pulled bytes failed.
    #[error("writing: {0}")]
    Io(#[source] std::io::Error),
}

impl Error {
    #[cfg(feature = "wasm")]
    pub(crate) fn not_wasm(
        reference: &wharf_types::Reference,
        classification: wharf_wasm::Classification,
    ) -> Self {
        Self::NotWasm { reference: Box::new(reference.clone()), classification: Box::new(classification) }
    }

    /// The HTTP status the registry answered, when the error is an answer: a
    /// [`Registry`](Self::Registry) error, a status error of the transport, or 401 for
    /// [`Unauthorized`](Self::Unauthorized).
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Registry { status, .. } => Some(*status),
            Self::Http(e) => e.status().map(|s| s.as_u16()),
            Self::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// The first OCI error code of the registry's answer (`MANIFEST_UNKNOWN`, `DENIED`, …).
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Registry { errors: Some(errors), .. } => errors.errors.first().map(|e| &e.code),
            _ => None,
        }
    }

    /// Whether the registry does not have what was asked for (404, or a `*_UNKNOWN` code).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
            || matches!(
                self.code(),
                Some(ErrorCode::BlobUnknown | ErrorCode::ManifestUnknown | ErrorCode::NameUnknown)
            )
    }

    /// Whether authentication is missing or failed (401, `UNAUTHORIZED`).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401) || self.code() == Some(&ErrorCode::Unauthorized)
    }

    /// Whether the caller is known but not allowed (403, `DENIED`).
    pub fn is_denied(&self) -> bool {
        self.status() == Some(403) || self.code() == Some(&ErrorCode::Denied)
    }

    /// Whether the connection itself failed (refused, unknown host, TLS, timeout): nothing
    /// reached the registry, or nothing came back.
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Http(e) if e.status().is_none())
    }
}

/// `401: UNAUTHORIZED: …` from an OCI error body, else the body, else the status's name
/// (`401 Unauthorized`).
fn answer(status: u16, errors: Option<&ErrorResponse>, body: &str) -> String {
    match errors {
        Some(errors) => format!("{status}: {errors}"),
        None if !body.trim().is_empty() => format!("{status}: {}", body.trim()),
        None => {
            let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
            format!("{status} {}", reason.unwrap_or("(no body)"))
        }
    }
}

/// A transport error with its causes (reqwest's own message is only "error sending request"),
/// and a way out when a TLS handshake met a plain-HTTP registry.
fn transport_message(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    let plain_http =
        ["InvalidContentType", "corrupt message", "wrong version number", "packet length too long"];
    if message.contains("Connection refused") {
        message.push_str(" (is a registry running at that address?)");
    } else if message.contains("failed to lookup address") || message.contains("Name or service not known") {
        message.push_str(" (no such host: check the registry's name)");
    } else if plain_http.iter().any(|s| message.contains(s)) {
        message.push_str(
            " (the registry seems to speak plain HTTP, not HTTPS: allow plain HTTP for this host \
             with `ClientBuilder::with_insecure_host`, or `--insecure` on the command line)",
        );
    }
    message
}
