//! Conversions to and from `oci-spec`'s image types (feature `oci-spec`, on by default), for
//! programs that already speak them. Every conversion goes through the JSON the image-spec
//! defines, so nothing `oci-spec` models is lost and nothing Wharf validates is skipped.
//!
//! ```
//! use wharf_types::{Digest, Manifest, MediaType};
//!
//! let config = oci_spec::image::DescriptorBuilder::default()
//!     .media_type(oci_spec::image::MediaType::EmptyJSON)
//!     .digest(oci_spec::image::Digest::try_from(Digest::EMPTY_JSON.as_str())?)
//!     .size(2u64)
//!     .build()?;
//! let image = oci_spec::image::ImageManifestBuilder::default()
//!     .schema_version(2u32)
//!     .media_type(oci_spec::image::MediaType::ImageManifest)
//!     .config(config)
//!     .layers(vec![])
//!     .build()?;
//! let manifest = Manifest::try_from(&image)?;
//! assert_eq!(manifest.media_type(), &MediaType::OCI_MANIFEST);
//! let back = oci_spec::image::ImageManifest::try_from(&manifest)?;
//! assert_eq!(back, image);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::media_type::MediaType;

use oci_spec::image as oci;

impl From<&MediaType> for oci::MediaType {
    fn from(media_type: &MediaType) -> Self {
        oci::MediaType::from(media_type.as_str())
    }
}

impl TryFrom<&oci::MediaType> for MediaType {
    type Error = Error;

    fn try_from(media_type: &oci::MediaType) -> Result<Self> {
        media_type.to_string().parse()
    }
}

impl TryFrom<&Digest> for oci::Digest {
    type Error = Error;

    fn try_from(digest: &Digest) -> Result<Self> {
        oci::Digest::try_from(digest.as_str())
            .map_err(|_| Error::invalid_digest(digest.as_str(), "not a digest oci-spec accepts"))
    }
}

impl TryFrom<&oci::Digest> for Digest {
    type Error = Error;

    fn try_from(digest: &oci::Digest) -> Result<Self> {
        digest.to_string().parse()
    }
}

impl TryFrom<&Descriptor> for oci::Descriptor {
    type Error = Error;

    fn try_from(descriptor: &Descriptor) -> Result<Self> {
        via_json(descriptor)
    }
}

impl TryFrom<&oci::Descriptor> for Descriptor {
    type Error = Error;

    fn try_from(descriptor: &oci::Descriptor) -> Result<Self> {
        via_json(descriptor)
    }
}

impl TryFrom<&Manifest> for oci::ImageManifest {
    type Error = Error;

    /// The image manifest (an index is refused).
    fn try_from(manifest: &Manifest) -> Result<Self> {
        if manifest.as_image().is_none() {
            return Err(Error::invalid_manifest("not an image manifest"));
        }
        serde_json::from_slice(manifest.bytes()).map_err(|e| Error::invalid_manifest(e.to_string()))
    }
}

impl TryFrom<&Manifest> for oci::ImageIndex {
    type Error = Error;

    /// The image index (an image manifest is refused).
    fn try_from(manifest: &Manifest) -> Result<Self> {
        if manifest.as_index().is_none() {
            return Err(Error::invalid_manifest("not an image index"));
        }
        serde_json::from_slice(manifest.bytes()).map_err(|e| Error::invalid_manifest(e.to_string()))
    }
}

impl TryFrom<&oci::ImageManifest> for Manifest {
    type Error = Error;

    /// The manifest serialized as `oci-spec` writes it, with its digest.
    fn try_from(image: &oci::ImageManifest) -> Result<Self> {
        let bytes = serde_json::to_vec(image).map_err(|e| Error::invalid_manifest(e.to_string()))?;
        Manifest::from_bytes(bytes, None)
    }
}

impl TryFrom<&oci::ImageIndex> for Manifest {
    type Error = Error;

    /// The index serialized as `oci-spec` writes it, with its digest.
    fn try_from(index: &oci::ImageIndex) -> Result<Self> {
        let bytes = serde_json::to_vec(index).map_err(|e| Error::invalid_manifest(e.to_string()))?;
        Manifest::from_bytes(bytes, None)
    }
}

fn via_json<T: serde::Serialize, U: serde::de::DeserializeOwned>(value: &T) -> Result<U> {
    let json = serde_json::to_value(value).map_err(|e| Error::invalid_manifest(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| Error::invalid_manifest(format!("descriptor: {e}")))
}

#[cfg(test)]
mod tests {
    use super::oci;
    use crate::{Descriptor, Digest, ImageIndex, ImageManifest, Manifest, MediaType};

    #[test]
    fn each_kind_converts_only_to_its_own_type() {
        let config = Descriptor::new(MediaType::OCI_EMPTY, Digest::EMPTY_JSON, 2);
        let image = Manifest::from_image(&ImageManifest::new(config.clone(), vec![])).expect("image");
        let index = Manifest::from_index(&ImageIndex::new(vec![image.descriptor()])).expect("index");
        assert!(oci::ImageManifest::try_from(&image).is_ok());
        assert!(oci::ImageManifest::try_from(&index).is_err());
        let oci_index = oci::ImageIndex::try_from(&index).expect("an index");
        assert!(oci::ImageIndex::try_from(&image).is_err());
        assert_eq!(
            Manifest::try_from(&oci_index).expect("back").as_index().expect("index").manifests.len(),
            1
        );
        let descriptor = oci::Descriptor::try_from(&config).expect("descriptor");
        assert_eq!(Descriptor::try_from(&descriptor).expect("back"), config);
    }
}
