//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and this crate's tests: the
//! parsers of what a client sends in a request line and its headers.

/// Request paths, queries and range headers, from any bytes: nothing panics; an escaped `/`
/// (`%2F`) never becomes a separator (decoding keeps the number of `/`); a parsed
/// `Content-Range` is ordered; a blob range lies inside the blob; a repository a route names
/// either is a valid name or is refused before storage is touched.
pub fn request(data: &[u8]) {
    crate::http::check_parsers(data);
}
