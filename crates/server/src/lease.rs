//! Leases in the records, the one protocol the server has for "one holder at a time" (a job,
//! the garbage collector): taken without compare-and-swap, since S3 engines such as Garage
//! ignore conditional writes — write the lease, wait a settle time, read it back: of several
//! claimers that raced, only the last writer sees its own lease and goes on. A holder renews
//! its leases while it works; a holder that dies leaves them to expire. (A ground module: it
//! imports nothing of the crate.)
//!
//! A lease record is `<owner> <expires, unix ms>`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use wharf_store::{Error, Storage, Write};

use crate::clock::now_ms;

/// `<owner> <expires, unix ms>`.
pub(crate) fn parse(value: &[u8]) -> Option<(&str, u128)> {
    let (owner, expires) = std::str::from_utf8(value).ok()?.split_once(' ')?;
    Some((owner, expires.parse().ok()?))
}

/// A lease of `owner` written now, holding for `time`: `<owner> <expires, unix ms>`.
pub(crate) fn value(owner: &str, time: Duration) -> String {
    format!("{owner} {}", now_ms() + time.as_millis())
}

/// The holder of the live lease at `key`, if one is (its owner, and until when).
pub(crate) async fn holder(storage: &dyn Storage, key: &str) -> Result<Option<(String, u128)>, Error> {
    let value = storage.get_meta(key).await?;
    Ok(value
        .as_deref()
        .and_then(parse)
        .filter(|(_, expires)| *expires > now_ms())
        .map(|(owner, expires)| (owner.to_owned(), expires)))
}

/// The leases one owner holds over one storage, renewed in the background (see
/// [`Leases::renewing`]) until released.
#[derive(Debug)]
pub(crate) struct Leases {
    storage: Arc<dyn Storage>,
    owner: String,
    /// How long a lease holds without renewal.
    time: Duration,
    /// How long a claimer waits before reading its leases back: another claimer that read a
    /// lease free must write within this time to be seen.
    settle: Duration,
    /// The keys held; the lock is held while a lease is given up, so a renewal never writes
    /// it back.
    held: Arc<tokio::sync::Mutex<BTreeSet<String>>>,
}

impl Leases {
    /// Leases of `owner` that hold `time` and settle for `settle`.
    pub(crate) fn new(storage: Arc<dyn Storage>, owner: &str, time: Duration, settle: Duration) -> Self {
        Self { storage, owner: owner.to_owned(), time, settle, held: Arc::default() }
    }

    /// The keys held now.
    pub(crate) async fn held(&self) -> BTreeSet<String> {
        self.held.lock().await.clone()
    }

    /// Who holds these leases.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes the leases at `keys` nobody else holds a live lease on: writes them all in one
    /// batch, waits the settle time once, and keeps those that read back as its own. Returns
    /// the keys now held.
    pub(crate) async fn claim(&self, keys: &[String]) -> Result<Vec<String>, Error> {
        let mut wanted = Vec::new();
        for key in keys {
            match holder(&*self.storage, key).await? {
                Some((owner, _)) if owner != self.owner => {}
                _ => wanted.push(key.clone()),
            }
        }
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mine = value(&self.owner, self.time);
        let writes =
            wanted.iter().map(|key| Write::Set { key: key.clone(), value: mine.clone().into() }).collect();
        if let Err(e) = self.storage.write_steps(vec![writes]).await {
            // The write may have happened with its answer lost: a lease left so would hold
            // off every claimer, this one included, until it expired. Taken back if it is there.
            for key in &wanted {
                if self.storage.get_meta(key).await.ok().flatten().is_some_and(|l| l == mine.as_bytes()) {
                    let _ = self.storage.remove_meta(key).await;
                }
            }
            return Err(e);
        }
        tokio::time::sleep(self.settle).await;
        let mut claimed = Vec::new();
        let mut held = self.held.lock().await;
        for key in wanted {
            // Held already: adopted meanwhile (see [`adopt`](Self::adopt)), and started there.
            if self.storage.get_meta(&key).await?.is_some_and(|l| l == mine.as_bytes())
                && held.insert(key.clone())
            {
                claimed.push(key);
            }
        }
        Ok(claimed)
    }

    /// Holds the lease at `key`, written as ours by whoever wrote the record it guards (in the
    /// same batch: nobody else could have claimed what did not exist), with no claim and no
    /// settle; false when it is held already.
    pub(crate) async fn adopt(&self, key: &str) -> bool {
        self.held.lock().await.insert(key.to_owned())
    }

    /// Whether the lease at `key` is still ours, with more than `spare` left.
    pub(crate) async fn holds(&self, key: &str, spare: Duration) -> Result<bool, Error> {
        let current = self.storage.get_meta(key).await?;
        Ok(current
            .as_deref()
            .and_then(parse)
            .is_some_and(|(owner, expires)| owner == self.owner && expires > now_ms() + spare.as_millis()))
    }

    /// Stops holding `key` and writes `writes` (under the lock, so the renewal never writes
    /// the lease back): the caller's removal of the lease, or whatever replaces it.
    pub(crate) async fn release(&self, key: &str, writes: Vec<Write>) -> Result<(), Error> {
        let mut held = self.held.lock().await;
        held.remove(key);
        if !writes.is_empty() {
            self.storage.write_steps(vec![writes]).await?;
        }
        Ok(())
    }

    /// Renews every lease held, every third of the lease time, until the guard drops.
    pub(crate) fn renewing(&self) -> Renewal {
        let (storage, held, owner, time) =
            (Arc::clone(&self.storage), Arc::clone(&self.held), self.owner.clone(), self.time);
        Renewal(tokio::spawn(async move {
            loop {
                tokio::time::sleep(time / 3).await;
                let held = held.lock().await;
                if held.is_empty() {
                    continue;
                }
                let mine = value(&owner, time);
                let writes =
                    held.iter().map(|key| Write::Set { key: key.clone(), value: mine.clone().into() });
                if let Err(e) = storage.write_steps(vec![writes.collect()]).await {
                    tracing::warn!(error = %e, "renewing leases failed");
                }
            }
        }))
    }
}

/// The renewal of a holder's leases: stops when dropped.
#[derive(Debug)]
pub(crate) struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}
