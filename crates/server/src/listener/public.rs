//! The address clients reach the registry at, and what a `Host` header may say.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The URL clients reach the registry at (behind a TLS proxy, the proxy's), as
/// `--public-url https://registry.example.com`: the token realm is `<it>/token`, cookies are
/// `Secure` when it is `https`, and its host is one a loopback registry answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    https: bool,
    /// `host[:port]`, lowercase.
    authority: String,
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("public URL `{}`: {why}", crate::text::printable(s, 200));
        let (https, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("expected http:// or https://"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest).to_ascii_lowercase();
        if authority.is_empty() || !valid_host(&authority) {
            return Err(bad("expected a scheme and host[:port] only (no path, query or user)"));
        }
        Ok(Self { https, authority })
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", if self.https { "https" } else { "http" }, self.authority)
    }
}

impl PublicUrl {
    /// Whether clients reach it over TLS (then cookies are `Secure`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The token endpoint's URL.
    pub fn realm(&self) -> String {
        format!("{self}/token")
    }

    /// Whether a `Host` header names this URL's host.
    pub(crate) fn names(&self, host: &str) -> bool {
        host_name(host).eq_ignore_ascii_case(host_name(&self.authority))
    }
}

/// Whether `host` is a plain `host[:port]` (letters, digits, `.-:[]`, at most 255 bytes).
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// The name part of `host[:port]` (an IPv6 literal without its brackets).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a `Host` names this machine's loopback: `localhost`, a name under `.localhost`,
/// `127.0.0.0/8` or `::1`, with any port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = host_name(host).trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a `Host` names the server's own address `local` (an IP literal).
pub(crate) fn is_address(host: &str, local: SocketAddr) -> bool {
    host_name(host).parse::<IpAddr>().is_ok_and(|ip| ip == local.ip())
}

/// `local` as the authority part of a URL.
pub(crate) fn authority_of(local: SocketAddr) -> String {
    match local {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_and_hosts() {
        let url: PublicUrl = "https://Registry.Example.com/".parse().expect("parses");
        assert_eq!(url.realm(), "https://registry.example.com/token");
        assert!(url.is_https() && url.names("registry.example.com:443") && !url.names("evil.example"));
        for bad in ["ftp://x", "https://", "https://a/b", "https://u@h", "https://h?x", "h"] {
            assert!(bad.parse::<PublicUrl>().is_err(), "{bad}");
        }
        for host in
            ["localhost", "localhost:5000", "app.localhost", "127.0.0.1:80", "[::1]:5000", "127.1.2.3"]
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example", "localhost.evil.example", "10.0.0.1", "[2001:db8::1]:5000", "x"] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let local: SocketAddr = "192.0.2.5:5000".parse().expect("addr");
        assert!(is_address("192.0.2.5:5000", local) && !is_address("evil.example", local));
        assert_eq!(authority_of("[::1]:80".parse().expect("addr")), "[::1]:80");
    }
}
