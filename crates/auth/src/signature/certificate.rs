//! Fulcio certificates: the chain to a trusted root, the validity at the log's time, and the
//! identity certified.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;
use x509_parser::time::ASN1Time;

use super::{MAX_CHAIN, PublicKey, Signer, TrustRoot, refuse};
use crate::error::Result;

/// The largest certificate read, in bytes (Fulcio's are about 1 KiB).
const MAX_CERTIFICATE_LEN: usize = 16 * 1024;
/// The longest issuer or subject kept, in bytes.
const MAX_NAME_LEN: usize = 1024;
/// Fulcio's OIDC issuer extension (DER UTF8String), and its legacy raw form.
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

/// A DER certificate, whole.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    if der.len() > MAX_CERTIFICATE_LEN {
        return Err(refuse(format!("certificate of {} bytes (at most {MAX_CERTIFICATE_LEN})", der.len())));
    }
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(refuse("bytes after the certificate")),
        Err(e) => Err(refuse(format!("certificate does not parse: {e}"))),
    }
}

/// Checks a leaf certificate (DER) at `time` (Unix seconds): issued, through at most
/// [`MAX_CHAIN`] certificate authorities of `trust`, by a self-signed one; valid then; for code
/// signing. Returns the identity it certifies and its key.
pub(crate) fn verify_leaf(der: &[u8], time: i64, trust: &TrustRoot) -> Result<(Signer, PublicKey)> {
    let leaf = parse(der)?;
    let at = ASN1Time::from_timestamp(time).map_err(|_| refuse("a log time out of range"))?;
    let valid = |c: &X509Certificate<'_>| c.validity().is_valid_at(at);
    if !valid(&leaf) {
        return Err(refuse(format!(
            "the certificate was not valid when the log integrated the signature ({} to {}, logged at {time})",
            leaf.validity().not_before.timestamp(),
            leaf.validity().not_after.timestamp()
        )));
    }
    if leaf.is_ca() {
        return Err(refuse("the signing certificate is a certificate authority"));
    }
    match leaf.extended_key_usage() {
        Ok(Some(eku)) if eku.value.code_signing => {}
        _ => return Err(refuse("the certificate is not for code signing")),
    }
    let authorities: Vec<X509Certificate<'_>> =
        trust.authorities().iter().filter_map(|der| parse(der).ok()).collect();
    let mut current = &leaf;
    let mut rooted = false;
    for _ in 0..MAX_CHAIN {
        let issuer = authorities.iter().find(|ca| {
            ca.subject().as_raw() == current.issuer().as_raw()
                && ca.is_ca()
                && valid(ca)
                && current.verify_signature(Some(ca.public_key())).is_ok()
        });
        let Some(issuer) = issuer else { break };
        if issuer.subject().as_raw() == issuer.issuer().as_raw() {
            rooted = true;
            break;
        }
        current = issuer;
    }
    if !rooted {
        return Err(refuse(format!(
            "the certificate does not chain to a trusted Fulcio root within {MAX_CHAIN} links (issuer {})",
            short(&leaf.issuer().to_string())
        )));
    }
    let key = PublicKey::from_spki_der(leaf.public_key().raw)
        .map_err(|e| refuse(format!("the certificate's key: {e}")))?;
    Ok((identity(&leaf)?, key))
}

/// The issuer and subject Fulcio certified.
fn identity(cert: &X509Certificate<'_>) -> Result<Signer> {
    let mut issuer = None;
    for ext in cert.iter_extensions() {
        let oid = ext.oid.to_id_string();
        if oid == ISSUER_V2 {
            let value = x509_parser::der_parser::der::parse_der_utf8string(ext.value)
                .ok()
                .and_then(|(_, v)| v.as_str().ok().map(str::to_owned));
            issuer = Some(value.ok_or_else(|| refuse("the issuer extension is not a UTF8String"))?);
        } else if oid == ISSUER_V1 && issuer.is_none() {
            issuer = Some(
                std::str::from_utf8(ext.value)
                    .map_err(|_| refuse("the legacy issuer extension is not UTF-8"))?
                    .to_owned(),
            );
        }
    }
    let issuer = issuer.ok_or_else(|| refuse("the certificate names no OIDC issuer"))?;
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .ok_or_else(|| refuse("the certificate has no subject alternative name"))?;
    let subject = san
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some((*s).to_owned()),
            GeneralName::OtherName(_, value) => x509_parser::der_parser::der::parse_der(value)
                .ok()
                .and_then(|(_, any)| any.as_slice().ok().map(|b| String::from_utf8_lossy(b).into_owned())),
            _ => None,
        })
        .ok_or_else(|| {
            refuse("the certificate's subject alternative name is not an email, URI or other name")
        })?;
    if issuer.len() > MAX_NAME_LEN || subject.len() > MAX_NAME_LEN {
        return Err(refuse("the certified identity is too long"));
    }
    Ok(Signer::Identity { issuer, subject })
}

/// At most 160 characters of `s`.
fn short(s: &str) -> String {
    s.chars().take(160).collect()
}
