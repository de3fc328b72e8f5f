//! Reading the Wasm bytes out of one layer: raw layers, and files inside tar, tar+gzip or
//! tar+zstd layers (F2, F3, F4, F7, F8), streamed, within a [`Budget`]: bytes decompressed,
//! the size of tar extended headers, entries, the module's size, time.
//!
//! A tar layer is read as it would be unpacked: a later entry at a path replaces an earlier
//! one, whiteouts are not files, and the module is the file the path names at the end. An
//! image of several layers is read with [`image::find_modules`](crate::image::find_modules),
//! which applies them in order.

use std::io::Read;

use crate::budget::{Budget, Meter};
use crate::error::{Error, Result};
pub use crate::location::normalize_path;
use crate::location::{EntryMatch, Location};

/// The default cap on a module read out of a layer: 256 MiB ([`Budget::module_bytes`]).
pub const DEFAULT_MAX_MODULE_SIZE: u64 = 256 * 1024 * 1024;

/// The default cap on the (decompressed) bytes read out of one layer: 4 GiB
/// ([`Budget::layer_bytes`]).
pub const DEFAULT_MAX_READ: u64 = 4 * 1024 * 1024 * 1024;

/// A module read out of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extracted {
    /// The entry's path inside the tar (normalized, no leading `/`), or empty for a raw layer.
    pub path: String,
    /// The module bytes.
    pub bytes: Vec<u8>,
}

/// Reads the module at `location` from a layer blob: the whole blob for [`Location::Raw`],
/// the matching entry for [`Location::TarEntry`] (gzip and zstd are detected from the bytes,
/// not the media type). At most `max_size` bytes are read into memory, within the default
/// [`Budget`] otherwise.
///
/// # Example
/// ```
/// use wharf_wasm::{extract, EntryMatch, Location};
///
/// let module = b"\0asm\x01\0\0\0";
/// let mut tar = tar::Builder::new(Vec::new());
/// let mut header = tar::Header::new_gnu();
/// header.set_size(module.len() as u64);
/// header.set_mode(0o644);
/// tar.append_data(&mut header, "app.wasm", &module[..])?;
/// let layer = tar.into_inner()?;
///
/// let found = extract::read_wasm(
///     &layer[..],
///     &Location::TarEntry(EntryMatch::Path("app.wasm".into())),
///     extract::DEFAULT_MAX_MODULE_SIZE,
/// )?;
/// assert_eq!(found.bytes, module);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_wasm(reader: impl Read, location: &Location, max_size: u64) -> Result<Extracted> {
    read_wasm_bounded(reader, location, max_size, DEFAULT_MAX_READ)
}

/// [`read_wasm`] reading at most `max_read` (decompressed) bytes of a tar layer.
pub fn read_wasm_bounded(
    reader: impl Read,
    location: &Location,
    max_size: u64,
    max_read: u64,
) -> Result<Extracted> {
    let budget = Budget {
        module_bytes: max_size,
        layer_bytes: max_read,
        artifact_bytes: max_read,
        ..Budget::default()
    };
    read_wasm_metered(reader, location, &mut Meter::new(&budget))
}

/// Reads the module at `location` from one layer blob, charging `meter`.
pub fn read_wasm_metered(reader: impl Read, location: &Location, meter: &mut Meter) -> Result<Extracted> {
    match location {
        Location::Raw => {
            let limit = meter.budget().module_bytes;
            let mut bytes = Vec::new();
            crate::budget::Metered::new(reader, meter)
                .take(limit.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(Error::layer)?;
            if bytes.len() as u64 > limit {
                return Err(Error::TooLarge { size: bytes.len() as u64, limit });
            }
            Ok(Extracted { path: String::new(), bytes })
        }
        Location::TarEntry(entry) => {
            let (path, bytes) = crate::image::one_layer(reader, entry, meter)?;
            Ok(Extracted { path, bytes })
        }
    }
}

/// Finds `entry` in a tar, tar+gzip or tar+zstd layer and reads it (at most `max_size` bytes).
///
/// Whiteout entries (`.wh.*`) are not files; a later entry at a path replaces an earlier
/// one, as unpacking does; a match that is a link to an entry the stream has passed is refused
/// (read the layers with [`image::find_modules`](crate::image::find_modules) to follow links).
pub fn wasm_from_tar(reader: impl Read, entry: &EntryMatch, max_size: u64) -> Result<Extracted> {
    wasm_from_tar_bounded(reader, entry, max_size, DEFAULT_MAX_READ)
}

/// [`wasm_from_tar`] reading at most `max_read` bytes of tar (after decompression): beyond
/// that, [`Error::OverBudget`].
pub fn wasm_from_tar_bounded(
    reader: impl Read,
    entry: &EntryMatch,
    max_size: u64,
    max_read: u64,
) -> Result<Extracted> {
    read_wasm_bounded(reader, &Location::TarEntry(entry.clone()), max_size, max_read)
}

/// [`read_wasm_bounded`] for an async reader: the tar walk runs on tokio's blocking pool.
///
/// Must be called from within a tokio runtime.
#[cfg(feature = "tokio")]
pub async fn read_wasm_async<R>(
    reader: R,
    location: Location,
    max_size: u64,
    max_read: u64,
) -> Result<Extracted>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || read_wasm_bounded(bridge, &location, max_size, max_read))
        .await
        .map_err(|e| Error::layer(std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path("/app.wasm"), "app.wasm");
        assert_eq!(normalize_path("./a//b/./c.wasm"), "a/b/c.wasm");
        assert_eq!(normalize_path("/../../etc/x"), "etc/x");
        assert_eq!(normalize_path("a/b/../c"), "a/c");
    }
}
