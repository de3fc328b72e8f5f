//! One collector at a time over one storage: the collector's lease (`gc/lease`), taken and
//! renewed with the server's one lease protocol ([`crate::lease`]), and expiring when its
//! holder dies.

use std::sync::Arc;
use std::time::Duration;

use wharf_store::{Storage, Write};

use crate::error::{Error, Result};
use crate::lease::{Leases, Renewal, holder};
use crate::registry::fence::GC_LEASE_TIME;
use crate::registry::keys::GC_LEASE;

/// How long a claimer waits before reading its lease back.
const SETTLE: Duration = Duration::from_millis(500);
/// The time a collector must have left on its lease to remove anything.
const SPARE: Duration = Duration::from_secs(5);

/// The collector's lease, held; renewed in the background until released or dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    leases: Leases,
    _renewal: Renewal,
}

impl Lease {
    /// Takes the lease, or says who holds it.
    pub(crate) async fn acquire(storage: Arc<dyn Storage>, owner: &str) -> Result<Self> {
        if let Some((holder, _)) = holder(&*storage, GC_LEASE).await? {
            return Err(Error::Busy(format!("another garbage collection ({holder}) is running")));
        }
        let leases = Leases::new(storage, owner, GC_LEASE_TIME, SETTLE);
        if leases.claim(&[GC_LEASE.to_owned()]).await?.is_empty() {
            return Err(Error::Busy("another garbage collection took the lease first".into()));
        }
        let renewal = leases.renewing();
        Ok(Self { leases, _renewal: renewal })
    }

    /// Fails unless the lease is still ours with time to spare (checked before every removal,
    /// so a collector that was paused past its lease removes nothing more).
    pub(crate) async fn check(&self) -> Result<()> {
        if self.leases.holds(GC_LEASE, SPARE).await? {
            Ok(())
        } else {
            Err(Error::Busy("the garbage collection lease was lost; stopping".into()))
        }
    }

    /// Gives the lease up (removed when it is still ours).
    pub(crate) async fn release(self) -> Result<()> {
        let ours = self.leases.holds(GC_LEASE, Duration::ZERO).await?;
        let writes = if ours { vec![Write::Remove { key: GC_LEASE.to_owned() }] } else { Vec::new() };
        Ok(self.leases.release(GC_LEASE, writes).await?)
    }
}
