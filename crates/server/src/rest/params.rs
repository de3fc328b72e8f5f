//! What a request says beyond its route: names and digests, paging, ranges, lengths, and
//! its body as a stream or within a limit (every parser here is fuzzed: `fuzzing::request`).

use axum::body::Body;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, header};
use wharf_store::ByteStream;
use wharf_types::{Digest, Repository};

use crate::error::{Error, Result};
use crate::text::{first, printable};

pub(crate) fn repository(name: &str) -> Result<Repository> {
    Ok(name.parse::<Repository>()?)
}

pub(crate) fn digest(s: &str) -> Result<Digest> {
    Ok(s.parse::<Digest>()?)
}

pub(crate) fn body_stream(body: Body) -> ByteStream {
    body.into_data_stream().map_err(std::io::Error::other).boxed()
}

/// Reads a body of at most `limit` bytes.
pub(crate) async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes> {
    let mut stream = body_stream(body);
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(Error::TooLarge(format!("the manifest exceeds the limit of {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

pub(crate) fn paging(query: &[(String, String)]) -> Result<(Option<usize>, Option<String>)> {
    let n = match first(query, "n") {
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            Error::PaginationInvalid(format!("n must be a non-negative number, not `{}`", printable(n, 64)))
        })?),
        None => None,
    };
    Ok((n, first(query, "last").map(str::to_owned)))
}

/// A `Content-Range: <start>-<end>` (with or without a `bytes ` prefix).
pub(crate) fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let malformed = || {
        Error::ContentRangeInvalid(format!(
            "Content-Range `{}` is malformed: expected <start>-<end>",
            printable(&String::from_utf8_lossy(value.as_bytes()), 100)
        ))
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let range = text.trim().trim_start_matches("bytes ").split('/').next().unwrap_or_default();
    let parsed = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)));
    match parsed {
        Some((a, b)) if a <= b => Ok(Some((a, b))),
        _ => Err(malformed()),
    }
}

pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A single `Range: bytes=…` against a blob of `size` bytes: `Ok(None)` for no (or an
/// unusable multi-range) header, the half-open range otherwise.
pub(crate) fn blob_range(headers: &HeaderMap, size: u64) -> Result<Option<std::ops::Range<u64>>> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer the whole blob, as the spec allows
    }
    let bad = || Error::BlobRange { size };
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let suffix: u64 = b.parse().map_err(|_| bad())?;
        if suffix == 0 || size == 0 {
            return Err(bad());
        }
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| bad())?.min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(bad());
        }
        start..end + 1
    };
    Ok(Some(range))
}
