//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and this crate's tests.
//!
//! Each function takes arbitrary bytes, and panics when an invariant of the parsers breaks;
//! input the parsers refuse is fine. The fuzz targets call them with libFuzzer's input, and
//! the tests call them with proptest's and with a seed corpus, so the same checks run on the
//! stable toolchain in every `cargo test`.

use crate::{Digest, Manifest, MediaType, Reference, Repository, Tag, TagOrDigest};

/// Reference, repository, tag, tag-or-digest, platform and package parsing: what parses prints back to itself
/// (tags and names exactly, references in their normalized form), and the familiar form
/// names the same reference.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = s.parse::<Reference>() {
        let shown = r.to_string();
        let again: Reference = shown.parse().unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert_eq!(again, r, "display of {s:?} does not parse back to it");
        assert_eq!(again.to_string(), shown);
        let familiar = r.familiar();
        let from_familiar: Reference =
            familiar.parse().unwrap_or_else(|e| panic!("familiar {familiar}: {e}"));
        assert_eq!(from_familiar, r, "familiar form {familiar:?} of {s:?} names another reference");
        assert!(shown.len() <= s.len() + "docker.io/library/:latest".len());
    }
    if let Ok(repo) = s.parse::<Repository>() {
        assert_eq!(repo.as_str(), s);
        assert!(repo.components().all(|c| !c.is_empty() && c != ".." && c != "."));
        assert!(!s.starts_with('/') && !s.contains('\\'));
    }
    if let Ok(tag) = s.parse::<Tag>() {
        assert_eq!(tag.as_str(), s);
        assert!(!s.is_empty() && s.len() <= Tag::MAX_LEN);
    }
    if let Ok(target) = s.parse::<TagOrDigest>() {
        assert_eq!(target.to_string(), s);
    }
    // `--platform os/architecture[/variant]`: what parses prints back to itself.
    if let Ok(platform) = s.parse::<crate::Platform>() {
        assert_eq!(platform.to_string(), s);
    }
    // Wasm packages: a name prints back to itself and maps to a repository path; a version
    // (from text or from a tag) always makes a tag that reads back as the same version.
    if let Ok(package) = s.parse::<crate::PackageName>() {
        assert_eq!(package.to_string(), s);
        let path = format!("{}/{}", package.namespace(), package.name());
        path.parse::<Repository>().unwrap_or_else(|e| panic!("{s:?} maps to no repository: {e}"));
    }
    let versions = [s.parse::<crate::PackageVersion>().ok(), crate::PackageVersion::of_tag(s)];
    for version in versions.into_iter().flatten() {
        let tag = version.tag();
        assert_eq!(crate::PackageVersion::of_tag(tag.as_str()).as_ref(), Some(&version), "{s:?}");
    }
}

/// Digest parsing and hashing: a parsed digest prints back to its input, and hashing the
/// input whole, in pieces, and through `verify` agree.
pub fn digest(data: &[u8]) {
    // Any bytes as a saved hash state (they come from a bucket): a hasher or `None`, and a
    // resumed hasher saves the same state again.
    if let Some(resumed) = crate::Digester::resume(data) {
        assert_eq!(resumed.state(), data);
        let _ = resumed.finish();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(d) = s.parse::<Digest>() {
            assert_eq!(d.as_str(), s);
            assert_eq!(d.encoded().len(), d.algorithm().hex_len());
            assert_eq!(d.to_string().parse::<Digest>().expect("display parses"), d);
        }
        if let Ok(mt) = s.parse::<MediaType>() {
            assert_eq!(mt.as_str(), s);
            assert_eq!(mt.essence().parse::<MediaType>().expect("essence parses"), mt);
        }
    }
    for algorithm in [crate::Algorithm::Sha256, crate::Algorithm::Sha512] {
        let whole = Digest::compute(algorithm, data);
        whole.verify(data).expect("a digest verifies its own content");
        let mut digester = algorithm.digester();
        let split = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
        digester.update(&data[..split]);
        // A saved state resumes where it stopped, here or in another process.
        let mut digester = crate::Digester::resume(&digester.state()).expect("a saved state resumes");
        digester.update(&data[split..]);
        assert_eq!(digester.finish(), whole);
        assert_eq!(whole.as_str().parse::<Digest>().expect("computed digest parses"), whole);
    }
}

/// Manifest parsing: an accepted manifest keeps its exact bytes, its digest is the hash of
/// those bytes, and its parsed form survives a write and re-read unchanged.
pub fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::from_bytes(data.to_vec(), None) else {
        return;
    };
    assert_eq!(&m.bytes()[..], data);
    assert_eq!(m.digest(), &Digest::sha256(data));
    m.digest().verify(data).expect("digest verifies the bytes");
    let again = Manifest::from_bytes(data.to_vec(), Some(m.media_type()))
        .expect("accepted without a content type, so accepted with its own");
    assert_eq!(again.body(), m.body());
    let rewritten = match m.body() {
        crate::ManifestBody::Image(image) => serde_json::to_vec(image),
        crate::ManifestBody::Index(index) => serde_json::to_vec(index),
    }
    .expect("a parsed manifest serialises");
    let reread =
        Manifest::from_bytes(rewritten, Some(m.media_type())).expect("a re-serialised manifest parses");
    assert_eq!(reread.body(), m.body(), "parsed form changed through a write and re-read");
}
