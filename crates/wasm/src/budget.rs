//! What reading one artifact's layers may cost, and the meter that enforces it.
//!
//! Every reader of layer bytes in this crate — [`extract`](crate::extract), the image
//! filesystem of [`image`](crate::image), [`record::read_modules`](crate::record::read_modules)
//! — charges one [`Meter`] per artifact, so one push costs at most its [`Budget`]: bytes
//! decompressed per layer and in all, the size of a tar extended header, entries and the bytes
//! of the paths kept in memory, symbolic-link hops, the module's size, and wall time. The
//! defaults are far beyond what honest images need and far below what hurts a server.
//!
//! ```
//! use wharf_wasm::budget::{Budget, Meter};
//!
//! let mut budget = Budget::default();
//! budget.layer_bytes = 1 << 20;
//! let mut meter = Meter::new(&budget);
//! meter.start_layer();
//! assert!(meter.read(1 << 19).is_ok());
//! let over = meter.read(1 << 20).expect_err("over budget");
//! assert!(over.to_string().contains("decompressed bytes of one layer"), "{over}");
//! ```

use std::time::{Duration, Instant};

/// Limits on reading an artifact's layers. Every field has a default that no honest image
/// reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Budget {
    /// Bytes read out of one layer after decompression. Default 4 GiB.
    pub layer_bytes: u64,
    /// Bytes read out of all the layers of one artifact after decompression (a layer read
    /// twice counts twice). Default 8 GiB.
    pub artifact_bytes: u64,
    /// The largest tar extended header (a GNU long name or link, a PAX header): refused
    /// beyond, before its body is read. Default 64 KiB.
    pub header_bytes: u64,
    /// Tar entries read in all the layers of one artifact. Default 1,000,000.
    pub entries: u64,
    /// Bytes of paths and link targets the image's filesystem keeps in memory. Default 64 MiB.
    pub path_bytes: u64,
    /// Symbolic links followed to resolve one path (as Linux's `ELOOP`). Default 40.
    pub link_hops: u32,
    /// The largest module read into memory. Default 256 MiB.
    pub module_bytes: u64,
    /// The largest window a zstd frame may declare (the decoder's memory). Default 32 MiB
    /// (zstd's own level 19 uses 8 MiB; containerd and buildah write less).
    pub window_bytes: u64,
    /// Wall time of one artifact's reads. Default 2 minutes.
    pub time: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            layer_bytes: 4 << 30,
            artifact_bytes: 8 << 30,
            header_bytes: 64 << 10,
            entries: 1_000_000,
            path_bytes: 64 << 20,
            link_hops: 40,
            module_bytes: 256 << 20,
            window_bytes: 32 << 20,
            time: Duration::from_secs(120),
        }
    }
}

/// Which limit of a [`Budget`] was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Budget::layer_bytes`].
    LayerBytes,
    /// [`Budget::artifact_bytes`].
    ArtifactBytes,
    /// [`Budget::header_bytes`].
    HeaderBytes,
    /// [`Budget::entries`].
    Entries,
    /// [`Budget::path_bytes`].
    PathBytes,
    /// [`Budget::link_hops`].
    LinkHops,
    /// [`Budget::module_bytes`].
    ModuleBytes,
    /// [`Budget::window_bytes`].
    WindowBytes,
    /// [`Budget::time`].
    Time,
}

impl Limit {
    /// What the limit bounds, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Self::LayerBytes => "decompressed bytes of one layer",
            Self::ArtifactBytes => "decompressed bytes of all the layers of an artifact",
            Self::HeaderBytes => "bytes of a tar extended header (long name, long link or PAX)",
            Self::Entries => "tar entries of an artifact",
            Self::PathBytes => "bytes of the paths of an image's files",
            Self::LinkHops => "symbolic links followed for one path",
            Self::ModuleBytes => "bytes of a module",
            Self::WindowBytes => "bytes of a zstd window",
            Self::Time => "milliseconds of reading an artifact",
        }
    }
}

/// A budget exceeded: which limit, what was asked, the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("over budget: {size} {}, more than the budget of {limit}", .what.what())]
#[non_exhaustive]
pub struct OverBudget {
    /// The limit reached.
    pub what: Limit,
    /// How much was asked for (at least).
    pub size: u64,
    /// The limit.
    pub limit: u64,
}

impl OverBudget {
    #[cold]
    fn new(what: Limit, size: u64, limit: u64) -> Self {
        Self { what, size, limit }
    }

    /// As an I/O error (what readers that charge the meter return), recognised again by
    /// [`OverBudget::from_io`].
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// The budget error inside an I/O error, if it is one.
    pub fn from_io(e: &std::io::Error) -> Option<Self> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Self>()).copied()
    }
}

/// The running costs of reading one artifact against its [`Budget`].
#[derive(Clone, Debug)]
pub struct Meter {
    budget: Budget,
    started: Instant,
    layer: u64,
    total: u64,
    entries: u64,
    paths: u64,
}

impl Meter {
    /// A meter starting now.
    pub fn new(budget: &Budget) -> Self {
        Self { budget: *budget, started: Instant::now(), layer: 0, total: 0, entries: 0, paths: 0 }
    }

    /// The budget it enforces.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// A new layer begins: its own count of bytes starts from zero.
    pub fn start_layer(&mut self) {
        self.layer = 0;
    }

    /// Charges `n` decompressed bytes (and checks the time).
    pub fn read(&mut self, n: u64) -> Result<(), OverBudget> {
        self.layer = self.layer.saturating_add(n);
        self.total = self.total.saturating_add(n);
        if self.layer > self.budget.layer_bytes {
            return Err(OverBudget::new(Limit::LayerBytes, self.layer, self.budget.layer_bytes));
        }
        if self.total > self.budget.artifact_bytes {
            return Err(OverBudget::new(Limit::ArtifactBytes, self.total, self.budget.artifact_bytes));
        }
        self.check_time()
    }

    /// Fails once the budget's time has passed.
    pub fn check_time(&self) -> Result<(), OverBudget> {
        let elapsed = self.started.elapsed();
        if elapsed > self.budget.time {
            let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            return Err(OverBudget::new(Limit::Time, ms(elapsed), ms(self.budget.time)));
        }
        Ok(())
    }

    /// Checks the size of an extended header before its body is read.
    pub fn header(&self, size: u64) -> Result<(), OverBudget> {
        if size > self.budget.header_bytes {
            return Err(OverBudget::new(Limit::HeaderBytes, size, self.budget.header_bytes));
        }
        Ok(())
    }

    /// Charges one tar entry.
    pub fn entry(&mut self) -> Result<(), OverBudget> {
        self.entries += 1;
        if self.entries > self.budget.entries {
            return Err(OverBudget::new(Limit::Entries, self.entries, self.budget.entries));
        }
        Ok(())
    }

    /// Charges `n` bytes of paths kept in memory.
    pub fn path(&mut self, n: usize) -> Result<(), OverBudget> {
        self.paths = self.paths.saturating_add(n as u64);
        if self.paths > self.budget.path_bytes {
            return Err(OverBudget::new(Limit::PathBytes, self.paths, self.budget.path_bytes));
        }
        Ok(())
    }

    /// Checks a module's size before it is read into memory.
    pub fn module(&self, size: u64) -> Result<(), OverBudget> {
        if size > self.budget.module_bytes {
            return Err(OverBudget::new(Limit::ModuleBytes, size, self.budget.module_bytes));
        }
        Ok(())
    }

    /// Checks the window a zstd frame declares before its decoder allocates it.
    pub fn window(&self, size: u64) -> Result<(), OverBudget> {
        if size > self.budget.window_bytes {
            return Err(OverBudget::new(Limit::WindowBytes, size, self.budget.window_bytes));
        }
        Ok(())
    }

    /// Checks the symbolic links followed so far for one path.
    pub fn hops(&self, hops: u32) -> Result<(), OverBudget> {
        if hops > self.budget.link_hops {
            return Err(OverBudget::new(Limit::LinkHops, u64::from(hops), u64::from(self.budget.link_hops)));
        }
        Ok(())
    }

    /// Decompressed bytes read so far, in all layers.
    pub fn bytes_read(&self) -> u64 {
        self.total
    }
}

/// A reader that charges every byte it yields to a [`Meter`]: past the budget it fails with
/// [`OverBudget`] (as an I/O error).
#[derive(Debug)]
pub(crate) struct Metered<'m, R> {
    inner: R,
    meter: &'m mut Meter,
}

impl<'m, R> Metered<'m, R> {
    pub(crate) fn new(inner: R, meter: &'m mut Meter) -> Self {
        Self { inner, meter }
    }

    pub(crate) fn meter(&mut self) -> &mut Meter {
        self.meter
    }
}

impl<R: std::io::Read> std::io::Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.read(n as u64).map_err(OverBudget::into_io)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_names_itself() {
        let budget = Budget {
            layer_bytes: 10,
            artifact_bytes: 15,
            header_bytes: 4,
            entries: 2,
            path_bytes: 8,
            link_hops: 1,
            module_bytes: 3,
            window_bytes: 1 << 20,
            time: Duration::from_secs(60),
        };
        let mut meter = Meter::new(&budget);
        meter.start_layer();
        assert!(meter.read(10).is_ok());
        assert_eq!(meter.read(1).expect_err("over").what, Limit::LayerBytes);
        meter.start_layer();
        assert_eq!(meter.read(5).expect_err("over").what, Limit::ArtifactBytes);
        assert_eq!(meter.header(5).expect_err("over").what, Limit::HeaderBytes);
        assert!(meter.entry().is_ok() && meter.entry().is_ok());
        assert_eq!(meter.entry().expect_err("over").what, Limit::Entries);
        assert_eq!(meter.path(9).expect_err("over").what, Limit::PathBytes);
        assert_eq!(meter.hops(2).expect_err("over").what, Limit::LinkHops);
        assert_eq!(meter.module(4).expect_err("over").what, Limit::ModuleBytes);
        let e = OverBudget::new(Limit::HeaderBytes, 1 << 30, 65536).into_io();
        assert_eq!(OverBudget::from_io(&e).map(|o| o.size), Some(1 << 30));
        assert_eq!(
            e.to_string(),
            "over budget: 1073741824 bytes of a tar extended header (long name, long link or PAX), \
             more than the budget of 65536"
        );
        let late = Meter::new(&Budget { time: Duration::ZERO, ..Budget::default() });
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(late.check_time().expect_err("over").what, Limit::Time);
    }
}
