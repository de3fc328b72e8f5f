//! Manifests: pull (`GET`, `HEAD`), push (`PUT`, with `?tag=`), delete.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use wharf_types::{MAX_MANIFEST_SIZE, MediaType, Repository, Tag, TagOrDigest};

use super::context::{Ctx, Gate};
use super::params::read_limited;
use super::respond::CONTENT_DIGEST;
use crate::Wharf;
use crate::error::{Error, Result};
use crate::text::header_value;

/// `GET`, `HEAD`, `PUT` (with `?tag=` for more tags) and `DELETE` of
/// `/v2/<name>/manifests/<reference>`.
pub(crate) async fn manifest(
    registry: &Wharf,
    repo: &Repository,
    reference: &str,
    ctx: &Ctx,
    gate: &Gate<'_>,
    body: Body,
) -> Result<Response> {
    let (method, headers, query) = (&ctx.method, &ctx.headers, &ctx.query);
    let parsed = reference.parse::<TagOrDigest>();
    match *method {
        Method::GET | Method::HEAD => {
            // An unparsable reference names no manifest.
            let reference = parsed.map_err(|_| Error::ManifestUnknown(reference.to_owned()))?;
            let stale = registry.pull_through(repo, &reference).await?;
            let (digest, media_type, size, bytes) = if *method == Method::HEAD {
                let (d, mt, size) = registry.head_manifest(repo, &reference).await?;
                (d, mt, size, None)
            } else {
                let m = registry.get_manifest(repo, &reference).await?;
                let size = m.bytes.len() as u64;
                (m.digest, m.media_type, size, Some(m.bytes))
            };
            registry.judge_pull(repo, &digest, gate.signer(repo.as_str())).await?;
            if bytes.is_some() {
                registry.pulled_manifest(repo, &reference, &digest, &media_type, size).await;
            }
            let mut response = match bytes {
                Some(bytes) => (StatusCode::OK, bytes).into_response(),
                None => StatusCode::OK.into_response(),
            };
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, header_value(&media_type));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            h.insert(CONTENT_DIGEST, header_value(digest.as_str()));
            if let Some(why) = stale {
                // RFC 7234's "Response is Stale", with why.
                h.insert(header::WARNING, header_value(&format!("110 wharf \"{}\"", why.replace('"', "'"))));
            }
            Ok(response)
        }
        Method::PUT => {
            let reference = parsed?;
            let content_type = match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
                Some(ct) => Some(ct.parse::<MediaType>().map_err(|e| Error::ManifestInvalid(e.to_string()))?),
                None => None,
            };
            let mut extra_tags = Vec::new();
            for (k, v) in query {
                if k == "tag" {
                    extra_tags.push(v.parse::<Tag>()?);
                }
            }
            let bytes = read_limited(body, MAX_MANIFEST_SIZE).await?;
            let put =
                registry.put_manifest(repo, &reference, content_type.as_ref(), bytes, &extra_tags).await?;
            let mut response = StatusCode::CREATED.into_response();
            let h = response.headers_mut();
            h.insert(header::LOCATION, header_value(&format!("/v2/{repo}/manifests/{}", put.digest)));
            h.insert(CONTENT_DIGEST, header_value(put.digest.as_str()));
            if let Some(subject) = &put.subject {
                h.insert("OCI-Subject", header_value(subject.as_str()));
            }
            for tag in put.tags.iter().filter(|t| extra_tags.contains(t)) {
                h.append("OCI-Tag", header_value(tag.as_str()));
            }
            Ok(response)
        }
        Method::DELETE => {
            let reference = parsed.map_err(|_| Error::ManifestUnknown(reference.to_owned()))?;
            registry.delete_manifest(repo, &reference).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => unreachable!("dispatched on the methods a manifest answers"),
    }
}
