//! Referrers (with the fallback tag schema), the catalog, and platform selection.

use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use wharf_types::{Descriptor, Digest, ImageIndex, Manifest, MediaType, Platform, Reference, Registry, Tag};

use crate::client::{Client, expect};
use crate::error::{Error, Result};

impl Client {
    /// The referrers of `subject` (optionally only of `artifact_type`): the referrers API, or,
    /// where a registry answers it with 404, the fallback tag `<alg>-<hex>` index.
    pub async fn referrers(
        &self,
        reference: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let scope = format!("repository:{}:pull", reference.repository());
        let mut url =
            format!("{}/v2/{}/referrers/{subject}", self.base_url(reference), reference.repository());
        if let Some(at) = artifact_type {
            url.push_str("?artifactType=");
            url.push_str(at);
        }
        let response = self
            .send(reference, &scope, || self.http().get(&url).header(ACCEPT, MediaType::OCI_INDEX.as_str()))
            .await?;
        let (descriptors, filtered) = if response.status() == StatusCode::NOT_FOUND {
            (self.fallback_referrers(reference, subject).await?.map_or_else(Vec::new, |i| i.manifests), false)
        } else {
            let response = expect(response, &[StatusCode::OK]).await?;
            let filtered = response.headers().contains_key("OCI-Filters-Applied");
            let index: ImageIndex = response.json().await?;
            (index.manifests, filtered)
        };
        Ok(match artifact_type {
            Some(at) if !filtered => descriptors
                .into_iter()
                .filter(|d| d.artifact_type.as_ref().is_some_and(|t| t.as_str() == at))
                .collect(),
            _ => descriptors,
        })
    }

    /// The fallback-tag index of `subject`'s referrers, if the tag exists.
    async fn fallback_referrers(
        &self,
        reference: &Reference,
        subject: &Digest,
    ) -> Result<Option<ImageIndex>> {
        let tagged = reference.clone().with_tag(Tag::referrers_fallback(subject));
        match self.pull_manifest(&tagged).await {
            Ok(m) => Ok(m.as_index().cloned()),
            Err(Error::Registry { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pushes a manifest that has a `subject`; when the registry does not answer
    /// `OCI-Subject` (no referrers API), also adds it to the subject's fallback tag index.
    pub async fn push_referrer(&self, reference: &Reference, manifest: &Manifest) -> Result<Digest> {
        let subject = manifest
            .subject()
            .ok_or_else(|| Error::InvalidResponse("the manifest has no subject".into()))?
            .digest
            .clone();
        let (digest, headers) = self.push_manifest_with_headers(reference, manifest).await?;
        if headers.contains_key("OCI-Subject") {
            return Ok(digest);
        }
        let mut index = self
            .fallback_referrers(reference, &subject)
            .await?
            .unwrap_or_else(|| ImageIndex::new(Vec::new()));
        let descriptor = manifest.descriptor();
        if !index.manifests.iter().any(|d| d.digest == descriptor.digest) {
            index.manifests.push(descriptor);
        }
        let index = Manifest::from_index(&index)?;
        self.push_manifest(&reference.clone().with_tag(Tag::referrers_fallback(&subject)), &index).await?;
        Ok(digest)
    }

    /// Every repository of the registry (`/v2/_catalog`, following `Link`).
    pub async fn catalog(&self, registry: &Registry) -> Result<Vec<String>> {
        futures_util::TryStreamExt::try_collect(self.catalog_stream(registry)).await
    }

    /// The registry's repositories as a stream, one page fetched at a time.
    pub fn catalog_stream<'a>(
        &'a self,
        registry: &'a Registry,
    ) -> futures_util::stream::BoxStream<'a, Result<String>> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let url = format!("{}/v2/_catalog", self.base_url(registry));
        self.paginate(registry, "registry:catalog:*".to_owned(), url, |page: Catalog| page.repositories)
    }

    /// The manifest for `platform` when `reference` names an index (the first child whose
    /// `os`/`architecture` match, ignoring case; attestations skipped), or the manifest
    /// itself.
    pub async fn pull_for_platform(&self, reference: &Reference, platform: &Platform) -> Result<Manifest> {
        let manifest = self.pull_manifest(reference).await?;
        let Some(index) = manifest.as_index() else { return Ok(manifest) };
        let child = index
            .manifests
            .iter()
            .find(|d| {
                d.platform.as_ref().is_some_and(|p| {
                    p.is(&platform.os, &platform.architecture)
                        && platform.variant.as_ref().is_none_or(|v| p.variant.as_ref() == Some(v))
                })
            })
            .ok_or_else(|| Error::InvalidResponse(format!("{reference} has no {platform} manifest")))?;
        self.pull_manifest(&reference.clone().with_digest(child.digest.clone())).await
    }

    /// The host's platform, in OCI spelling (`linux/amd64`, `linux/arm64`, …).
    pub fn host_platform() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch)
    }
}
