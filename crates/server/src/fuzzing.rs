//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and this crate's tests: the
//! parsers of what a client sends in a request line and its headers.

/// Request paths, queries and range headers, from any bytes: nothing panics; an escaped `/`
/// (`%2F`) never becomes a separator (decoding keeps the number of `/`); a parsed
/// `Content-Range` is ordered; a blob range lies inside the blob; a repository a route names
/// either is a valid name or is refused before storage is touched.
pub fn request(data: &[u8]) {
    crate::rest::check_parsers(data);
    // The web page's paths and cookies.
    crate::web::check_parsers(&String::from_utf8_lossy(data));
}

/// The lifecycle's parsers, from any bytes: tag records (what a tag names, when it was
/// pushed), link records, sizes, durations and grace windows, retention globs. Nothing
/// panics; a tag record written by the registry reads back the same; a glob matches itself
/// with its wildcards taken literally only when it has none.
pub fn lifecycle(data: &[u8]) {
    crate::lifecycle::check_parsers(data);
}
