//! The limits on time and connections a listener enforces (a leaf of `listener`).

use std::time::Duration;

/// Limits on time and connections. Every field has a sane default.
///
/// # Example
/// ```
/// use std::time::Duration;
/// let mut limits = wharf_server::Limits::default();
/// limits.header_timeout = Duration::from_secs(10);
/// assert_eq!(limits.max_connections, 10_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Time a client has to send a request's headers, from their first byte (or, on a new
    /// connection, from the accept). Default 30 s.
    pub header_timeout: Duration,
    /// The interval over which request bodies and responses must make progress: each such
    /// interval spent waiting for the client must move `min_transfer_rate` × its length in
    /// bytes (a stall this long always fails). Default 60 s.
    pub body_idle_timeout: Duration,
    /// Bytes per second a request body must bring, and a response must take, on average over
    /// each `body_idle_timeout` of waiting; 0 turns the rate off (only stalls fail). Default
    /// 1 KiB/s.
    pub min_transfer_rate: u64,
    /// Time a connection may stay open between requests. Default 60 s.
    pub keepalive_timeout: Duration,
    /// Open connections at most; lowered to what the open-files limit allows. Default 10,000.
    pub max_connections: usize,
    /// Open connections of one client address (IPv6: of one /64) at most, and never more than
    /// half of `max_connections`; 0: only that half. Default 256. Behind a reverse proxy,
    /// every client has the proxy's address: raise it (the proxy limits clients itself).
    pub max_connections_per_address: usize,
    /// After a shutdown signal, time in-flight requests get to finish before their
    /// connections are closed. Default 30 s.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            min_transfer_rate: 1024,
            keepalive_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_connections_per_address: 256,
            drain_timeout: Duration::from_secs(30),
        }
    }
}
