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

/// The token parser never panics, and no input verifies under a key that did not sign it.
pub fn token(data: &[u8]) {
    static KEYS: std::sync::OnceLock<Vec<crate::VerifyingKey>> = std::sync::OnceLock::new();
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
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn parsers_hold_their_invariants(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            super::htpasswd(&data);
            super::scope(&data);
            super::token(&data);
        }

        #[test]
        fn structured_scopes_roundtrip(kind in "repository|registry", name in "[a-z0-9/:._-]{1,30}", actions in "[a-z*]{1,6}(,[a-z*]{1,6}){0,3}") {
            super::scope(format!("{kind}:{name}:{actions}").as_bytes());
        }
    }
}
