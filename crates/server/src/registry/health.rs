//! The storage's health as the core meets it: every storage operation goes through
//! [`Watch`], which notices a fault ([`Fault::Full`], [`Fault::Unavailable`]) when an
//! operation fails with one, and its end when one succeeds again. An incident is logged once
//! when it starts and once when it ends, never once per request; `/readyz` and `/metrics`
//! read it from here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use wharf_store::{Error, Fault, Hooks, Op};

/// The incidents under way and how many operations each kind of fault failed.
#[derive(Debug, Default)]
pub(crate) struct Health {
    incidents: Mutex<Incidents>,
    /// Operations failed by a full storage, by an unavailable one (since the start).
    failed: [AtomicU64; 2],
}

#[derive(Debug, Default)]
struct Incidents {
    full: Option<Incident>,
    unavailable: Option<Incident>,
}

/// A fault under way.
#[derive(Clone, Debug)]
pub(crate) struct Incident {
    /// Which.
    pub(crate) fault: Fault,
    /// When it started (unix seconds).
    pub(crate) since: u64,
    started: Instant,
    /// Operations it failed so far.
    pub(crate) failures: u64,
}

fn slot(fault: Fault) -> usize {
    usize::from(fault == Fault::Unavailable)
}

impl Health {
    /// The incident under way, the storage being unavailable first (it stops reads too).
    pub(crate) fn incident(&self) -> Option<Incident> {
        let incidents = self.lock();
        incidents.unavailable.clone().or_else(|| incidents.full.clone())
    }

    /// Operations failed by `fault` since the start.
    pub(crate) fn failed(&self, fault: Fault) -> u64 {
        self.failed[slot(fault)].load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Incidents> {
        self.incidents.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An operation failed with `fault`: the start of an incident (logged), or one more
    /// failure of the one under way.
    fn failed_with(&self, fault: Fault, error: &Error) {
        self.failed[slot(fault)].fetch_add(1, Ordering::Relaxed);
        let mut incidents = self.lock();
        let incident = match fault {
            Fault::Full => &mut incidents.full,
            _ => &mut incidents.unavailable,
        };
        if let Some(incident) = incident {
            incident.failures += 1;
            return;
        }
        if fault == Fault::Full {
            tracing::error!(
                cause = %error,
                "storage full: pushes and other writes fail (507) until space is freed; pulls go on"
            );
        } else {
            tracing::error!(
                cause = %error,
                "storage unavailable: requests that need it fail (503, Retry-After) until it answers again; \
                 manifests read recently are served from memory"
            );
        }
        *incident =
            Some(Incident { fault, since: crate::clock::now_secs(), started: Instant::now(), failures: 1 });
    }

    /// An operation succeeded: the end of an unavailability, and of a full storage if it
    /// needed room.
    fn succeeded(&self, op: Op) {
        let needs_room =
            matches!(op, Op::Put | Op::Append | Op::Commit | Op::Begin | Op::SetMeta | Op::WriteSteps);
        let mut incidents = self.lock();
        let ended = [incidents.unavailable.take(), if needs_room { incidents.full.take() } else { None }];
        drop(incidents);
        for incident in ended.into_iter().flatten() {
            tracing::warn!(
                fault = incident.fault.as_str(),
                lasted_s = incident.started.elapsed().as_secs(),
                failed_operations = incident.failures,
                "{} is over",
                incident.fault
            );
        }
    }
}

/// The [`Hooks`] the core wraps its storage in, reporting to its [`Health`].
#[derive(Debug)]
pub(crate) struct Watch(pub(crate) std::sync::Arc<Health>);

impl Hooks for Watch {
    fn after(&self, op: Op, outcome: Result<(), &Error>) -> wharf_store::Result<()> {
        match outcome {
            Ok(()) => self.0.succeeded(op),
            Err(e) => {
                if let Some(fault) = e.fault() {
                    self.0.failed_with(fault, e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wharf_store::{BlobStore, Faults, Hooked, MemoryStore, MetaStore};

    use super::*;

    #[tokio::test]
    async fn an_incident_starts_at_the_first_fault_and_ends_at_the_first_success_that_needs_room() {
        let faults = Arc::new(Hooked::new(Arc::new(MemoryStore::new()), Faults::new()));
        let health = Arc::new(Health::default());
        let store =
            Hooked::new(Arc::clone(&faults) as Arc<dyn wharf_store::Storage>, Watch(Arc::clone(&health)));
        faults.hooks().fill_after(0);
        for _ in 0..3 {
            assert!(store.set_meta("k", "v".into()).await.is_err());
        }
        let incident = health.incident().expect("full");
        assert_eq!((incident.fault, incident.failures), (Fault::Full, 3));
        assert_eq!(health.failed(Fault::Full), 3);
        // Reads and removals do not end it; a write that needed room does.
        assert!(store.get_meta("k").await.is_ok());
        assert!(store.remove_meta("k").await.is_ok());
        assert!(health.incident().is_some());
        faults.hooks().heal();
        store.put_bytes(&wharf_types::Digest::sha256(b"x"), "x".into()).await.expect("room again");
        assert!(health.incident().is_none());
        faults.hooks().set_down(true);
        assert!(store.get_meta("k").await.is_err());
        assert_eq!(health.incident().map(|i| i.fault), Some(Fault::Unavailable));
        faults.hooks().heal();
        assert!(store.get_meta("k").await.is_ok());
        assert!(health.incident().is_none());
    }
}
