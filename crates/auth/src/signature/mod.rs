//! Signatures over artifacts, verified offline: Sigstore bundles (keyless, by a Fulcio
//! certificate and a Rekor entry, or by a public key) and cosign's classic simple-signing
//! signatures by a key pair.
//!
//! What is checked, and against what the caller trusts ([`TrustRoot`], public keys):
//!
//! - **Sigstore bundles** (`application/vnd.dev.sigstore.bundle.v0.3+json`, and the v0.1/v0.2
//!   media types), as cosign v3 and sigstore-js attach them:
//!   - the content: a message signature whose digest is the artifact's and whose signature
//!     verifies over the artifact's bytes, or a DSSE envelope whose in-toto statement
//!     (`predicateType` `https://sigstore.dev/cosign/sign/v1`) names the artifact's digest as
//!     its subject and whose signature verifies over the envelope's PAE;
//!   - the signer: a leaf certificate that chains to a trusted Fulcio root (each link's
//!     signature, validity at the log's time, the code-signing usage), whose identity is its
//!     OIDC issuer (extension `1.3.6.1.4.1.57264.1.8`, or the legacy `.1.1`) and subject (its
//!     SAN: email, URI or other name); or a public key the caller trusts;
//!   - the transparency log: each entry's signed entry timestamp (SET) by a trusted Rekor key,
//!     its inclusion proof up to a checkpoint that key signed, and its body naming the same
//!     digest, signature and certificate or key. A keyless signature needs one such entry (its
//!     time is when the short-lived certificate must have been valid); a key-based one is
//!     checked against the log when it carries entries.
//! - **cosign's classic layout** ([`verify_simple_signing`]): the simple-signing payload names
//!   the artifact's digest, the signature (base64 DER, from the layer's
//!   `dev.cosignproject.cosign/signature` annotation) verifies by a trusted key.
//!
//! Every read is bounded ([`MAX_BUNDLE_LEN`], [`MAX_CHAIN`], [`MAX_LOG_ENTRIES`],
//! [`MAX_PROOF_HASHES`], [`MAX_ENVELOPE_SIGNATURES`]); anything else is refused with a reason
//! ([`Error::Signature`]) and costs no more than reading those bounds.
//!
//! Not supported (refused with a reason): RFC 3161 timestamps instead of a log entry, Rekor
//! v2 entries (no SET), certificate transparency (SCT) checks.
//!
//! # Example: a key-signed simple-signing payload
//! ```
//! use wharf_auth::signature::{PublicKey, Signer, verify_simple_signing};
//! use wharf_types::Digest;
//! # use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, KeyPair as _};
//! # use base64::Engine as _;
//! # let rng = aws_lc_rs::rand::SystemRandom::new();
//! # let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
//! # let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
//! # let mut spki = vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00];
//! # spki.extend_from_slice(pair.public_key().as_ref());
//! let manifest = Digest::sha256(b"{}");
//! let payload = format!(
//!     r#"{{"critical":{{"identity":{{"docker-reference":"r/app"}},"image":{{"docker-manifest-digest":"{manifest}"}},"type":"cosign container image signature"}},"optional":null}}"#
//! );
//! # let signature = base64::engine::general_purpose::STANDARD.encode(pair.sign(&rng, payload.as_bytes()).unwrap());
//! let key = PublicKey::from_spki_der(&spki)?;
//! let verified = verify_simple_signing(payload.as_bytes(), &signature, &manifest, &[key.clone()])?;
//! assert_eq!(verified.signer, Signer::Key { key: key.id().to_owned() });
//! assert!(verify_simple_signing(payload.as_bytes(), &signature, &Digest::sha256(b"other"), &[key]).is_err());
//! # Ok::<(), wharf_auth::Error>(())
//! ```

mod bundle;
mod certificate;
mod cosign;
mod policy;
mod rekor;

use std::fmt;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wharf_types::Digest;

pub use bundle::{BUNDLE_MEDIA_TYPES, verify_bundle};
pub use cosign::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, verify_simple_signing};
pub use policy::{
    Candidate, IdentityConfig, MAX_SIGNATURE_BYTES, MAX_SIGNATURES, MAX_UNVERIFIED, Mode, SignatureRecord,
    SignatureSource, TrustConfig, TrustPolicies, TrustPolicy, TrustPolicyConfig, TrustSummary, TrustVerdict,
    Verdict,
};

use crate::error::{Error, Result};

/// The largest bundle read, in bytes.
pub const MAX_BUNDLE_LEN: usize = 512 * 1024;
/// The most certificates between a leaf and its root.
pub const MAX_CHAIN: usize = 5;
/// The most transparency-log entries of one bundle looked at.
pub const MAX_LOG_ENTRIES: usize = 4;
/// The most hashes of one inclusion proof (a tree of 2^64 entries needs 64).
pub const MAX_PROOF_HASHES: usize = 64;
/// The most signatures of one DSSE envelope looked at.
pub const MAX_ENVELOPE_SIGNATURES: usize = 4;

/// A refusal.
pub(crate) fn refuse(why: impl Into<String>) -> Error {
    Error::Signature(why.into())
}

/// Who signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Signer {
    /// A key pair: the public key's [`PublicKey::id`].
    Key {
        /// `sha256:<hex>` of the key's SubjectPublicKeyInfo.
        key: String,
    },
    /// A keyless signature: the identity Fulcio certified.
    Identity {
        /// The OIDC issuer (`https://token.actions.githubusercontent.com`, …).
        issuer: String,
        /// The subject: an email, a URI (a CI workflow), or another name.
        subject: String,
    },
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key { key } => write!(f, "key {key}"),
            Self::Identity { issuer, subject } => write!(f, "{subject} (issuer {issuer})"),
        }
    }
}

/// A transparency-log entry that verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// The entry's index in the log.
    pub index: u64,
    /// When the log integrated it (Unix seconds).
    pub integrated_time: i64,
    /// The log's id: the hex SHA-256 of its key.
    pub log_id: String,
    /// Whether its inclusion proof (up to a signed checkpoint) verified, besides its SET.
    pub inclusion_proof: bool,
}

/// A signature's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// A Sigstore bundle (cosign v3, sigstore-js).
    SigstoreBundle,
    /// cosign's classic simple-signing layout (a `sha256-<hex>.sig` tag).
    CosignSimpleSigning,
}

impl Format {
    /// The name shown: `sigstore-bundle`, `cosign`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SigstoreBundle => "sigstore-bundle",
            Self::CosignSimpleSigning => "cosign",
        }
    }
}

/// A signature that verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// Its format.
    pub format: Format,
    /// Who signed.
    pub signer: Signer,
    /// The transparency-log entry that witnessed it, if any.
    pub log: Option<LogEntry>,
}

/// What was signed: an artifact's digest and its bytes (a manifest).
#[derive(Clone, Copy, Debug)]
pub struct Artifact<'a> {
    /// The digest clients address it by.
    pub digest: &'a Digest,
    /// Its bytes (a message signature is over them).
    pub bytes: &'a [u8],
}

/// What keyless signatures are checked against: the certificate authorities (Fulcio roots
/// and intermediates) and the transparency logs (Rekor keys) trusted.
#[derive(Clone, Default)]
pub struct TrustRoot {
    authorities: Vec<Vec<u8>>,
    logs: Vec<PublicKey>,
}

impl fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustRoot")
            .field("authorities", &self.authorities.len())
            .field("logs", &self.logs.iter().map(PublicKey::id).collect::<Vec<_>>())
            .finish()
    }
}

impl TrustRoot {
    /// Nothing trusted: keyless signatures never verify.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts every certificate of a PEM file as a certificate authority (a Fulcio root
    /// and its intermediates).
    pub fn with_authorities_pem(mut self, pem: &str) -> Result<Self> {
        let before = self.authorities.len();
        for der in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = der.map_err(|e| Error::Key(format!("certificate PEM: {e}")))?;
            certificate::parse(der.as_ref()).map_err(|e| Error::Key(format!("certificate: {e}")))?;
            self.authorities.push(der.to_vec());
        }
        if self.authorities.len() == before {
            return Err(Error::Key("no certificate in the PEM file".into()));
        }
        Ok(self)
    }

    /// Also trusts every public key of a PEM file as a transparency log's (Rekor's).
    pub fn with_logs_pem(mut self, pem: &str) -> Result<Self> {
        self.logs.extend(PublicKey::from_pem(pem)?);
        Ok(self)
    }

    /// Whether nothing is trusted.
    pub fn is_empty(&self) -> bool {
        self.authorities.is_empty() && self.logs.is_empty()
    }

    /// A digest of everything trusted: a verdict recorded under another fingerprint is stale.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for a in &self.authorities {
            h.update(b"ca");
            h.update(Sha256::digest(a));
        }
        for l in &self.logs {
            h.update(b"log");
            h.update(l.id().as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }

    pub(crate) fn authorities(&self) -> &[Vec<u8>] {
        &self.authorities
    }

    pub(crate) fn log(&self, id: &[u8]) -> Option<&PublicKey> {
        self.logs.iter().find(|k| k.digest() == id)
    }
}

/// A public key that verifies DER (ASN.1) signatures: ECDSA P-256 with SHA-256, P-384 with
/// SHA-384, Ed25519, RSA PKCS#1 v1.5 with SHA-256 (2048 to 8192 bits).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    /// What aws-lc-rs takes: the EC point, the Ed25519 key, the RSA `RSAPublicKey`.
    public: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo.
    digest: [u8; 32],
    id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("kind", &self.kind).field("id", &self.id).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// A key from its SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        use x509_parser::prelude::FromDer as _;
        let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| Error::Key(format!("public key: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::Key("public key: bytes after the key".into()));
        }
        let alg = &spki.algorithm;
        let kind = if alg.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == x509_parser::oid_registry::OID_EC_P256 => KeyKind::P256,
                Some(c) if c == x509_parser::oid_registry::OID_NIST_EC_P384 => KeyKind::P384,
                _ => return Err(Error::Key("public key: an EC curve other than P-256 or P-384".into())),
            }
        } else if alg.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 {
            KeyKind::Ed25519
        } else if alg.algorithm == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            KeyKind::Rsa
        } else {
            return Err(Error::Key(format!("public key: unsupported algorithm {}", alg.algorithm)));
        };
        let digest: [u8; 32] = Sha256::digest(der).into();
        Ok(Self {
            kind,
            public: spki.subject_public_key.data.to_vec(),
            digest,
            id: format!("sha256:{}", hex::encode(digest)),
        })
    }

    /// Every `PUBLIC KEY` of a PEM file (at least one).
    pub fn from_pem(pem: &str) -> Result<Vec<Self>> {
        let mut keys = Vec::new();
        for spki in rustls_pki_types::SubjectPublicKeyInfoDer::pem_slice_iter(pem.as_bytes()) {
            let spki = spki.map_err(|e| Error::Key(format!("PEM: {e}")))?;
            keys.push(Self::from_spki_der(spki.as_ref())?);
        }
        if keys.is_empty() {
            return Err(Error::Key("no PUBLIC KEY in the PEM file".into()));
        }
        Ok(keys)
    }

    /// `sha256:<hex>` of the key's SubjectPublicKeyInfo: how signers and policies name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The SHA-256 of the SubjectPublicKeyInfo (a Rekor log id).
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Whether `signature` (DER for ECDSA) is this key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.kind {
            KeyKind::P256 => &signature::ECDSA_P256_SHA256_ASN1,
            KeyKind::P384 => &signature::ECDSA_P384_SHA384_ASN1,
            KeyKind::Ed25519 => &signature::ED25519,
            KeyKind::Rsa => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &self.public).verify(message, signature).is_ok()
    }
}

/// Standard base64, or a refusal naming `what`.
pub(crate) fn base64(what: &str, text: &str) -> Result<Vec<u8>> {
    B64.decode(text.trim()).map_err(|_| refuse(format!("{what} is not base64")))
}

/// The SHA-256 digest of `bytes`, hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `digest` is the SHA-256 (hex) `hex`.
pub(crate) fn names(digest: &Digest, alg: &str, hex: &str) -> bool {
    digest.algorithm().as_str() == alg && digest.encoded().eq_ignore_ascii_case(hex)
}
