//! Property tests: parse ∘ display is the identity on valid values, invalid strings are
//! refused, and the fuzz invariants hold on random input.

use proptest::prelude::*;
use wharf_types::{Algorithm, Digest, Reference, Repository, Tag, TagOrDigest, fuzzing};

const COMPONENT: &str = "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}";

fn repository() -> impl Strategy<Value = String> {
    prop::collection::vec(proptest::string::string_regex(COMPONENT).expect("regex"), 1..4)
        .prop_map(|c| c.join("/"))
}

fn tag() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}").expect("regex")
}

fn digest() -> impl Strategy<Value = Digest> {
    (any::<bool>(), any::<Vec<u8>>()).prop_map(|(sha512, bytes)| {
        Digest::compute(if sha512 { Algorithm::Sha512 } else { Algorithm::Sha256 }, &bytes)
    })
}

fn registry() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("localhost".to_owned())),
        Just(Some("[::1]:5000".to_owned())),
        Just(Some("docker.io".to_owned())),
        (1u16..=65535).prop_map(|p| Some(format!("127.0.0.1:{p}"))),
        proptest::string::string_regex(
            "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,8}){1,3}(:[0-9]{1,5})?"
        )
        .expect("regex")
        .prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn repository_and_tag_round_trip(repo in repository(), tag in tag()) {
        let r: Repository = repo.parse().expect("generated from the grammar");
        prop_assert_eq!(r.to_string(), repo.clone());
        prop_assert_eq!(r.to_string().parse::<Repository>().expect("again"), r);
        let t: Tag = tag.parse().expect("generated from the grammar");
        prop_assert_eq!(t.to_string(), tag.clone());
        prop_assert_eq!(TagOrDigest::Tag(t).to_string(), tag);
    }

    #[test]
    fn digest_round_trips(d in digest()) {
        let shown = d.to_string();
        prop_assert_eq!(shown.parse::<Digest>().expect("display parses"), d.clone());
        let json = serde_json::to_string(&d).expect("serialises");
        prop_assert_eq!(serde_json::from_str::<Digest>(&json).expect("deserialises"), d);
    }

    #[test]
    fn reference_round_trips(
        registry in registry(),
        repo in repository(),
        tag in proptest::option::of(tag()),
        digest in proptest::option::of(digest()),
    ) {
        let mut s = String::new();
        if let Some(registry) = &registry {
            s.push_str(registry);
            s.push('/');
        }
        s.push_str(&repo);
        if let Some(tag) = &tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &digest {
            s.push('@');
            s.push_str(digest.as_str());
        }
        // Without a registry, a first component like `a.b` would itself read as a host.
        let first = repo.split('/').next().unwrap_or_default();
        prop_assume!(registry.is_some() || !first.contains('.') || !repo.contains('/'));
        let Ok(r) = s.parse::<Reference>() else {
            // Only the overall length limit may refuse a generated reference.
            prop_assert!(s.len() > wharf_types::MAX_NAME_LEN - "docker.io/library/".len());
            return Ok(());
        };
        prop_assert_eq!(r.tag().map(Tag::as_str), tag.as_deref().or(digest.is_none().then_some("latest")));
        prop_assert_eq!(r.digest(), digest.as_ref());
        let again: Reference = r.to_string().parse().expect("display parses");
        prop_assert_eq!(&again, &r);
        let familiar: Reference = r.familiar().parse().expect("familiar parses");
        prop_assert_eq!(familiar, r);
    }

    #[test]
    fn invalid_repositories_are_refused(
        repo in repository(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec!["A", "Z", "/", "//", "..", " ", ":", "@", "\\", "é", "\u{0}", "___", "-/", "/."]),
    ) {
        let i = at.index(repo.len() + 1);
        let s = format!("{}{bad}{}", &repo[..i], &repo[i..]);
        if s.parse::<Repository>().is_ok() {
            // Only harmless insertions may still be valid, and nothing unsafe ever is.
            prop_assert!(!s.contains("..") && !s.starts_with('/') && !s.ends_with('/') && !s.contains("//"));
            prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)));
        }
        let candidate = format!("/{repo}");
        prop_assert!(candidate.parse::<Repository>().is_err(), "accepted {}", candidate);
        let candidate = format!("{repo}/");
        prop_assert!(candidate.parse::<Repository>().is_err(), "accepted {}", candidate);
        let candidate = format!("../{repo}");
        prop_assert!(candidate.parse::<Repository>().is_err(), "accepted {}", candidate);
        let candidate = format!("{repo}/..");
        prop_assert!(candidate.parse::<Repository>().is_err(), "accepted {}", candidate);
        prop_assert!(repo.to_uppercase().parse::<Repository>().is_err() || !repo.bytes().any(|b| b.is_ascii_lowercase()));
    }

    #[test]
    fn invalid_tags_are_refused(
        tag in tag(),
        first in prop::sample::select(vec!['.', '-', '/', ':', '@', ' ']),
        long in proptest::string::string_regex("[a-z]{129,200}").expect("regex"),
    ) {
        let candidate = format!("{first}{tag}");
        prop_assert!(candidate.parse::<Tag>().is_err(), "accepted {}", candidate);
        prop_assert!(long.parse::<Tag>().is_err());
        let candidate = format!("{tag}/x");
        prop_assert!(candidate.parse::<Tag>().is_err(), "accepted {}", candidate);
    }

    #[test]
    fn invalid_digests_are_refused(d in digest(), cut in 1usize..64) {
        let s = d.to_string();
        prop_assert!(s[..s.len() - cut].parse::<Digest>().is_err());
        let candidate = format!("{s}0");
        prop_assert!(candidate.parse::<Digest>().is_err(), "accepted {}", candidate);
        if s.bytes().any(|b| (b'a'..=b'f').contains(&b)) {
            let upper = format!("{}:{}", d.algorithm(), d.encoded().to_uppercase());
            prop_assert!(upper.parse::<Digest>().is_err());
        }
    }

    #[test]
    fn fuzz_invariants_hold_on_random_input(data in any::<Vec<u8>>(), text in "\\PC{0,80}") {
        fuzzing::reference(&data);
        fuzzing::reference(text.as_bytes());
        fuzzing::digest(&data);
        fuzzing::digest(text.as_bytes());
        fuzzing::manifest(&data);
        fuzzing::manifest(text.as_bytes());
    }
}

#[test]
fn fuzz_invariants_hold_on_the_seed_corpus() {
    for seed in [
        "ubuntu",
        "library/ubuntu:22.04",
        "localhost:5000/a/b:v1",
        "[::1]:5000/x:y",
        "docker.io/my.org/app",
        "acme:greeter",
        "wasi:http-types",
        "1.0.0_build.5",
        "0.2.0-rc.1+x.y",
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
        r#"{"schemaVersion":2,"manifests":[]}"#,
        r#"{"schemaVersion":2,"config":{"mediaType":"a/b","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"x":1.5e300}"#,
    ] {
        fuzzing::reference(seed.as_bytes());
        fuzzing::digest(seed.as_bytes());
        fuzzing::manifest(seed.as_bytes());
    }
}
