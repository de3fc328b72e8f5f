//! Sigstore bundles (v0.1 to v0.3): a message signature or a DSSE envelope, the certificate or
//! key that signed, the log entries that witnessed it.

use serde::Deserialize;

use super::rekor::{Entry, Logged};
use super::{
    Artifact, Format, LogEntry, MAX_BUNDLE_LEN, MAX_ENVELOPE_SIGNATURES, MAX_LOG_ENTRIES, PublicKey, Signer,
    TrustRoot, Verified, base64, certificate, names, refuse, sha256_hex,
};
use crate::error::Result;

/// The media types of Sigstore bundles (an OCI referrer's `artifactType`).
pub const BUNDLE_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

/// The in-toto statement type and the predicate of a cosign v3 signature.
const IN_TOTO: &str = "application/vnd.in-toto+json";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    message_signature: Option<MessageSignature>,
    dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    certificate: Option<RawBytes>,
    x509_certificate_chain: Option<Chain>,
    public_key: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    tlog_entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Debug, Deserialize)]
struct Chain {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
    signature: String,
}

#[derive(Debug, Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<StatementSubject>,
    predicate_type: String,
}

#[derive(Debug, Deserialize)]
struct StatementSubject {
    digest: std::collections::BTreeMap<String, String>,
}

/// What was signed and how: the bytes a signature is over, the signatures, and what a log
/// entry's body must name.
struct Content {
    /// The bytes the signature is over.
    message: Vec<u8>,
    /// The signatures (one for a message signature).
    signatures: Vec<Vec<u8>>,
    /// The log entry kind that witnesses it (`hashedrekord`, `dsse`).
    kind: &'static str,
    /// The hex SHA-256 a log entry names: the artifact's (hashedrekord) or the payload's (dsse).
    logged_hash: String,
}

/// Verifies a Sigstore bundle (its JSON, at most [`MAX_BUNDLE_LEN`] bytes) over `artifact`:
/// keyless against `trust`, or by one of `keys`. See the [module](super) for what is checked.
pub fn verify_bundle(
    json: &[u8],
    artifact: &Artifact<'_>,
    trust: &TrustRoot,
    keys: &[PublicKey],
) -> Result<Verified> {
    if json.len() > MAX_BUNDLE_LEN {
        return Err(refuse(format!("bundle of {} bytes (at most {MAX_BUNDLE_LEN})", json.len())));
    }
    let bundle: Bundle = serde_json::from_slice(json)
        .map_err(|e| refuse(format!("not a Sigstore bundle: {}", short(&e.to_string()))))?;
    if !BUNDLE_MEDIA_TYPES.contains(&bundle.media_type.as_str()) {
        return Err(refuse(format!("unknown bundle media type `{}`", short(&bundle.media_type))));
    }
    let content = content(&bundle, artifact)?;
    let material = &bundle.verification_material;
    if material.tlog_entries.len() > MAX_LOG_ENTRIES {
        return Err(refuse(format!(
            "{} log entries (at most {MAX_LOG_ENTRIES})",
            material.tlog_entries.len()
        )));
    }
    let leaf = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(c), _) => Some(base64("the certificate", &c.raw_bytes)?),
        (None, Some(chain)) => Some(base64(
            "the certificate",
            &chain.certificates.first().ok_or_else(|| refuse("an empty certificate chain"))?.raw_bytes,
        )?),
        (None, None) => None,
    };
    // The log entries that verify and log this very signature.
    let mut witnessed: Option<LogEntry> = None;
    let mut why_not = None;
    for entry in &material.tlog_entries {
        match entry.verify(trust).and_then(|(log, logged)| {
            logs_content(&logged, &content, leaf.as_deref())?;
            Ok(log)
        }) {
            Ok(log) => {
                witnessed.get_or_insert(log);
            }
            Err(e) => why_not = Some(e),
        }
    }
    let (signer, key) = if let Some(leaf) = &leaf {
        let Some(log) = &witnessed else {
            return Err(
                why_not.unwrap_or_else(|| refuse("a keyless signature with no transparency-log entry"))
            );
        };
        certificate::verify_leaf(leaf, log.integrated_time, trust)?
    } else if material.public_key.is_some() {
        if let Some(e) = why_not.filter(|_| witnessed.is_none()) {
            return Err(e);
        }
        let key = keys
            .iter()
            .find(|k| content.signatures.iter().any(|s| k.verify(&content.message, s)))
            .ok_or_else(|| refuse("signed by no trusted key"))?;
        (Signer::Key { key: key.id().to_owned() }, key.clone())
    } else {
        return Err(refuse("the bundle has neither a certificate nor a public key"));
    };
    if !content.signatures.iter().any(|s| key.verify(&content.message, s)) {
        return Err(refuse("the signature does not verify over the signed content"));
    }
    Ok(Verified { format: Format::SigstoreBundle, signer, log: witnessed })
}

/// What the bundle signs, checked to be `artifact`.
fn content(bundle: &Bundle, artifact: &Artifact<'_>) -> Result<Content> {
    match (&bundle.message_signature, &bundle.dsse_envelope) {
        (Some(m), None) => {
            if m.message_digest.algorithm != "SHA2_256" {
                return Err(refuse(format!(
                    "message digest algorithm `{}`",
                    short(&m.message_digest.algorithm)
                )));
            }
            let digest = hex::encode(base64("the message digest", &m.message_digest.digest)?);
            if digest != sha256_hex(artifact.bytes) || !names(artifact.digest, "sha256", &digest) {
                return Err(refuse(format!("the bundle signs sha256:{digest}, not {}", artifact.digest)));
            }
            Ok(Content {
                message: artifact.bytes.to_vec(),
                signatures: vec![base64("the signature", &m.signature)?],
                kind: "hashedrekord",
                logged_hash: digest,
            })
        }
        (None, Some(envelope)) => {
            if envelope.payload_type != IN_TOTO {
                return Err(refuse(format!("a DSSE payload of type `{}`", short(&envelope.payload_type))));
            }
            let payload = base64("the DSSE payload", &envelope.payload)?;
            let statement: Statement = serde_json::from_slice(&payload).map_err(|e| {
                refuse(format!("the DSSE payload is not an in-toto statement: {}", short(&e.to_string())))
            })?;
            if !statement.kind.starts_with("https://in-toto.io/Statement/") {
                return Err(refuse("the DSSE payload is not an in-toto statement"));
            }
            if statement.predicate_type != SIGN_PREDICATE {
                return Err(refuse(format!(
                    "an attestation of `{}`, not a signature ({SIGN_PREDICATE})",
                    short(&statement.predicate_type)
                )));
            }
            let named = statement
                .subject
                .iter()
                .take(64)
                .any(|s| s.digest.iter().any(|(alg, hex)| names(artifact.digest, alg, hex)));
            if !named {
                let first = statement.subject.first().and_then(|s| s.digest.iter().next());
                return Err(refuse(match first {
                    Some((alg, hex)) => {
                        format!("the statement names {}:{}, not {}", short(alg), short(hex), artifact.digest)
                    }
                    None => "the statement names no subject".to_owned(),
                }));
            }
            if envelope.signatures.is_empty() || envelope.signatures.len() > MAX_ENVELOPE_SIGNATURES {
                return Err(refuse(format!(
                    "a DSSE envelope with {} signatures (1 to {MAX_ENVELOPE_SIGNATURES})",
                    envelope.signatures.len()
                )));
            }
            let mut signatures = Vec::new();
            for s in &envelope.signatures {
                signatures.push(base64("a DSSE signature", &s.sig)?);
            }
            Ok(Content {
                message: pae(&envelope.payload_type, &payload),
                signatures,
                kind: "dsse",
                logged_hash: sha256_hex(&payload),
            })
        }
        _ => Err(refuse("the bundle has neither one message signature nor one DSSE envelope")),
    }
}

/// DSSE's pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whether a log entry's body logged this content: its kind, the hash, one of the
/// signatures, and (keyless) the same certificate.
fn logs_content(logged: &Logged, content: &Content, leaf: Option<&[u8]>) -> Result<()> {
    if logged.kind != content.kind {
        return Err(refuse(format!(
            "a `{}` log entry for a {} signature",
            short(&logged.kind),
            content.kind
        )));
    }
    let spec = &logged.body["spec"];
    // (hash algorithm, hex, [(signature b64, verifier b64 PEM)]): hashedrekord's, the dsse
    // entry as Rekor canonicalizes it, or as it was proposed (what a log that keeps the
    // proposal, like @sigstore/mock's, holds).
    let (alg, hash, pairs): (String, String, Vec<(String, String)>) = match content.kind {
        "hashedrekord" => (
            text(&spec["data"]["hash"]["algorithm"]),
            text(&spec["data"]["hash"]["value"]),
            vec![(text(&spec["signature"]["content"]), text(&spec["signature"]["publicKey"]["content"]))],
        ),
        _ if spec["proposedContent"]["envelope"].is_string() => {
            let envelope: Envelope =
                serde_json::from_str(spec["proposedContent"]["envelope"].as_str().unwrap_or_default())
                    .map_err(|_| refuse("the log entry's envelope does not parse"))?;
            let verifiers: Vec<String> = spec["proposedContent"]["verifiers"]
                .as_array()
                .map(|a| a.iter().take(MAX_ENVELOPE_SIGNATURES).map(text).collect())
                .unwrap_or_default();
            let pairs = envelope
                .signatures
                .iter()
                .take(MAX_ENVELOPE_SIGNATURES)
                .flat_map(|s| verifiers.iter().map(|v| (s.sig.clone(), v.clone())))
                .collect();
            ("sha256".to_owned(), sha256_hex(&base64("the logged payload", &envelope.payload)?), pairs)
        }
        _ => (
            text(&spec["payloadHash"]["algorithm"]),
            text(&spec["payloadHash"]["value"]),
            spec["signatures"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .take(MAX_ENVELOPE_SIGNATURES)
                        .map(|s| (text(&s["signature"]), text(&s["verifier"])))
                        .collect()
                })
                .unwrap_or_default(),
        ),
    };
    if alg != "sha256" || hash != content.logged_hash {
        return Err(refuse("the log entry logged another digest"));
    }
    let matches = pairs.iter().any(|(signature, verifier)| {
        let same_signature = base64("", signature).is_ok_and(|s| content.signatures.contains(&s));
        let same_signer = match leaf {
            None => true,
            Some(leaf) => base64("", verifier)
                .ok()
                .and_then(|pem| {
                    use rustls_pki_types::pem::PemObject as _;
                    rustls_pki_types::CertificateDer::from_pem_slice(&pem).ok()
                })
                .is_some_and(|c| c.as_ref() == leaf),
        };
        same_signature && same_signer
    });
    if !matches {
        return Err(refuse("the log entry logged another signature or certificate"));
    }
    Ok(())
}

/// A JSON string's value, or nothing.
fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}
