//! Chunked blob pushes that resume from the registry's `Range` after a failure.

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use wharf_types::{Digest, Reference};

use crate::client::{Client, expect, location, with_digest};
use crate::error::{Error, Result};

impl Client {
    /// Pushes `data` in chunks of `chunk_size` bytes (raised to the registry's
    /// `OCI-Chunk-Min-Length`), each a `PATCH` with `Content-Range`; after a failed chunk the
    /// registry's `Range` says where to resume (up to the retry count), and a final `PUT
    /// ?digest=` commits. Skipped when the registry has the blob.
    pub async fn push_blob_chunked(
        &self,
        reference: &Reference,
        data: impl Into<Bytes>,
        chunk_size: usize,
    ) -> Result<Digest> {
        let data: Bytes = data.into();
        let digest = Digest::sha256(&data);
        if self.blob_exists(reference, &digest).await? {
            return Ok(digest);
        }
        let scope = format!("repository:{}:pull,push", reference.repository());
        let url = format!("{}/v2/{}/blobs/uploads/", self.base_url(reference), reference.repository());
        let response =
            self.send(reference, &scope, || self.http().post(&url).header(CONTENT_LENGTH, "0")).await?;
        let response = expect(response, &[StatusCode::ACCEPTED]).await?;
        let min = response
            .headers()
            .get("OCI-Chunk-Min-Length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let chunk_size = chunk_size.max(min).max(1);
        let mut session = location(&response)?;
        let mut offset = 0usize;
        let mut failures = 0u32;
        while offset < data.len() {
            let end = (offset + chunk_size).min(data.len());
            let chunk = data.slice(offset..end);
            let range = format!("{offset}-{}", end - 1);
            let target = session.clone();
            let sent = self
                .send(reference, &scope, || {
                    self.http()
                        .patch(target.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header("Content-Range", range.as_str())
                        .body(chunk.clone())
                })
                .await;
            let accepted = match sent {
                Ok(r) if r.status() == StatusCode::ACCEPTED => Some(r),
                Ok(_) | Err(Error::Http(_)) => None,
                Err(e) => return Err(e),
            };
            if let Some(r) = accepted {
                session = location(&r).unwrap_or(session);
                offset = end;
                self.report(&digest, offset as u64, Some(data.len() as u64));
                continue;
            }
            failures += 1;
            if failures > self.retry_count() {
                return Err(Error::InvalidResponse(format!("chunk {offset}-{} refused too often", end - 1)));
            }
            // Ask the registry how much it holds, and go on from there.
            let status_url = session.clone();
            let status = self.send(reference, &scope, || self.http().get(status_url.clone())).await?;
            let status = expect(status, &[StatusCode::NO_CONTENT, StatusCode::OK]).await?;
            session = location(&status).unwrap_or(session);
            offset = received(status.headers().get(RANGE).and_then(|v| v.to_str().ok())).min(data.len());
        }
        let put = with_digest(&session, &digest);
        let response =
            self.send(reference, &scope, || self.http().put(put.clone()).header(CONTENT_LENGTH, "0")).await?;
        expect(response, &[StatusCode::CREATED]).await?;
        Ok(digest)
    }
}

/// The byte count a `Range: 0-<last>` header reports. `0-0` is what distribution (and
/// Wharf) answer for an empty session, so it counts as nothing: resending one byte is
/// harmless, skipping one is not.
fn received(range: Option<&str>) -> usize {
    range
        .and_then(|r| r.trim().trim_start_matches("bytes=").split_once('-'))
        .and_then(|(_, last)| last.trim().parse::<usize>().ok())
        .map_or(0, |last| if last == 0 { 0 } else { last + 1 })
}
