//! The one clock of the server's records: unix time in seconds and milliseconds, and RFC 3339
//! for what people read (a ground module: it imports nothing of the crate).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Now, as RFC 3339 (what records and the audit log show people).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Unix seconds as RFC 3339.
pub(crate) fn rfc3339_of(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
