//! Wasm push and pull (feature `wasm`): the wasm-to-oci and CNCF layouts out, every layout
//! `wharf-wasm` recognizes in.

use bytes::Bytes;
use wharf_types::{Manifest, ManifestBody, Reference};
use wharf_wasm::{Artifact, ArtifactBuilder, Classification, WasmLayout, classify};

use crate::client::Client;
use crate::error::{Error, Result};

/// What [`Client::pull_wasm`] returns.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PulledWasm {
    /// The module (or component) bytes, verified against their layer's digest.
    pub module: Bytes,
    /// The classification of the manifest the module came from.
    pub classification: Classification,
    /// That manifest (the Wasm child, when the reference named an index).
    pub manifest: Manifest,
}

/// The largest config or tar layer read into memory to find a module.
const MAX_IN_MEMORY: u64 = 256 * 1024 * 1024;

impl Client {
    /// Pushes `module` under `reference` in `layout`, with `title` as the layer's file name
    /// (the wasm-to-oci CLI's push). Returns the manifest pushed.
    ///
    /// [`WasmLayout::for_binary`] picks the layout people expect: wasm-to-oci for a core module,
    /// the CNCF artifact for a component. For annotations or a creation time, build the
    /// artifact with [`ArtifactBuilder`] and push it with [`push_artifact`](Self::push_artifact).
    pub async fn push_wasm(
        &self,
        reference: &Reference,
        module: impl Into<Bytes>,
        layout: WasmLayout,
        title: &str,
    ) -> Result<Manifest> {
        let artifact = ArtifactBuilder::new(module)
            .with_title(title)
            .build(layout)
            .map_err(|source| Error::Wasm { context: "building the artifact".into(), source })?;
        self.push_artifact(reference, &artifact).await?;
        Ok(artifact.manifest)
    }

    /// Pushes a built artifact: its blobs (skipped when the registry has them), then its
    /// manifest under `reference`. Returns the manifest's digest.
    pub async fn push_artifact(
        &self,
        reference: &Reference,
        artifact: &Artifact,
    ) -> Result<wharf_types::Digest> {
        for blob in artifact.blobs() {
            self.push_blob(reference, blob.data.clone()).await?;
        }
        self.push_manifest(reference, &artifact.manifest).await
    }

    /// Pulls the Wasm module `reference` names, in any layout `wharf-wasm` recognizes: raw
    /// layers, a file in a tar or tar+gzip layer (the entrypoint, `plugin.wasm`,
    /// `extension.wasm`), and indexes with a Wasm platform child.
    pub async fn pull_wasm(&self, reference: &Reference) -> Result<PulledWasm> {
        self.pull_wasm_from(reference, None).await
    }

    /// [`pull_wasm`](Self::pull_wasm) of the child for `platform` when `reference` names an
    /// index (`wasi/wasm`, …; matched as [`pull_for_platform`](Self::pull_for_platform)
    /// matches), instead of its first Wasm child.
    pub async fn pull_wasm_for_platform(
        &self,
        reference: &Reference,
        platform: &wharf_types::Platform,
    ) -> Result<PulledWasm> {
        self.pull_wasm_from(reference, Some(platform)).await
    }

    async fn pull_wasm_from(
        &self,
        reference: &Reference,
        platform: Option<&wharf_types::Platform>,
    ) -> Result<PulledWasm> {
        let mut manifest = match platform {
            Some(platform) => self.pull_for_platform(reference, platform).await?,
            None => self.pull_manifest(reference).await?,
        };
        let mut classification = self.classify_remote(reference, &manifest).await?;
        if let Some(child) = classification.wasm_children.first() {
            let child_ref = reference.clone().with_digest(child.descriptor.digest.clone());
            manifest = self.pull_manifest(&child_ref).await?;
            classification = self.classify_remote(reference, &manifest).await?;
        }
        // The layers the module may be in (for a tar layout, every layer of the image: the
        // module is the file the entrypoint names once they are all applied), read as
        // `wharf-wasm` reads an image, within its default budget.
        let mut blobs = std::collections::HashMap::new();
        for layer in &classification.wasm_layers {
            let digest = &layer.descriptor.digest;
            if !blobs.contains_key(digest) {
                blobs.insert(
                    digest.clone(),
                    self.pull_blob_bytes(reference, digest, layer.descriptor.size).await?,
                );
            }
        }
        let mut meter = wharf_wasm::budget::Meter::new(&wharf_wasm::budget::Budget::default());
        let found =
            wharf_wasm::image::find_modules(&classification.wasm_layers.clone(), &mut blobs, &mut meter)
                .map_err(|e| Error::Wasm {
                    context: format!("reading the layers of {reference}"),
                    source: wharf_wasm::Error::Unavailable(e.to_string()),
                })?;
        let probing = !classification.is_wasm();
        let mut last_error = None;
        for found in found {
            match found.bytes {
                Ok(module) => {
                    if probing {
                        // Layouts only the layer content reveals (F7, F8).
                        classification.confirm_tar_entry(found.layer.index, &found.path);
                    }
                    return Ok(PulledWasm { module: module.into(), classification, manifest });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(match last_error {
            Some(source) if !probing => {
                Error::Wasm { context: format!("no module could be read out of {reference}"), source }
            }
            _ => Error::not_wasm(reference, classification),
        })
    }

    async fn classify_remote(&self, reference: &Reference, manifest: &Manifest) -> Result<Classification> {
        let config = match manifest.body() {
            ManifestBody::Image(m) if m.config.size <= MAX_IN_MEMORY => {
                Some(self.pull_blob_bytes(reference, &m.config.digest, m.config.size).await?)
            }
            _ => None,
        };
        Ok(classify(manifest, config.as_deref()))
    }

    async fn pull_blob_bytes(
        &self,
        reference: &Reference,
        digest: &wharf_types::Digest,
        size: u64,
    ) -> Result<Bytes> {
        if size > MAX_IN_MEMORY {
            return Err(Error::TooLarge { digest: digest.clone(), size, limit: MAX_IN_MEMORY });
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.pull_blob(reference, digest, &mut out).await?;
        Ok(out.into())
    }
}
