//! Failed-login limits: a key (a user name, a client address) that fails too often in a
//! window is refused until the window ends, without its password being checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many entries a limiter tracks at most (beyond that, new keys are not tracked: memory
/// stays bounded whatever a flood of addresses does).
const MAX_KEYS: usize = 100_000;

/// Counts failures per key in fixed windows.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    entries: Mutex<HashMap<String, (u32, Instant)>>,
}

impl FailureLimiter {
    /// At most `max_failures` failures per key in `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures: max_failures.max(1), window, entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` when `key` is blocked.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let entries = self.entries.lock().expect("lock");
        match entries.get(key) {
            Some((n, since)) if *n >= self.max_failures => {
                let left = self.window.saturating_sub(since.elapsed());
                if left.is_zero() { Ok(()) } else { Err(left) }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`.
    pub fn fail(&self, key: &str) {
        let mut entries = self.entries.lock().expect("lock");
        if entries.len() >= MAX_KEYS && !entries.contains_key(key) {
            let window = self.window;
            entries.retain(|_, (_, since)| since.elapsed() < window);
            if entries.len() >= MAX_KEYS {
                return;
            }
        }
        let entry = entries.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets `key`'s failures (after a success).
    pub fn clear(&self, key: &str) {
        self.entries.lock().expect("lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(limiter.check("bob").is_ok());
            limiter.fail("bob");
        }
        let wait = limiter.check("bob").expect_err("blocked");
        assert!(wait <= Duration::from_millis(200));
        assert!(limiter.check("alice").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.check("bob").is_ok());
        limiter.fail("bob");
        assert!(limiter.check("bob").is_ok(), "a new window starts from zero");
        limiter.clear("bob");
    }
}
