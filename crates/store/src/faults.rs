//! [`Faults`]: hooks that make a store fail the way disks and engines do, deterministically,
//! for tests of everything above a store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::StreamExt;

use crate::error::{Error, Fault, Result};
use crate::hooks::{Hooks, Op};
use crate::store::ByteStream;

/// [`Hooks`] that fail or delay chosen operations of the store they wrap
/// ([`Hooked`](crate::Hooked)): a disk that fills up after so many bytes, an engine that
/// stops answering, the n-th write that fails before it happens or after (its answer lost),
/// latency. Nothing is random: the same calls fail the same way every time. Clones share one
/// plan, so a test keeps a clone to steer the hooks a store owns.
///
/// # Example: a disk with room for 10 more bytes
/// ```
/// use std::sync::Arc;
/// use wharf_store::{BlobStore, Fault, Faults, Hooked, MemoryStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let store = Hooked::new(Arc::new(MemoryStore::new()), Faults::new());
/// store.hooks().fill_after(10);
/// let small = wharf_types::Digest::sha256(b"0123456789");
/// store.put_bytes(&small, "0123456789".into()).await?;
/// let more = wharf_types::Digest::sha256(b"!");
/// let error = store.put_bytes(&more, "!".into()).await.unwrap_err();
/// assert_eq!(error.fault(), Some(Fault::Full));
/// assert!(store.stat(&small).await?.is_some(), "reads go on");
/// store.hooks().heal();
/// store.put_bytes(&more, "!".into()).await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Faults(Arc<Mutex<Plan>>);

#[derive(Debug, Default)]
struct Plan {
    /// Bytes writes may still store before the disk is full; `None`: no limit.
    room: Option<u64>,
    /// Every operation fails as an engine that does not answer.
    down: bool,
    /// The n-th write from now (1 = the next) fails; `after`: it happens, its answer is lost.
    nth_write: Option<(u64, bool)>,
    /// Added before every operation.
    latency: Duration,
    /// Faults made so far.
    made: u64,
}

impl Faults {
    /// Hooks that do nothing until told to.
    pub fn new() -> Self {
        Self::default()
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The disk fills up once writes stored `bytes` more: from then on every write fails as
    /// [`Fault::Full`] (a stream that crosses the line, midway), until [`heal`](Self::heal).
    pub fn fill_after(&self, bytes: u64) {
        self.plan().room = Some(bytes);
    }

    /// With `true`, every operation fails as [`Fault::Unavailable`] (an engine that is down).
    pub fn set_down(&self, down: bool) {
        self.plan().down = down;
    }

    /// The `n`-th write from now (1: the next one) fails as [`Fault::Unavailable`]: before it
    /// reaches the store, or with `after`, once it is done (its answer lost on the way back).
    pub fn fail_write(&self, n: u64, after: bool) {
        self.plan().nth_write = Some((n.max(1), after));
    }

    /// Every operation waits `latency` first.
    pub fn set_latency(&self, latency: Duration) {
        self.plan().latency = latency;
    }

    /// Ends every fault: room on the disk, the engine up, no failing write, no latency.
    pub fn heal(&self) {
        let mut plan = self.plan();
        *plan = Plan { made: plan.made, ..Plan::default() };
    }

    /// How many operations failed because of these hooks so far.
    pub fn made(&self) -> u64 {
        self.plan().made
    }

    /// Whether the `nth_write` countdown fails this write, `after` it or before.
    fn count_write(plan: &mut Plan, after: bool) -> bool {
        match &mut plan.nth_write {
            Some((n, when)) if *when == after => {
                *n -= 1;
                if *n == 0 {
                    plan.nth_write = None;
                    plan.made += 1;
                    return true;
                }
                false
            }
            _ => false,
        }
    }
}

#[async_trait]
impl Hooks for Faults {
    async fn before(&self, op: Op, bytes: u64) -> Result<()> {
        let latency = self.plan().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut plan = self.plan();
        if plan.down {
            plan.made += 1;
            return Err(Error::injected(Fault::Unavailable, "reach the engine"));
        }
        if !op.writes() {
            return Ok(());
        }
        if Self::count_write(&mut plan, false) {
            return Err(Error::injected(Fault::Unavailable, "write"));
        }
        if let Some(room) = &mut plan.room {
            // Removals free nothing here, but need no room either.
            if *room == 0 && !matches!(op, Op::Delete | Op::RemoveMeta | Op::Abort | Op::Quarantine) {
                plan.made += 1;
                return Err(Error::injected(Fault::Full, "write"));
            }
            if bytes > *room {
                *room = 0;
                plan.made += 1;
                return Err(Error::injected(Fault::Full, "write"));
            }
            *room -= bytes;
        }
        Ok(())
    }

    fn input(&self, _op: Op, data: ByteStream) -> ByteStream {
        if self.plan().room.is_none() {
            return data;
        }
        let plan = Arc::clone(&self.0);
        data.map(move |chunk| {
            let chunk = chunk?;
            let mut plan = plan.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &mut plan.room {
                Some(room) if (chunk.len() as u64) > *room => {
                    *room = 0;
                    plan.made += 1;
                    Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
                }
                Some(room) => {
                    *room -= chunk.len() as u64;
                    Ok(chunk)
                }
                None => Ok(chunk),
            }
        })
        .boxed()
    }

    fn after(&self, op: Op, outcome: std::result::Result<(), &Error>) -> Result<()> {
        if op.writes() && outcome.is_ok() && Self::count_write(&mut self.plan(), true) {
            return Err(Error::injected(Fault::Unavailable, "answer a write"));
        }
        Ok(())
    }
}
