//! The one clock of the server's records: unix time, in seconds and milliseconds (a ground
//! module: it imports nothing of the crate).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix seconds.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Now, in unix milliseconds.
pub(crate) fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}
