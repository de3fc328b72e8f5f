//! Media types, compared the way registries and runtimes must compare them.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{Error, Input, Result};

/// A media type such as `application/vnd.oci.image.manifest.v1+json`.
///
/// Two media types are equal when their *essence* (`type/subtype`, without `;parameters` and
/// surrounding spaces) is equal ignoring ASCII case, as RFC 6838 and the Wasm runtimes compare
/// them; [`as_str`](Self::as_str) keeps the text exactly as given, so a value read from a
/// manifest is written back unchanged.
///
/// # Example
/// ```
/// use wharf_types::MediaType;
///
/// let mt: MediaType = "Application/VND.OCI.Image.Manifest.v1+JSON; charset=utf-8".parse()?;
/// assert_eq!(mt, MediaType::OCI_MANIFEST);
/// assert_eq!(mt.essence(), "Application/VND.OCI.Image.Manifest.v1+JSON");
/// assert!(MediaType::DOCKER_MANIFEST_LIST.is_index());
/// assert!("no-slash".parse::<MediaType>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MediaType(Cow<'static, str>);

macro_rules! media_types {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        impl MediaType {
            $($(#[$doc])* pub const $name: Self = Self(Cow::Borrowed($value));)*

            /// Every media type this crate names, for look-ups and tests.
            pub const KNOWN: &'static [Self] = &[$(Self::$name),*];
        }
    };
}

media_types! {
    /// OCI image manifest.
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    OCI_INDEX = "application/vnd.oci.image.index.v1+json";
    /// OCI image configuration.
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
    /// OCI empty descriptor content, the two bytes `{}`.
    OCI_EMPTY = "application/vnd.oci.empty.v1+json";
    /// OCI uncompressed tar layer.
    OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip-compressed tar layer.
    OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI zstd-compressed tar layer.
    OCI_LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable tar layer (deprecated by the image-spec).
    OCI_LAYER_NONDISTRIBUTABLE_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    /// OCI non-distributable gzip tar layer (deprecated by the image-spec).
    OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI non-distributable zstd tar layer (deprecated by the image-spec).
    OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    /// Docker image manifest, schema 2.
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list, schema 2.
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest, schema 1 (unsigned); not supported, named to refuse it clearly.
    DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker image manifest, schema 1 (signed); not supported, named to refuse it clearly.
    DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// Docker container image configuration.
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip-compressed tar layer.
    DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker foreign (non-distributable) layer.
    DOCKER_LAYER_FOREIGN_TAR_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Plain JSON.
    JSON = "application/json";
    /// Opaque bytes.
    OCTET_STREAM = "application/octet-stream";

    /// wasm-to-oci (F1) and Kubewarden (F12) config; Harbor 2.6's Wasm type.
    WASM_CONFIG_V1 = "application/vnd.wasm.config.v1+json";
    /// wasm-to-oci (F1), Spin (F9) and F11 raw Wasm layer.
    WASM_CONTENT_LAYER_V1 = "application/vnd.wasm.content.layer.v1+wasm";
    /// CNCF TAG-Runtime Wasm OCI artifact config (F5).
    WASM_CONFIG_V0 = "application/vnd.wasm.config.v0+json";
    /// The IANA `.wasm` type; the CNCF Wasm OCI artifact layer (F5).
    WASM = "application/wasm";
    /// runwasi's Wasm layer in an OCI image (F4).
    RUNWASI_COMPONENT_LAYER = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
    /// solo.io `wasme` "oci" variant config (F6).
    SOLO_WASM_CONFIG = "application/vnd.module.wasm.config.v1+json";
    /// solo.io `wasme` Wasm layer (F6); also wasmCloud actors (F10).
    SOLO_WASM_CONTENT_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm";
    /// Spin locked application, as config (< 2.0) or as a layer (F9).
    SPIN_APPLICATION = "application/vnd.fermyon.spin.application.v1+config";
    /// Spin static-asset data layer (F9).
    WASM_CONTENT_DATA_V1 = "application/vnd.wasm.content.layer.v1+data";
    /// Spin bundle of static assets (F9).
    WASM_CONTENT_BUNDLE_V1 = "application/vnd.wasm.content.bundle.v1.tar+gzip";
    /// wasmCloud actor archive config (F10).
    WASMCLOUD_ACTOR_CONFIG = "application/vnd.wasmcloud.actor.archive.config";
    /// wasmCloud capability provider archive config (F10; not Wasm).
    WASMCLOUD_PROVIDER_CONFIG = "application/vnd.wasmcloud.provider.archive.config";
    /// wasmCloud capability provider archive layer (F10; not Wasm).
    WASMCLOUD_PROVIDER_LAYER = "application/vnd.wasmcloud.provider.archive.layer.v1+par";
    /// Experimental `artifactType` for a Wasm component (F11, rust-oci-client).
    WASM_COMPONENT_ARTIFACT_V1 = "application/vnd.wasm.component.v1+wasm";
    /// Experimental runwasi `artifactType` for a component (F11).
    BYTECODEALLIANCE_COMPONENT_ARTIFACT = "application/vnd.bytecodealliance.component.v1+wasm";
    /// Experimental runwasi `artifactType` for a core module (F11).
    BYTECODEALLIANCE_MODULE_ARTIFACT = "application/vnd.bytecodealliance.module.v1+wasm";
}

impl MediaType {
    /// A media type from a string known at compile time to be valid.
    ///
    /// Use [`str::parse`] for anything else.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Cow::Borrowed(s))
    }

    /// The text exactly as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `type/subtype`, without parameters and surrounding spaces, in its original case.
    pub fn essence(&self) -> &str {
        self.0.split(';').next().unwrap_or_default().trim()
    }

    /// The `;`-separated parameters, trimmed, as written (`charset=utf-8`).
    pub fn parameters(&self) -> impl Iterator<Item = &str> {
        self.0.split(';').skip(1).map(str::trim).filter(|p| !p.is_empty())
    }

    /// Whether this is an OCI image index or a Docker manifest list.
    pub fn is_index(&self) -> bool {
        *self == Self::OCI_INDEX || *self == Self::DOCKER_MANIFEST_LIST
    }

    /// Whether this is an OCI image manifest or a Docker schema 2 manifest.
    pub fn is_image_manifest(&self) -> bool {
        *self == Self::OCI_MANIFEST || *self == Self::DOCKER_MANIFEST
    }

    /// Whether a registry stores this type as a manifest (image manifest or index).
    pub fn is_manifest(&self) -> bool {
        self.is_image_manifest() || self.is_index()
    }

    /// Whether this is a Docker type (`application/vnd.docker.…`).
    pub fn is_docker(&self) -> bool {
        const PREFIX: &str = "application/vnd.docker.";
        self.essence().get(..PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
    }

    /// The same media type as this crate's constant when it is spelled exactly like one of
    /// [`MediaType::KNOWN`], so that it costs no allocation; otherwise unchanged (the text
    /// is always kept as given).
    #[must_use]
    pub fn canonical(self) -> Self {
        match Self::KNOWN.iter().find(|k| k.as_str() == self.as_str()) {
            Some(known) => known.clone(),
            None => self,
        }
    }

    fn validate(s: &str) -> std::result::Result<(), &'static str> {
        // RFC 6838 §4.2: restricted-name = restricted-name-first *126restricted-name-chars
        let restricted_name = |name: &str| {
            let b = name.as_bytes();
            !b.is_empty()
                && b.len() <= 127
                && b[0].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
        };
        let essence = s.split(';').next().unwrap_or_default().trim();
        let Some((ty, subtype)) = essence.split_once('/') else {
            return Err("expected `type/subtype`");
        };
        if !restricted_name(ty) || !restricted_name(subtype) {
            return Err(
                "type and subtype are 1-127 characters of letters, digits and `!#$&-^_.+`, starting with a letter or digit",
            );
        }
        if s.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
            return Err("control and non-ASCII characters are not allowed");
        }
        Ok(())
    }
}

impl PartialEq for MediaType {
    fn eq(&self, other: &Self) -> bool {
        self.essence().eq_ignore_ascii_case(other.essence())
    }
}

impl Eq for MediaType {}

impl Hash for MediaType {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.essence().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.essence().eq_ignore_ascii_case(other.split(';').next().unwrap_or_default().trim())
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl FromStr for MediaType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::validate(s).map_err(|reason| Error::InvalidMediaType { input: Input::new(s), reason })?;
        Ok(Self(Cow::Owned(s.to_owned())).canonical())
    }
}

impl TryFrom<&str> for MediaType {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self> {
        s.parse()
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaType({:?})", &*self.0)
    }
}

impl AsRef<str> for MediaType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for MediaType {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(u.choose(Self::KNOWN)?.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn compares_essence_case_insensitively() {
        let a: MediaType = "APPLICATION/WASM".parse().expect("valid");
        let b: MediaType = " application/wasm ; foo=bar".parse().expect("valid");
        assert_eq!(a, MediaType::WASM);
        assert_eq!(b, MediaType::WASM);
        assert_eq!(b.parameters().collect::<Vec<_>>(), ["foo=bar"]);
        assert_eq!(b.as_str(), " application/wasm ; foo=bar");
        assert_eq!(a.as_str(), "APPLICATION/WASM", "the text is kept as given");
        let set: HashSet<MediaType> = [a, b, MediaType::WASM].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_ne!(MediaType::OCI_MANIFEST, MediaType::OCI_INDEX);
        assert!(MediaType::WASM == "application/WASM;x=y");
    }

    #[test]
    fn known_types_are_valid_and_distinct() {
        let mut seen = HashSet::new();
        for mt in MediaType::KNOWN {
            mt.as_str().parse::<MediaType>().unwrap_or_else(|e| panic!("{mt}: {e}"));
            assert!(seen.insert(mt.clone()), "{mt} twice");
        }
    }

    #[test]
    fn classification_helpers() {
        assert!(MediaType::OCI_INDEX.is_index());
        assert!(MediaType::DOCKER_MANIFEST.is_image_manifest());
        assert!(MediaType::DOCKER_MANIFEST.is_docker());
        assert!(!MediaType::OCI_MANIFEST.is_docker());
        assert!(!MediaType::WASM_CONFIG_V1.is_manifest());
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["", "a", "/b", "a/", "a/b/c", "a b/c", "a/b\n", "ä/b", "-a/b", "a/-b"] {
            assert!(bad.parse::<MediaType>().is_err(), "{bad:?} accepted");
        }
    }
}
