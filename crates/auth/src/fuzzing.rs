//! Invariant checks for the fuzz targets (also run by proptest in `cargo test`).

/// The htpasswd reader never panics; what it accepts renders and re-reads to the same users.
pub fn htpasswd(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = crate::Htpasswd::parse(&text) {
        let again = crate::Htpasswd::parse(&file.render()).expect("a rendered file parses");
        assert_eq!(again, file);
        for user in file.users() {
            assert!(crate::valid_user(user), "{user:?}");
        }
    }
}

/// The scope parser never panics; what it accepts prints and re-parses to itself.
pub fn scope(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(list) = crate::Scope::parse_list(&text) {
        for scope in &list {
            let again = crate::Scope::parse(&scope.to_string()).expect("a printed scope parses");
            assert_eq!(&again, scope);
            assert!(!scope.actions.is_empty());
        }
    }
    for line in text.lines() {
        let _ = line.parse::<crate::Pattern>().map(|p| p.matches(line));
    }
}

/// The token parser never panics, and no input verifies under a key that did not sign it;
/// the same for the OIDC readers (an issuer's check of a workload token, a discovery
/// document, the unverified `iss`).
pub fn token(data: &[u8]) {
    static KEYS: std::sync::OnceLock<Vec<crate::VerifyingKey>> = std::sync::OnceLock::new();
    static ISSUER: std::sync::OnceLock<crate::oidc::Issuer> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [crate::Algorithm::ES256, crate::Algorithm::EdDSA]
            .into_iter()
            .map(|a| crate::SigningKey::generate(a).expect("a key").verifying_key())
            .collect()
    });
    let text = String::from_utf8_lossy(data);
    let _ = crate::jwt::parse(&text);
    assert!(crate::jwt::verify::<serde_json::Value>(&text, keys).is_err(), "a forged token verified");
    let _ = crate::VerifyingKey::from_jwks(&text);
    let _ = crate::VerifyingKey::from_pem(&text);
    let issuer = ISSUER.get_or_init(|| {
        let rule = crate::oidc::ClaimRule {
            claims: [("sub".to_owned(), vec!["*".to_owned()])].into(),
            grant: crate::Grant {
                repositories: vec!["**".parse().expect("pattern")],
                actions: crate::Actions::of(&[crate::Action::Pull]),
            },
        };
        crate::oidc::Issuer::new("fuzz", "https://issuer.example", "wharf", vec![rule]).expect("valid")
    });
    let _ = crate::oidc::claimed_issuer(&text);
    let _ = crate::oidc::Discovery::parse(data, "https://issuer.example");
    assert!(
        matches!(
            issuer.verify(&text, keys, crate::token::now()),
            Err(crate::oidc::Rejected::Invalid(_) | crate::oidc::Rejected::UnknownKey)
        ),
        "a forged workload token verified"
    );
}

/// The Sigstore bundle and cosign readers never panic, and whatever verifies against the
/// test trust material (the `@sigstore/mock` Fulcio and Rekor of `tests/data/sigstore`, and its
/// signer key) over the test manifest is signed by the test identity or key: no mutation of
/// a real bundle verifies as someone else, or over another manifest. Returns whether `data`
/// verified (as a bundle or a payload).
pub fn signature(data: &[u8]) -> bool {
    use crate::signature::{Artifact, PublicKey, Signer, TrustRoot, verify_bundle, verify_simple_signing};
    static MATERIAL: std::sync::OnceLock<(TrustRoot, Vec<PublicKey>)> = std::sync::OnceLock::new();
    let (root, keys) = MATERIAL.get_or_init(|| {
        let root = TrustRoot::new()
            .with_authorities_pem(include_str!("../tests/data/sigstore/fulcio.pem"))
            .and_then(|t| t.with_logs_pem(include_str!("../tests/data/sigstore/rekor.pub")))
            .expect("the test trust material");
        let keys =
            PublicKey::from_pem(include_str!("../tests/data/sigstore/signer.pub")).expect("the test key");
        (root, keys)
    });
    let manifest: &[u8] = include_bytes!("../tests/data/sigstore/manifest.json");
    let digest = wharf_types::Digest::sha256(manifest);
    let trusted = |signer: &Signer| match signer {
        Signer::Identity { issuer, subject } => {
            issuer == "https://issuer.test" && subject == "ci@example.com"
        }
        Signer::Key { key } => keys.iter().any(|k| k.id() == key),
    };
    let mut verified = false;
    if let Ok(v) = verify_bundle(data, &Artifact { digest: &digest, bytes: manifest }, root, keys) {
        assert!(trusted(&v.signer), "a bundle verified as {:?}", v.signer);
        verified = true;
    }
    // As a cosign payload under the real signature, and as a signature over the real payload.
    let signature = include_str!("../tests/data/sigstore/simplesigning.sig").trim();
    let payload: &[u8] = include_bytes!("../tests/data/sigstore/simplesigning.json");
    if let Ok(v) = verify_simple_signing(data, signature, &digest, keys) {
        assert!(data == payload && trusted(&v.signer), "a payload verified: {:?}", v.signer);
        verified = true;
    }
    let text = String::from_utf8_lossy(data);
    if verify_simple_signing(payload, text.trim(), &digest, keys).is_ok() {
        assert_eq!(text.trim(), signature, "another signature verified over the payload");
    }
    verified
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn parsers_hold_their_invariants(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            super::htpasswd(&data);
            super::scope(&data);
            super::token(&data);
            let _ = super::signature(&data);
        }

        #[test]
        fn mutated_bundles_never_verify_as_someone_else(at in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
            for bundle in [&include_bytes!("../tests/data/sigstore/message.json")[..], include_bytes!("../tests/data/sigstore/dsse.json")] {
                proptest::prop_assert!(super::signature(bundle), "the real bundle verifies");
                let mut data = bundle.to_vec();
                let i = at % data.len();
                data[i] = byte;
                let _ = super::signature(&data);
            }
        }

        #[test]
        fn structured_scopes_roundtrip(kind in "repository|registry", name in "[a-z0-9/:._-]{1,30}", actions in "[a-z*]{1,6}(,[a-z*]{1,6}){0,3}") {
            super::scope(format!("{kind}:{name}:{actions}").as_bytes());
        }
    }
}
