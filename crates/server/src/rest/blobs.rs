//! Blobs and their uploads: sessions, chunks, monolithic pushes, mounts; pulls with ranges
//! (or the file sent by the listener, or a redirect to the storage).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use wharf_types::{Digest, Repository};

use super::context::{Ctx, Gate};
use super::params::{blob_range, body_stream, content_length, content_range, digest, repository};
use super::respond::{CONTENT_DIGEST, UPLOAD_UUID};
use crate::Wharf;
use crate::error::{Error, Result};
use crate::text::{first, header_value};

fn upload_location(repo: &Repository, id: &str) -> HeaderValue {
    header_value(&format!("/v2/{repo}/blobs/uploads/{id}"))
}

fn upload_accepted(repo: &Repository, id: &str, size: u64, status: StatusCode) -> Response {
    let mut response = status.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, upload_location(repo, id));
    h.insert(UPLOAD_UUID, header_value(id));
    // The received range, inclusive; `0-0` for an empty session, as distribution says it.
    h.insert(header::RANGE, header_value(&format!("0-{}", size.saturating_sub(1))));
    h.insert("OCI-Chunk-Min-Length", HeaderValue::from(1u64));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    response
}

fn blob_created(repo: &Repository, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/{digest}")));
    h.insert(CONTENT_DIGEST, header_value(digest.as_str()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    response
}

/// `POST /v2/<name>/blobs/uploads/`: a session, a monolithic upload (`?digest=`), or a mount
/// (`?mount=`, from a repository the caller may pull).
pub(crate) async fn start_upload(
    registry: &Wharf,
    gate: Gate<'_>,
    repo: &Repository,
    ctx: &Ctx,
    body: Body,
) -> Result<Response> {
    let query = &ctx.query;
    if let Some(mount) = first(query, "mount") {
        let d = digest(mount)?;
        let from = match first(query, "from") {
            Some(from) => Some(repository(from)?),
            None => None,
        };
        // Only from a repository the caller may pull, and not from under an `enforce` trust
        // policy unless the caller may push there (a mount would hand out the blob of a
        // manifest the policy refuses; the client uploads it instead).
        let source = |r: &Repository| {
            gate.visible(r.as_str()) && (registry.trust().enforcing(r).is_none() || gate.signer(r.as_str()))
        };
        if registry.mount_where(repo, &d, from.as_ref(), &source).await? {
            return Ok(blob_created(repo, &d));
        }
        // Nothing to mount: an ordinary upload session, as the spec says.
        let id = registry.begin_upload(repo).await?;
        return Ok(upload_accepted(repo, id.as_str(), 0, StatusCode::ACCEPTED));
    }
    if let Some(d) = first(query, "digest") {
        let d = digest(d)?;
        registry.put_blob(repo, &d, body_stream(body)).await?;
        return Ok(blob_created(repo, &d));
    }
    let id = registry.begin_upload(repo).await?;
    Ok(upload_accepted(repo, id.as_str(), 0, StatusCode::ACCEPTED))
}

/// `GET` (status), `PATCH` (a chunk), `PUT` (the last chunk, and the digest) and `DELETE` of
/// an upload session.
pub(crate) async fn upload(
    registry: &Wharf,
    repo: &Repository,
    id: &str,
    ctx: &Ctx,
    body: Body,
) -> Result<Response> {
    let (method, headers, query) = (&ctx.method, &ctx.headers, &ctx.query);
    let session = &wharf_store::UploadId::parse(id).ok_or_else(|| Error::UploadUnknown(id.to_owned()))?;
    match *method {
        Method::GET => {
            let size = registry.upload_status(repo, session).await?;
            Ok(upload_accepted(repo, id, size, StatusCode::NO_CONTENT))
        }
        Method::PATCH => {
            let range = content_range(headers)?;
            if let (Some((a, b)), Some(len)) = (range, content_length(headers))
                && (b - a).checked_add(1) != Some(len)
            {
                return Err(Error::SizeInvalid(format!("Content-Range {a}-{b} but Content-Length {len}")));
            }
            let size = registry.append_upload(repo, session, range.map(|r| r.0), body_stream(body)).await?;
            Ok(upload_accepted(repo, id, size, StatusCode::ACCEPTED))
        }
        Method::PUT => {
            let d = first(query, "digest")
                .ok_or_else(|| Error::DigestInvalid("the digest parameter is missing".into()))?;
            let d = digest(d)?;
            let has_body = content_length(headers).is_none_or(|l| l > 0);
            if has_body {
                let offset = content_range(headers)?.map(|r| r.0);
                registry.append_upload(repo, session, offset, body_stream(body)).await?;
            }
            registry.finish_upload(repo, session, &d).await?;
            Ok(blob_created(repo, &d))
        }
        Method::DELETE => {
            registry.cancel_upload(repo, session).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => unreachable!("dispatched on the methods an upload answers"),
    }
}

/// `GET` (whole or a range) and `HEAD` of a blob; a redirect where the storage serves it.
pub(crate) async fn blob(
    registry: &Wharf,
    repo: &Repository,
    d: &str,
    ctx: &Ctx,
    gate: &Gate<'_>,
) -> Result<Response> {
    let (method, headers) = (&ctx.method, &ctx.headers);
    let d = digest(d)?;
    if *method == Method::GET {
        registry.judge_blob(repo, &d, gate.signer(repo.as_str())).await?;
    }
    if registry.is_mirrored(repo) && registry.stat_blob(repo, &d).await?.is_none() {
        // Fetched from the upstream; the first GET of the whole blob has it as it arrives.
        let whole = *method == Method::GET && !headers.contains_key(header::RANGE);
        if let Some((size, stream)) = registry.pull_through_blob(repo, &d, whole).await? {
            let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
            let h = response.headers_mut();
            if let Some(size) = size {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            }
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            h.insert(CONTENT_DIGEST, header_value(d.as_str()));
            return Ok(response);
        }
    }
    // Storage that serves blobs itself (S3 with `redirect=true`): the client goes there.
    if let Some(url) = registry.blob_url(repo, &d, *method == Method::HEAD).await? {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        let h = response.headers_mut();
        h.insert(header::LOCATION, header_value(&url));
        h.insert(CONTENT_DIGEST, header_value(d.as_str()));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    let info = registry.stat_blob(repo, &d).await?.ok_or_else(|| Error::BlobUnknown(d.clone()))?;
    let range = blob_range(headers, info.size)?;
    if *method == Method::HEAD {
        let mut response = StatusCode::OK.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(CONTENT_DIGEST, header_value(d.as_str()));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        return Ok(response);
    }
    let partial = range.is_some();
    let got = registry.get_blob(repo, &d, range).await?;
    let status = if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let mut response = (status, Body::from_stream(got.stream)).into_response();
    if let Some(file) = got.file {
        // The listener may send the file itself rather than stream it.
        response.extensions_mut().insert(crate::listener::FileRegion { file, range: got.range.clone() });
    }
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(got.range.end - got.range.start));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(CONTENT_DIGEST, header_value(d.as_str()));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if partial {
        let cr = format!("bytes {}-{}/{}", got.range.start, got.range.end - 1, got.size);
        h.insert(header::CONTENT_RANGE, header_value(&cr));
    }
    Ok(response)
}

/// `DELETE` of a blob: unlinked from the repository.
pub(crate) async fn delete_blob(registry: &Wharf, repo: &Repository, d: &str) -> Result<Response> {
    registry.delete_blob(repo, &digest(d)?).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
