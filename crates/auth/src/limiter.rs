//! Failed-login limits: a key (a user at an address, an address, a user) that fails too
//! often in a window is refused, or slowed down, until the window ends.
//!
//! The table is allocated once and never grows: keys are hashed with a salt of the process
//! (16 bytes each, whatever their length) into a fixed number of sets of 8 slots, and a
//! new key takes the slot of its set whose window started first. A flood of names or
//! addresses costs the sender, not memory: the limiter's size is [`FailureLimiter::bytes`],
//! decided at construction.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slots per set (a new key evicts the set's oldest window).
pub(crate) const WAYS: usize = 8;
/// Sets of a limiter made by [`FailureLimiter::new`]: 2,048 × 8 = 16,384 keys tracked at once.
pub(crate) const DEFAULT_SETS: usize = 2_048;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: [u8; 16],
    count: u32,
    since: Option<Instant>,
}

/// Counts failures per key in fixed windows, in a table of fixed size.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    salt: [u8; 16],
    slots: Mutex<Vec<Slot>>,
}

/// The address a client is counted under: an IPv4 address as it is (an IPv4-mapped IPv6 one
/// as IPv4), an IPv6 address by its /64 (what one host is given).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

impl FailureLimiter {
    /// At most `max_failures` failures per key in `window`, 2,048 sets (16,384 keys).
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self::with_sets(max_failures, window, DEFAULT_SETS)
    }

    /// At most `max_failures` failures per key in `window`, in `sets` × 8 slots.
    pub fn with_sets(max_failures: u32, window: Duration, sets: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            salt: *uuid::Uuid::new_v4().as_bytes(),
            slots: Mutex::new(vec![Slot::default(); sets.max(1) * WAYS]),
        }
    }

    /// The table's size in bytes: what the limiter costs, fixed at construction.
    pub fn bytes(&self) -> usize {
        self.slots.lock().expect("lock").capacity() * std::mem::size_of::<Slot>()
    }

    fn hash(&self, key: &[u8]) -> [u8; 16] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(self.salt);
        h.update(key);
        let digest = h.finalize();
        let mut out = [0; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    /// Runs `f` on `key`'s slot (a fresh one, counting from zero, when its window ended or it
    /// was not tracked).
    fn with_slot<T>(&self, key: &[u8], f: impl FnOnce(&mut Slot, Duration) -> T) -> T {
        let hashed = self.hash(key);
        let mut slots = self.slots.lock().expect("lock");
        let sets = slots.len() / WAYS;
        let set = usize::try_from(u64::from_le_bytes(hashed[..8].try_into().expect("8 bytes")) % sets as u64)
            .expect("below the number of sets");
        let ways = &mut slots[set * WAYS..(set + 1) * WAYS];
        let now = Instant::now();
        let index = ways.iter().position(|s| s.since.is_some() && s.key == hashed).unwrap_or_else(|| {
            // A free slot, else the one whose window started first.
            ways.iter().enumerate().min_by_key(|(_, s)| s.since).map(|(i, _)| i).expect("WAYS > 0")
        });
        let slot = &mut ways[index];
        let expired = slot.since.is_none_or(|since| now.duration_since(since) >= self.window);
        if slot.key != hashed || expired {
            *slot = Slot { key: hashed, count: 0, since: Some(now) };
        }
        let left = self.window.saturating_sub(now.duration_since(slot.since.unwrap_or(now)));
        f(slot, left)
    }

    /// Counts an attempt of `key` as a failure before it is checked, unless `key` already
    /// has its limit: then `Err(retry_after)`. Check and count are one step, so concurrent
    /// attempts cannot pass the limit together; [`refund`](Self::refund) takes the count
    /// back when the attempt succeeds.
    pub fn reserve(&self, key: &[u8]) -> Result<(), Duration> {
        let max = self.max_failures;
        self.with_slot(key, |slot, left| {
            if slot.count >= max {
                Err(left.max(Duration::from_secs(1)))
            } else {
                slot.count += 1;
                Ok(())
            }
        })
    }

    /// Takes back one count of [`reserve`](Self::reserve).
    pub fn refund(&self, key: &[u8]) {
        self.with_slot(key, |slot, _| slot.count = slot.count.saturating_sub(1));
    }

    /// Counts a failure of `key`, whatever its count (a counter that slows down, never
    /// refuses); returns the failures in the window.
    pub fn fail(&self, key: &[u8]) -> u32 {
        self.with_slot(key, |slot, _| {
            slot.count = slot.count.saturating_add(1);
            slot.count
        })
    }

    /// `key`'s failures in the current window.
    pub fn failures(&self, key: &[u8]) -> u32 {
        self.with_slot(key, |slot, _| slot.count)
    }

    /// `Err(retry_after)` when `key` has its limit.
    pub fn check(&self, key: &[u8]) -> Result<(), Duration> {
        let max = self.max_failures;
        self.with_slot(
            key,
            |slot, left| if slot.count >= max { Err(left.max(Duration::from_secs(1))) } else { Ok(()) },
        )
    }

    /// Forgets `key`'s failures (after a success).
    pub fn clear(&self, key: &[u8]) {
        self.with_slot(key, |slot, _| slot.count = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(limiter.reserve(b"bob").is_ok());
        }
        let wait = limiter.reserve(b"bob").expect_err("blocked");
        assert!(wait <= Duration::from_secs(1));
        assert!(limiter.check(b"bob").is_err());
        assert!(limiter.check(b"alice").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.check(b"bob").is_ok());
        limiter.reserve(b"bob").expect("a new window");
        limiter.refund(b"bob");
        assert_eq!(limiter.failures(b"bob"), 0, "refunded");
        limiter.fail(b"bob");
        limiter.clear(b"bob");
        assert_eq!(limiter.failures(b"bob"), 0);
    }

    #[test]
    fn reservations_are_atomic_across_threads() {
        let limiter = std::sync::Arc::new(FailureLimiter::new(5, Duration::from_secs(60)));
        let admitted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..24)
            .map(|_| {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                std::thread::spawn(move || {
                    if limiter.reserve(b"admin").is_ok() {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("joins");
        }
        assert_eq!(admitted.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn memory_is_fixed_whatever_the_keys() {
        let limiter = FailureLimiter::with_sets(5, Duration::from_secs(60), 4);
        let before = limiter.bytes();
        let long = vec![b'x'; 250_000];
        for i in 0..1_000u32 {
            let mut key = long.clone();
            key.extend_from_slice(&i.to_le_bytes());
            let _ = limiter.reserve(&key);
        }
        assert_eq!(limiter.bytes(), before);
        assert!(before <= 4 * WAYS * 64, "{before} bytes");
        // The newest key is tracked: its set evicted the oldest window.
        let _ = limiter.reserve(b"newest");
        assert_eq!(limiter.failures(b"newest"), 1);
    }

    #[test]
    fn ipv6_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }
}
