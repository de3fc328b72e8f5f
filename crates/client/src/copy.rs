//! Copying images (manifests, indexes, blobs) between repositories and registries.

use futures_util::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use wharf_types::{Descriptor, Digest, Manifest, ManifestBody, Reference};

use crate::client::Client;
use crate::error::{Error, Result};

impl Client {
    /// Streams a blob from `src` into `dst` without holding it in memory: the registry at
    /// `dst` verifies the digest when the upload completes. Skipped when `dst` has it; a
    /// mount when both are on one registry.
    pub async fn copy_blob(&self, src: &Reference, dst: &Reference, digest: &Digest) -> Result<()> {
        if self.blob_exists(dst, digest).await? {
            return Ok(());
        }
        if src.api_host() == dst.api_host() && self.mount_blob(dst, digest, src.repository()).await? {
            return Ok(());
        }
        let source = self.get_blob_response(src, digest, 0).await?;
        let stream = source.bytes_stream().map_err(std::io::Error::other);
        self.push_blob_stream(dst, digest, reqwest::Body::wrap_stream(stream)).await
    }

    /// Pushes a blob from a streamed body: `POST` for a session, then one `PUT ?digest=`
    /// carrying the whole body.
    pub async fn push_blob_stream(
        &self,
        reference: &Reference,
        digest: &Digest,
        body: reqwest::Body,
    ) -> Result<()> {
        let scope = format!("repository:{}:pull,push", reference.repository());
        let url = format!("{}/v2/{}/blobs/uploads/", self.base_url(reference), reference.repository());
        let response = self.send(reference, &scope, || self.http().post(&url)).await?;
        let response = crate::client::expect(response, &[StatusCode::ACCEPTED]).await?;
        let put = crate::client::with_digest(&crate::client::location(&response)?, digest);
        let body = std::sync::Mutex::new(Some(body));
        let response = self
            .send(reference, &scope, || {
                let request = self.http().put(put.clone()).header(CONTENT_TYPE, "application/octet-stream");
                match body.lock().expect("lock").take() {
                    Some(body) => request.body(body),
                    None => request,
                }
            })
            .await?;
        crate::client::expect(response, &[StatusCode::CREATED]).await.map(drop)
    }

    /// Copies the image `src` names (an index with every child, or a manifest with its
    /// config and layers) to `dst`, digests preserved; blobs go in parallel. Returns the
    /// digest of the top manifest.
    pub async fn copy(&self, src: &Reference, dst: &Reference) -> Result<Digest> {
        let manifest = self.pull_manifest(src).await?;
        self.copy_tree(src, dst, &manifest).await?;
        self.push_manifest(dst, &manifest).await
    }

    /// Copies what `manifest` references (recursively for indexes), not the manifest itself.
    fn copy_tree<'a>(
        &'a self,
        src: &'a Reference,
        dst: &'a Reference,
        manifest: &'a Manifest,
    ) -> futures_util::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match manifest.body() {
                ManifestBody::Index(index) => {
                    for child in &index.manifests {
                        let child_src = src.clone().with_digest(child.digest.clone());
                        let child_manifest = self.pull_manifest(&child_src).await?;
                        self.copy_tree(src, dst, &child_manifest).await?;
                        self.push_manifest(&dst.clone().with_digest(child.digest.clone()), &child_manifest)
                            .await?;
                    }
                    Ok(())
                }
                ManifestBody::Image(_) => {
                    let digests: Vec<Digest> = manifest
                        .references()
                        .filter(|d| !d.is_non_distributable())
                        .map(|d: &Descriptor| d.digest.clone())
                        .collect();
                    let copies =
                        digests.into_iter().map(|d| async move { self.copy_blob(src, dst, &d).await });
                    futures_util::stream::iter(copies)
                        .buffer_unordered(self.concurrency())
                        .try_collect::<Vec<()>>()
                        .await
                        .map(drop)
                }
                _ => Err(Error::InvalidResponse("a manifest of an unknown kind".into())),
            }
        })
    }
}
