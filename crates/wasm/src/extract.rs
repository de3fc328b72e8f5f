//! Reading the Wasm bytes out of a layer: raw layers, and files inside tar, tar+gzip or
//! tar+zstd layers (F2, F3, F4, F7, F8), streamed, with bounds on the bytes read and on the
//! module's size.

use std::io::{BufRead, BufReader, Read};

use crate::classify::{EntryMatch, Location};
use crate::error::{Error, Result};
use crate::inspect::WASM_MAGIC;

/// The default cap on a module read out of a layer: 256 MiB.
pub const DEFAULT_MAX_MODULE_SIZE: u64 = 256 * 1024 * 1024;

/// The default cap on the (decompressed) bytes read to find a module in a tar layer: 16 GiB,
/// so a decompression bomb ends.
pub const DEFAULT_MAX_READ: u64 = 16 * 1024 * 1024 * 1024;

/// A module read out of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extracted {
    /// The entry's path inside the tar (normalized, no leading `/`), or empty for a raw layer.
    pub path: String,
    /// The module bytes.
    pub bytes: Vec<u8>,
}

/// Normalizes a path inside an image: no leading `/` or `./`, no empty or `.` components,
/// `..` resolved (never above the root).
pub fn normalize_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Reads the module at `location` from a layer blob: the whole blob for [`Location::Raw`],
/// the matching entry for [`Location::TarEntry`] (gzip is detected from the bytes, not the
/// media type). At most `max_size` bytes are read into memory.
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
    match location {
        Location::Raw => Ok(Extracted { path: String::new(), bytes: read_capped(reader, max_size)? }),
        Location::TarEntry(entry) => wasm_from_tar_bounded(reader, entry, max_size, max_read),
    }
}

/// Finds `entry` in a tar, tar+gzip or tar+zstd layer and reads it (at most `max_size` bytes).
///
/// Whiteout entries (`.wh.*`) are skipped; the first match wins, as layers are written with
/// one entry per path. A match that is a link is refused with its target named.
pub fn wasm_from_tar(reader: impl Read, entry: &EntryMatch, max_size: u64) -> Result<Extracted> {
    wasm_from_tar_bounded(reader, entry, max_size, DEFAULT_MAX_READ)
}

/// [`wasm_from_tar`] reading at most `max_read` bytes of tar (after decompression): beyond
/// that, [`Error::TooLarge`].
pub fn wasm_from_tar_bounded(
    reader: impl Read,
    entry: &EntryMatch,
    max_size: u64,
    max_read: u64,
) -> Result<Extracted> {
    let mut reader = BufReader::new(reader);
    let head = reader.fill_buf().map_err(Error::layer)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let tar = Bounded::new(flate2::read::MultiGzDecoder::new(reader), max_read);
        find_in_tar(tar, entry, max_size)
    } else if head.starts_with(&ZSTD_MAGIC) || is_skippable_frame(head) {
        find_in_tar(Bounded::new(ZstdFrames::new(reader), max_read), entry, max_size)
    } else {
        find_in_tar(Bounded::new(reader, max_read), entry, max_size)
    }
}

/// The magic number of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A skippable zstd frame (`0x184D2A50`–`0x184D2A5F`, as zstd:chunked writes).
fn is_skippable_frame(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

/// Errors with [`Error::TooLarge`] (as an I/O error) once more than `limit` bytes were read.
struct Bounded<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R> Bounded<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self { inner, read: 0, limit }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(format!(
                "more than {} bytes of tar read without finding the module",
                self.limit
            )));
        }
        Ok(n)
    }
}

/// A zstd stream of one or more frames (skippable frames skipped), decoded as one.
struct ZstdFrames<R: BufRead> {
    source: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        Self { source: Some(source), frame: None }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(frame) = &mut self.frame {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.source = self.frame.take().map(ruzstd::decoding::StreamingDecoder::into_inner);
            }
            let Some(mut source) = self.source.take() else { return Ok(0) };
            let head = source.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            if is_skippable_frame(head) {
                let mut header = [0u8; 8];
                source.read_exact(&mut header)?;
                let length = u64::from(u32::from_le_bytes([header[4], header[5], header[6], header[7]]));
                std::io::copy(&mut (&mut source).take(length), &mut std::io::sink())?;
                self.source = Some(source);
                continue;
            }
            let frame = ruzstd::decoding::StreamingDecoder::new(source)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            self.frame = Some(frame);
        }
    }
}

fn find_in_tar(reader: impl Read, wanted: &EntryMatch, max_size: u64) -> Result<Extracted> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(Error::layer)? {
        let mut entry = entry.map_err(Error::layer)?;
        let raw_path = entry.path().map_err(Error::layer)?.to_string_lossy().into_owned();
        let path = normalize_path(&raw_path);
        let file_name = path.rsplit('/').next().unwrap_or_default();
        if file_name.starts_with(".wh.") {
            continue;
        }
        let matches = match wanted {
            EntryMatch::Path(p) => path == normalize_path(p),
            EntryMatch::FileName(name) => file_name == name,
            EntryMatch::AnyWasm => {
                std::path::Path::new(file_name).extension().is_some_and(|e| e.eq_ignore_ascii_case("wasm"))
            }
        };
        if !matches {
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(Error::layer)?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(Error::LinkEntry { path, target });
        }
        if !kind.is_file() {
            if matches!(wanted, EntryMatch::AnyWasm) {
                continue;
            }
            return Err(Error::NotAFile { path });
        }
        if entry.size() > max_size {
            return Err(Error::TooLarge { size: entry.size(), limit: max_size });
        }
        let bytes = read_capped(&mut entry, max_size)?;
        if matches!(wanted, EntryMatch::AnyWasm) && !bytes.starts_with(&WASM_MAGIC) {
            continue;
        }
        return Ok(Extracted { path, bytes });
    }
    Err(Error::EntryNotFound { wanted: describe(wanted) })
}

fn describe(wanted: &EntryMatch) -> String {
    match wanted {
        EntryMatch::Path(p) => format!("/{}", normalize_path(p)),
        EntryMatch::FileName(name) => format!("a file named {name}"),
        _ => "a .wasm file".to_owned(),
    }
}

fn read_capped(reader: impl Read, max_size: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(max_size.saturating_add(1)).read_to_end(&mut bytes).map_err(Error::layer)?;
    if bytes.len() as u64 > max_size {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: max_size });
    }
    Ok(bytes)
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
