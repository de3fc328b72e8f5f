//! OCI image layout directories: export an image from a registry into one, push one to a
//! registry. Layout: `oci-layout`, `index.json`, `blobs/<alg>/<hex>` (image-spec
//! `image-layout.md`).

use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use wharf_types::{Descriptor, Digest, ImageIndex, Manifest, ManifestBody, Reference};

use crate::client::Client;
use crate::error::{Error, Result};

/// The annotation naming an image in `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm().as_str()).join(digest.encoded())
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::File { path: path.to_owned(), source }
}

impl Client {
    /// Exports the image `reference` names (an index with its children, or a manifest) into
    /// the OCI layout at `dir` (created when needed), named in `index.json` by the
    /// reference's tag. Every blob is verified as it is written. Returns the top digest.
    pub async fn export_layout(&self, reference: &Reference, dir: &Path) -> Result<Digest> {
        let tag = reference.tag().map(|t| t.as_str().to_owned());
        self.export_layout_named(reference, dir, tag.as_deref()).await
    }

    /// [`export_layout`](Self::export_layout) naming the image `name` in `index.json` (an
    /// image already named so is replaced), or leaving it unnamed.
    pub async fn export_layout_named(
        &self,
        reference: &Reference,
        dir: &Path,
        name: Option<&str>,
    ) -> Result<Digest> {
        tokio::fs::create_dir_all(dir).await.map_err(|e| io(dir, e))?;
        let manifest = self.pull_manifest(reference).await?;
        self.export_tree(reference, dir, &manifest).await?;
        let layout = dir.join("oci-layout");
        tokio::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).await.map_err(|e| io(&layout, e))?;
        let index_path = dir.join("index.json");
        let mut index = match tokio::fs::read(&index_path).await {
            Ok(bytes) => serde_json::from_slice::<ImageIndex>(&bytes)
                .map_err(|e| Error::InvalidResponse(format!("{}: {e}", index_path.display())))?,
            Err(_) => ImageIndex::new(Vec::new()),
        };
        let mut descriptor = manifest.descriptor();
        descriptor.artifact_type = None;
        descriptor.annotations = None;
        if let Some(name) = name {
            index.manifests.retain(|d| d.annotation(REF_NAME) != Some(name));
            descriptor = descriptor.with_annotation(REF_NAME, name);
        }
        index.manifests.push(descriptor);
        let json = serde_json::to_vec(&index).expect("an index serialises");
        tokio::fs::write(&index_path, json).await.map_err(|e| io(&index_path, e))?;
        Ok(manifest.digest().clone())
    }

    fn export_tree<'a>(
        &'a self,
        reference: &'a Reference,
        dir: &'a Path,
        manifest: &'a Manifest,
    ) -> futures_util::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            write_blob(dir, manifest.digest(), manifest.bytes()).await?;
            if let ManifestBody::Index(index) = manifest.body() {
                for child in &index.manifests {
                    let child_manifest =
                        self.pull_manifest(&reference.clone().with_digest(child.digest.clone())).await?;
                    self.export_tree(reference, dir, &child_manifest).await?;
                }
                return Ok(());
            }
            // Layers are pulled in parallel, each verified as it is written.
            let blobs: Vec<Descriptor> =
                manifest.references().filter(|d| !d.is_non_distributable()).cloned().collect();
            let pulls =
                blobs.into_iter().map(|d| async move { self.export_blob(reference, dir, &d.digest).await });
            futures_util::stream::iter(pulls)
                .buffer_unordered(self.concurrency())
                .try_collect::<Vec<()>>()
                .await?;
            Ok(())
        })
    }

    async fn export_blob(&self, reference: &Reference, dir: &Path, digest: &Digest) -> Result<()> {
        let path = blob_path(dir, digest);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let parent = path.parent().expect("blob paths have a parent");
        tokio::fs::create_dir_all(parent).await.map_err(|e| io(parent, e))?;
        let partial = path.with_extension("partial");
        let mut file = tokio::fs::File::create(&partial).await.map_err(|e| io(&partial, e))?;
        self.pull_blob(reference, digest, &mut file).await?;
        tokio::fs::rename(&partial, &path).await.map_err(|e| io(&path, e))
    }

    /// Pushes the image named `name` in the OCI layout at `dir` (or its only image, when
    /// `name` is `None`) to `reference`, with every child and blob. Returns the top digest.
    pub async fn push_layout(&self, dir: &Path, name: Option<&str>, reference: &Reference) -> Result<Digest> {
        let index_path = dir.join("index.json");
        let bytes = tokio::fs::read(&index_path).await.map_err(|e| io(&index_path, e))?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidResponse(format!("{}: {e}", index_path.display())))?;
        let chosen = match name {
            Some(name) => index.manifests.iter().find(|d| d.annotation(REF_NAME) == Some(name)),
            None if index.manifests.len() == 1 => index.manifests.first(),
            None => None,
        }
        .ok_or_else(|| {
            Error::InvalidResponse(format!(
                "{}: no image {}",
                dir.display(),
                name.unwrap_or("(several, name one)")
            ))
        })?;
        let manifest = read_manifest(dir, chosen).await?;
        self.push_tree(dir, reference, &manifest).await?;
        self.push_manifest(reference, &manifest).await
    }

    fn push_tree<'a>(
        &'a self,
        dir: &'a Path,
        reference: &'a Reference,
        manifest: &'a Manifest,
    ) -> futures_util::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let ManifestBody::Index(index) = manifest.body() {
                for child in &index.manifests {
                    let child_manifest = read_manifest(dir, child).await?;
                    self.push_tree(dir, reference, &child_manifest).await?;
                    self.push_manifest(&reference.clone().with_digest(child.digest.clone()), &child_manifest)
                        .await?;
                }
                return Ok(());
            }
            for d in manifest.references().filter(|d| !d.is_non_distributable()) {
                if self.blob_exists(reference, &d.digest).await? {
                    continue;
                }
                let path = blob_path(dir, &d.digest);
                let file = tokio::fs::File::open(&path).await.map_err(|e| io(&path, e))?;
                let body =
                    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
                self.push_blob_stream(reference, &d.digest, body).await?;
            }
            Ok(())
        })
    }
}

async fn write_blob(dir: &Path, digest: &Digest, bytes: &[u8]) -> Result<()> {
    let path = blob_path(dir, digest);
    let parent = path.parent().expect("blob paths have a parent");
    tokio::fs::create_dir_all(parent).await.map_err(|e| io(parent, e))?;
    tokio::fs::write(&path, bytes).await.map_err(|e| io(&path, e))
}

async fn read_manifest(dir: &Path, descriptor: &Descriptor) -> Result<Manifest> {
    let path = blob_path(dir, &descriptor.digest);
    let bytes = tokio::fs::read(&path).await.map_err(|e| io(&path, e))?;
    Ok(Manifest::from_bytes_verified(bytes, Some(&descriptor.media_type), &descriptor.digest)?)
}
