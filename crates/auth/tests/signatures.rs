//! Signatures made by independent signers, verified offline. The bundles in
//! `tests/data/sigstore` were made by npm's `@sigstore/sign` against the Fulcio and Rekor of
//! `@sigstore/mock` (`tests/sigstore/sign.mjs` at the workspace root), the simple-signing
//! signature by `openssl dgst -sha256 -sign`; their private keys were thrown away.

use std::path::PathBuf;

use wharf_auth::signature::{
    Artifact, Format, PublicKey, Signer, TrustRoot, verify_bundle, verify_simple_signing,
};
use wharf_types::Digest;

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(data(name)).expect("UTF-8")
}

fn trust() -> TrustRoot {
    TrustRoot::new()
        .with_authorities_pem(&text("fulcio.pem"))
        .and_then(|t| t.with_logs_pem(&text("rekor.pub")))
        .expect("trust material")
}

fn key() -> PublicKey {
    PublicKey::from_pem(&text("signer.pub")).expect("key").remove(0)
}

struct Subject {
    bytes: Vec<u8>,
    digest: Digest,
}

fn manifest() -> Subject {
    let bytes = data("manifest.json");
    Subject { digest: Digest::sha256(&bytes), bytes }
}

fn verify(
    bundle: &str,
    trust: &TrustRoot,
    keys: &[PublicKey],
) -> wharf_auth::Result<wharf_auth::signature::Verified> {
    let m = manifest();
    verify_bundle(&data(bundle), &Artifact { digest: &m.digest, bytes: &m.bytes }, trust, keys)
}

fn refusal(result: wharf_auth::Result<wharf_auth::signature::Verified>) -> String {
    match result {
        Ok(v) => panic!("verified: {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn ci() -> Signer {
    Signer::Identity { issuer: "https://issuer.test".into(), subject: "ci@example.com".into() }
}

#[test]
fn a_keyless_message_signature_verifies_with_its_identity_and_log_entry() {
    let v = verify("message.json", &trust(), &[]).expect("verifies");
    assert_eq!(v.format, Format::SigstoreBundle);
    assert_eq!(v.signer, ci());
    let log = v.log.expect("a log entry");
    assert!(log.inclusion_proof, "the inclusion proof and checkpoint verified too");
    assert!(log.integrated_time > 1_700_000_000);
}

#[test]
fn a_keyless_dsse_statement_naming_the_manifest_verifies() {
    let v = verify("dsse.json", &trust(), &[]).expect("verifies");
    assert_eq!(v.signer, ci());
}

#[test]
fn a_key_based_bundle_verifies_by_a_trusted_key_only() {
    let v = verify("key.json", &trust(), &[key()]).expect("verifies");
    assert_eq!(v.signer, Signer::Key { key: key().id().to_owned() });
    assert!(refusal(verify("key.json", &trust(), &[])).contains("no trusted key"));
}

#[test]
fn another_identity_verifies_as_itself() {
    let v = verify("other-identity.json", &trust(), &[]).expect("verifies");
    assert_eq!(
        v.signer,
        Signer::Identity { issuer: "https://issuer.test".into(), subject: "mallory@example.org".into() }
    );
}

#[test]
fn untrusted_roots_and_logs_refuse() {
    assert!(refusal(verify("message.json", &TrustRoot::new(), &[])).contains("untrusted transparency log"));
    let no_ca = TrustRoot::new().with_logs_pem(&text("rekor.pub")).expect("log");
    assert!(refusal(verify("message.json", &no_ca, &[])).contains("trusted Fulcio root"));
}

#[test]
fn a_signature_over_other_bytes_or_naming_another_digest_refuses() {
    assert!(refusal(verify("tampered.json", &trust(), &[])).contains("not sha256:"));
    assert!(refusal(verify("other-subject.json", &trust(), &[])).contains("the statement names sha256:0000"));
}

/// Every byte of a bundle's signature, log entry or certificate that changes makes it refuse.
#[test]
fn edits_to_a_bundle_refuse() {
    let original: serde_json::Value = serde_json::from_slice(&data("message.json")).expect("JSON");
    let edits: [(&str, &[&str]); 5] = [
        ("signature", &["messageSignature", "signature"]),
        ("set", &["verificationMaterial", "tlogEntries", "0", "inclusionPromise", "signedEntryTimestamp"]),
        ("time", &["verificationMaterial", "tlogEntries", "0", "integratedTime"]),
        ("body", &["verificationMaterial", "tlogEntries", "0", "canonicalizedBody"]),
        ("certificate", &["verificationMaterial", "certificate", "rawBytes"]),
    ];
    let m = manifest();
    for (what, path) in edits {
        let mut bundle = original.clone();
        let mut at = &mut bundle;
        for step in path {
            at = match step.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*step],
            };
        }
        let value = at.as_str().expect("a string").to_owned();
        // Flip one character in the middle (base64 stays base64; a number stays a number).
        let mid = value.len() / 2;
        let c = value.as_bytes()[mid];
        let flipped = match c {
            b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => c + 1,
            _ => b'0',
        };
        let mut edited = value.into_bytes();
        edited[mid] = flipped;
        *at = serde_json::Value::String(String::from_utf8(edited).expect("ASCII"));
        let json = serde_json::to_vec(&bundle).expect("JSON");
        let got = verify_bundle(&json, &Artifact { digest: &m.digest, bytes: &m.bytes }, &trust(), &[]);
        assert!(got.is_err(), "an edited {what} verified");
    }
}

#[test]
fn hostile_bundles_refuse_with_a_reason() {
    let m = manifest();
    let artifact = Artifact { digest: &m.digest, bytes: &m.bytes };
    let huge = vec![b' '; wharf_auth::signature::MAX_BUNDLE_LEN + 1];
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut many: serde_json::Value = serde_json::from_slice(&data("message.json")).expect("JSON");
    let entry = many["verificationMaterial"]["tlogEntries"][0].clone();
    many["verificationMaterial"]["tlogEntries"] = serde_json::Value::Array(vec![entry; 1000]);
    let many = serde_json::to_vec(&many).expect("JSON");
    for (what, json) in [
        ("oversized", huge.as_slice()),
        ("deep", deep.as_bytes()),
        ("not JSON", b"\xff\xfe".as_slice()),
        ("empty object", b"{}".as_slice()),
        ("a thousand log entries", many.as_slice()),
    ] {
        let got = verify_bundle(json, &artifact, &trust(), &[key()]);
        assert!(matches!(got, Err(wharf_auth::Error::Signature(_))), "{what}: {got:?}");
    }
}

#[test]
fn a_cosign_simple_signing_signature_made_by_openssl_verifies() {
    let m = manifest();
    let payload = data("simplesigning.json");
    let signature = text("simplesigning.sig");
    let v = verify_simple_signing(&payload, &signature, &m.digest, &[key()]).expect("verifies");
    assert_eq!(v.format, Format::CosignSimpleSigning);
    assert_eq!(v.signer, Signer::Key { key: key().id().to_owned() });
    assert!(verify_simple_signing(&payload, &signature, &Digest::sha256(b"other"), &[key()]).is_err());
    let mut edited = payload.clone();
    edited.push(b' ');
    assert!(verify_simple_signing(&edited, &signature, &m.digest, &[key()]).is_err());
    let other = PublicKey::from_pem(&text("rekor.pub")).expect("a key");
    assert!(verify_simple_signing(&payload, &signature, &m.digest, &other).is_err());
}
