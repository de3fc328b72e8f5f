//! One collector at a time over one storage: a lease in the records (`gc/lease`), taken
//! without compare-and-swap as job claims are (write, settle, read back), renewed while the
//! collector works, and expiring when its holder dies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf_store::Storage;

use super::fence::LEASE;
use crate::error::{Error, Result};
use crate::jobs::{now_ms, parse_lease as parse};
use crate::registry::Registry;

/// How long a lease holds without renewal.
pub(crate) const LEASE_TIME: Duration = Duration::from_secs(30);
/// How long a claimer waits before reading its lease back: another claimer that read the
/// lease free must write within this time to be seen.
const SETTLE: Duration = Duration::from_millis(500);

/// A held lease; renewed in the background until dropped or released.
#[derive(Debug)]
pub(crate) struct Lease {
    storage: Arc<dyn Storage>,
    owner: String,
    /// The value last written (renewals change the expiry).
    value: Arc<Mutex<String>>,
    renewal: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Whether a live lease exists (a collector is at work).
    pub(crate) async fn someone_holds(registry: &Registry) -> Result<bool> {
        let lease = registry.storage().get_meta(LEASE).await?;
        Ok(lease.as_deref().and_then(parse).is_some_and(|(_, expires)| expires > now_ms()))
    }

    /// Takes the lease, or says who holds it.
    pub(crate) async fn acquire(storage: Arc<dyn Storage>, owner: &str) -> Result<Self> {
        if let Some((holder, expires)) = storage.get_meta(LEASE).await?.as_deref().and_then(parse)
            && expires > now_ms()
        {
            return Err(Error::Busy(format!("another garbage collection ({holder}) is running")));
        }
        let value = format!("{owner} {}", now_ms() + LEASE_TIME.as_millis());
        storage.set_meta(LEASE, value.clone().into()).await?;
        tokio::time::sleep(SETTLE).await;
        if storage.get_meta(LEASE).await?.as_deref() != Some(value.as_bytes()) {
            return Err(Error::Busy("another garbage collection took the lease first".into()));
        }
        let value = Arc::new(Mutex::new(value));
        let renewal = tokio::spawn({
            let (storage, value, owner) = (Arc::clone(&storage), Arc::clone(&value), owner.to_owned());
            async move {
                loop {
                    tokio::time::sleep(LEASE_TIME / 3).await;
                    let renewed = format!("{owner} {}", now_ms() + LEASE_TIME.as_millis());
                    match storage.set_meta(LEASE, renewed.clone().into()).await {
                        Ok(()) => *value.lock().expect("lock") = renewed,
                        Err(e) => tracing::warn!(error = %e, "renewing the garbage collection lease failed"),
                    }
                }
            }
        });
        Ok(Self { storage, owner: owner.to_owned(), value, renewal })
    }

    /// Fails unless the lease is still ours with time to spare (checked before every removal,
    /// so a collector that was paused past its lease removes nothing more).
    pub(crate) async fn check(&self) -> Result<()> {
        let current = self.storage.get_meta(LEASE).await?;
        let ours = current
            .as_deref()
            .and_then(parse)
            .is_some_and(|(owner, expires)| owner == self.owner && expires > now_ms() + 5_000);
        if ours { Ok(()) } else { Err(Error::Busy("the garbage collection lease was lost; stopping".into())) }
    }

    /// Gives the lease up.
    pub(crate) async fn release(self) -> Result<()> {
        self.renewal.abort();
        let current = self.storage.get_meta(LEASE).await?;
        let mine = self.value.lock().expect("lock").clone();
        if current.as_deref() == Some(mine.as_bytes()) {
            self.storage.remove_meta(LEASE).await?;
        }
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}
