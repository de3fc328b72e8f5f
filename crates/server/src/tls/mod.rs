//! TLS on rustls: a certificate chain and key from PEM files, optional client certificates
//! checked against a CA (mutual TLS; the certificate's subject becomes the caller's
//! identity), HTTP/2 and HTTP/1.1 by ALPN, and the files read again when they change.

mod x509;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub(crate) use x509::subject_common_name;

use crate::error::{Error, Result};
use crate::files::Watched;

/// The files TLS is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates are checked against; clients without a
    /// certificate are still served (they authenticate otherwise) unless
    /// [`require_client_cert`](Self::require_client_cert).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse the handshake of a client without a valid certificate.
    pub require_client_cert: bool,
    /// The users client certificates stand for, by their subject's common name: a
    /// certificate whose name is not here is checked but stands for no one.
    pub client_users: std::collections::BTreeMap<String, String>,
}

impl TlsFiles {
    /// A certificate chain and its key.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            require_client_cert: false,
            client_users: std::collections::BTreeMap::new(),
        }
    }

    /// Maps client certificates' common names to users (an allow-list: other names stand
    /// for no one).
    #[must_use]
    pub fn with_client_users(mut self, users: std::collections::BTreeMap<String, String>) -> Self {
        self.client_users = users;
        self
    }

    /// Checks client certificates against `ca`.
    #[must_use]
    pub fn with_client_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(ca.into());
        self
    }

    /// Refuses clients without a certificate `client_ca` accepts (mutual TLS required).
    #[must_use]
    pub fn requiring_client_cert(mut self) -> Self {
        self.require_client_cert = true;
        self
    }

    /// The files read.
    fn paths(&self) -> Vec<PathBuf> {
        let mut out = vec![self.cert.clone(), self.key.clone()];
        out.extend(self.client_ca.clone());
        out
    }
}

/// The TLS configuration in force, swapped whole when the files change: connections keep the
/// configuration they started with.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    watched: Watched,
}

impl Tls {
    /// Reads the files; an error names the file and what is wrong.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>> {
        let watched = Watched::new(files.paths());
        let config = build(&files)?;
        Ok(Arc::new(Self { files, current: RwLock::new(Arc::new(config)), watched }))
    }

    /// The user a verified client certificate with common name `cn` stands for, if the
    /// allow-list names it.
    pub(crate) fn user_of(&self, cn: &str) -> Option<Arc<str>> {
        self.files.client_users.get(cn).map(|u| Arc::from(u.as_str()))
    }

    /// The configuration for a new connection.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().expect("lock"))
    }

    /// Reads the files again if they changed since the last read (or always, with `force`);
    /// a failed read keeps the configuration in force and returns the error.
    pub fn reload(&self, force: bool) -> Result<bool> {
        let Some(config) = self.watched.reread(force, false, |_| build(&self.files))? else {
            return Ok(false);
        };
        *self.current.write().expect("lock") = Arc::new(config);
        Ok(true)
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::BadRequest(format!("TLS {what} {}: {e}", path.display())))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::BadRequest(format!("TLS {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::BadRequest(format!("TLS {what} {}: no CERTIFICATE in it", path.display())));
    }
    Ok(certs)
}

fn build(files: &TlsFiles) -> Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = certificates(&files.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key, "key")?)
        .map_err(|e| Error::BadRequest(format!("TLS key {}: {e}", files.key.display())))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadRequest(format!("TLS: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client CA")? {
                roots
                    .add(cert)
                    .map_err(|e| Error::BadRequest(format!("TLS client CA {}: {e}", ca.display())))?;
            }
            let mut verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !files.require_client_cert {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| Error::BadRequest(format!("TLS client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        Error::BadRequest(format!(
            "TLS: the key {} does not fit the certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
