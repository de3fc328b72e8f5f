//! Which addresses a client may reach. A registry that fetches from URLs it is given — a
//! mirror's upstream, a token realm an upstream names, a redirect, a webhook target — must not
//! become a way into the operator's network: [`ClientBuilder::with_public_addresses_only`]
//! refuses every address [`is_public`] refuses, for names when they are resolved (at each
//! connection, so a name cannot be rebound to a private address after a check) and for
//! address literals before a request is sent or a redirect followed.
//!
//! [`ClientBuilder::with_public_addresses_only`]: crate::ClientBuilder::with_public_addresses_only

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Error, Result};

/// Whether `ip` is an address of the public internet: not loopback, private (RFC 1918,
/// unique-local `fc00::/7`), shared (CGNAT `100.64.0.0/10`), link-local (`169.254.0.0/16` —
/// cloud metadata services live there — and `fe80::/10`), unspecified, broadcast, multicast,
/// reserved, documentation or benchmarking ranges; IPv6 forms that carry an IPv4 address
/// (mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address, Teredo is
/// refused.
///
/// ```
/// use wharf_client::is_public;
///
/// assert!(is_public("1.1.1.1".parse()?));
/// assert!(!is_public("169.254.169.254".parse()?));
/// assert!(!is_public("::ffff:10.0.0.1".parse()?));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || a == 127                            // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // NAT64 (64:ff9b::/96): the IPv4 address in the last 32 bits; 6to4 (2002::/16): in
        // bits 16..48.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] => is_public_v4(embedded(hi, lo)),
        _ => {
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00    // unique local
                || (s[0] & 0xffc0) == 0xfe80    // link-local
                || (s[0] & 0xffc0) == 0xfec0    // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] == 0)      // Teredo
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
                || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

/// Refuses a URL whose host is an address literal that is not public (a name is judged when
/// it is resolved, by [`PublicResolver`]).
///
/// ```
/// let url = wharf_client::reqwest::Url::parse("http://169.254.169.254/latest/meta-data/")?;
/// assert!(wharf_client::check_url(&url).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_url(url: &reqwest::Url) -> Result<()> {
    let host = url.host_str().unwrap_or_default();
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let Ok(ip) = literal.parse::<IpAddr>() else { return Ok(()) };
    if is_public(ip) { Ok(()) } else { Err(Error::NotPublic { host: ip.to_string() }) }
}

/// Resolves names as the system does and keeps the public addresses; a name with none is an
/// error naming it. For a plain `reqwest` client that sends to URLs it is given (a webhook):
/// `reqwest::Client::builder().dns_resolver(Arc::new(PublicResolver))`, with
/// [`check_url`] for address literals.
#[derive(Debug)]
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                let why = format!(
                    "`{host}` resolves only to addresses that are not public ({}): this client \
                     connects only to public addresses",
                    shown.join(", ")
                );
                return Err(why.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The redirect policy of a public-only client: at most 10, never to a non-public address
/// literal (names are resolved by [`PublicResolver`]).
pub(crate) fn redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else if let Err(e) = check_url(attempt.url()) {
            attempt.error(e.to_string())
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_not() {
        for public in ["1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.32.0.1", "2606:4700::1111"]
        {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "127.0.0.1",
            "100.64.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "::127.0.0.1",
            "100::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        assert!(is_public("::ffff:1.1.1.1".parse().expect("ip")));
        assert!(is_public("64:ff9b::101:101".parse().expect("ip")), "NAT64 of 1.1.1.1");
        assert!(is_public("2002:101:101::".parse().expect("ip")), "6to4 of 1.1.1.1");
    }

    #[test]
    fn urls() {
        let url = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(
            check_url(&url("https://registry-1.docker.io/v2/")).is_ok(),
            "names are judged when resolved"
        );
        assert!(check_url(&url("https://1.1.1.1/v2/")).is_ok());
        for bad in ["http://169.254.169.254/latest/meta-data/", "http://[::1]:5000/v2/", "http://10.0.0.1/"] {
            let e = check_url(&url(bad)).expect_err(bad);
            assert!(e.to_string().contains("not a public address"), "{e}");
        }
    }
}
