//! cosign's classic signatures: a `sha256-<hex>.sig` tag whose layers are simple-signing
//! payloads, each signed in its `dev.cosignproject.cosign/signature` annotation.

use serde::Deserialize;
use wharf_types::Digest;

use super::{Format, PublicKey, Signer, Verified, base64, refuse};
use crate::error::Result;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The largest payload read, in bytes (cosign's are a few hundred).
const MAX_PAYLOAD_LEN: usize = 64 * 1024;
/// What a simple-signing payload for a container image says it is.
const PAYLOAD_TYPE: &str = "cosign container image signature";

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Verifies a simple-signing payload and its base64 DER signature over the manifest
/// `digest`, by one of `keys`.
pub fn verify_simple_signing(
    payload: &[u8],
    signature: &str,
    digest: &Digest,
    keys: &[PublicKey],
) -> Result<Verified> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(refuse(format!("payload of {} bytes (at most {MAX_PAYLOAD_LEN})", payload.len())));
    }
    let parsed: Payload =
        serde_json::from_slice(payload).map_err(|_| refuse("not a simple-signing payload"))?;
    if parsed.critical.kind != PAYLOAD_TYPE {
        return Err(refuse("the payload is not a cosign container image signature"));
    }
    if parsed.critical.image.digest != digest.as_str() {
        let named: String = parsed.critical.image.digest.chars().take(80).collect();
        return Err(refuse(format!("the payload signs {named}, not {digest}")));
    }
    if signature.len() > 4096 {
        return Err(refuse("signature too long"));
    }
    let signature = base64("the signature", signature)?;
    let key = keys
        .iter()
        .find(|k| k.verify(payload, &signature))
        .ok_or_else(|| refuse("signed by no trusted key"))?;
    Ok(Verified {
        format: Format::CosignSimpleSigning,
        signer: Signer::Key { key: key.id().to_owned() },
        log: None,
    })
}
