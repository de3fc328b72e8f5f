//! Text from clients, the one implementation the server uses of each: percent-coding, query
//! and form pairs, and what a message or log field may hold of a client's string (a ground
//! module: it imports nothing of the crate).

use std::fmt::Write as _;

use axum::http::HeaderValue;

/// What a query value keeps unescaped: RFC 3986's unreserved characters.
pub(crate) const UNRESERVED: &[u8] = b"-._~";

/// What a `Link` header's query keeps unescaped besides [`UNRESERVED`]: the characters of
/// repository names, digests and search patterns, which the spec's own examples leave as
/// they are.
pub(crate) const LINK_QUERY: &[u8] = b"-._~:/*@";

/// `%`-escapes every byte of `s` but ASCII letters, digits and `keep`.
pub(crate) fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes; a malformed escape stays as it is, and so does a `+` (media types
/// hold them). Invalid UTF-8 becomes U+FFFD.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` cut to `max` characters (an ellipsis says so): what a log field holds of a client's
/// string (the log's formatter escapes it).
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// `s` with control characters (and backslashes) escaped as in Rust strings, cut to `max`
/// characters: safe to put in a message.
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The pairs of an `application/x-www-form-urlencoded` body (`+` is a space there).
pub(crate) fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

pub(crate) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        assert_eq!(percent_encode("a b&c=d/é", UNRESERVED), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(percent_encode("team/app@sha256:ab*", LINK_QUERY), "team/app@sha256:ab*");
        assert_eq!(percent_decode("application%2Fvnd.x%2Bjson"), "application/vnd.x+json");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        assert_eq!(percent_decode("%4"), "%4");
        for s in ["a b&c=d/é", "%%41", "x+y"] {
            assert_eq!(percent_decode(&percent_encode(s, UNRESERVED)), s);
        }
    }
}
