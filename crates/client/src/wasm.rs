//! Wasm push and pull (feature `wasm`): the wasm-to-oci and CNCF layouts out, every layout
//! `wharf-wasm` recognises in.

use bytes::Bytes;
use wharf_types::{Manifest, ManifestBody, Reference};
use wharf_wasm::{ArtifactBuilder, Classification, Location, classify, extract};

use crate::client::Client;
use crate::error::{Error, Result};

/// The layout [`Client::push_wasm`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// wasm-to-oci (config `application/vnd.wasm.config.v1+json`, one raw layer): what Harbor
    /// 2.6 shows as `WASM`.
    WasmToOci,
    /// The CNCF TAG-Runtime Wasm OCI artifact (config `application/vnd.wasm.config.v0+json`,
    /// one `application/wasm` layer): what runwasi, wkg and containerd read.
    CncfV0,
}

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
    /// Pushes `module` under `reference` in `layout`, with `title` as the layer's file name.
    /// Returns the manifest pushed.
    pub async fn push_wasm(
        &self,
        reference: &Reference,
        module: Bytes,
        layout: Layout,
        title: &str,
    ) -> Result<Manifest> {
        let builder = ArtifactBuilder::new(module).with_title(title);
        let artifact = match layout {
            Layout::WasmToOci => builder.wasm_to_oci(),
            Layout::CncfV0 => builder.cncf(),
        }
        .map_err(|e| Error::Wasm(e.to_string()))?;
        for blob in artifact.blobs() {
            self.push_blob(reference, blob.data.clone()).await?;
        }
        self.push_manifest(reference, &artifact.manifest).await?;
        Ok(artifact.manifest)
    }

    /// Pulls the Wasm module `reference` names, in any layout `wharf-wasm` recognises: raw
    /// layers, a file in a tar or tar+gzip layer (the entrypoint, `plugin.wasm`,
    /// `extension.wasm`), and indexes with a Wasm platform child.
    pub async fn pull_wasm(&self, reference: &Reference) -> Result<PulledWasm> {
        let mut manifest = self.pull_manifest(reference).await?;
        let mut classification = self.classify_remote(reference, &manifest).await?;
        if let Some(child) = classification.wasm_children.first() {
            let child_ref = reference.clone().with_digest(child.descriptor.digest.clone());
            manifest = self.pull_manifest(&child_ref).await?;
            classification = self.classify_remote(reference, &manifest).await?;
        }
        // Layouts only the layer content reveals (F7, F8).
        if !classification.is_wasm() {
            for probe in classification.layer_probes().to_vec() {
                let blob =
                    self.pull_blob_bytes(reference, &probe.descriptor.digest, probe.descriptor.size).await?;
                if let Ok(found) = extract::read_wasm(&blob[..], &probe.location, MAX_IN_MEMORY) {
                    classification.confirm_tar_entry(probe.index, &found.path);
                    return Ok(PulledWasm { module: found.bytes.into(), classification, manifest });
                }
            }
            return Err(Error::Wasm(format!(
                "{reference} is not WebAssembly ({})",
                classification.kind.name()
            )));
        }
        let mut last_error = None;
        for layer in &classification.wasm_layers {
            let blob =
                self.pull_blob_bytes(reference, &layer.descriptor.digest, layer.descriptor.size).await?;
            let module = match &layer.location {
                Location::Raw => Ok(blob),
                location => {
                    extract::read_wasm(&blob[..], location, MAX_IN_MEMORY).map(|f| Bytes::from(f.bytes))
                }
            };
            match module {
                Ok(module) => return Ok(PulledWasm { module, classification, manifest }),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Err(Error::Wasm(format!(
            "no module found in {reference}: {}",
            last_error.unwrap_or_else(|| "no layer holds Wasm".into())
        )))
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
            return Err(Error::Wasm(format!(
                "blob {digest} of {size} bytes is too large to read into memory"
            )));
        }
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.pull_blob(reference, digest, &mut out).await?;
        Ok(out.into())
    }
}
