//! A streaming tar reader within a [`Meter`]: ustar, GNU and PAX headers, gzip and zstd
//! sniffed from the bytes.
//!
//! Written here rather than taken from the `tar` crate because of what a hostile layer sends:
//! that crate reads the whole body of a GNU long name (`L`), long link (`K`) or PAX header
//! (`x`, `g`) into memory before it yields the next entry, so one 1 MB gzip holding a 1 GiB
//! long name costs 1 GiB. Here an extended header's size is checked against
//! [`Budget::header_bytes`](crate::budget::Budget::header_bytes) before a byte of its body is
//! read, every decompressed byte is charged to the meter, and nothing but the current header
//! (and, when asked, the current entry's data) is held.
//!
//! Like Go's `archive/tar`, PAX global headers (`g`) are read and ignored, and the entry
//! types that carry no data (links, directories, devices, FIFOs) have none whatever their
//! size field says.

use std::io::{BufRead, BufReader, Read};

use crate::budget::{Meter, Metered, OverBudget};
use crate::error::{Error, Result};

const BLOCK: usize = 512;

/// What a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file (types `0`, `\0`, `7`).
    File,
    /// A directory (`5`).
    Dir,
    /// A symbolic link (`2`).
    Symlink,
    /// A hard link to an earlier entry (`1`).
    HardLink,
    /// A device, a FIFO, a sparse file, or a type nobody runs.
    Other,
}

/// One entry's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its path as the archive says it (not normalized).
    pub(crate) path: String,
    /// What it is.
    pub(crate) kind: EntryKind,
    /// A link's target.
    pub(crate) link: String,
    /// Bytes of data that follow the header.
    pub(crate) size: u64,
    /// Its position among the archive's entries (from 0; extended headers do not count).
    pub(crate) ordinal: u64,
}

/// A tar stream (already decompressed and metered).
pub(crate) struct Archive<'m, R> {
    reader: Metered<'m, R>,
    /// Data bytes of the current entry not read yet, then its padding.
    remaining: u64,
    padding: u64,
    next_ordinal: u64,
    done: bool,
}

/// Opens a layer's bytes as a tar stream: gzip and zstd are recognised from the first bytes
/// (not the media type, which pushers get wrong), every decompressed byte is charged to
/// `meter`.
pub(crate) fn open<'m>(
    blob: impl Read + 'm,
    meter: &'m mut Meter,
) -> Result<Archive<'m, Box<dyn Read + 'm>>> {
    let mut reader = BufReader::new(blob);
    let head = reader.fill_buf().map_err(Error::layer)?;
    let decoded: Box<dyn Read + 'm> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if head.starts_with(&ZSTD_MAGIC) || is_skippable_frame(head) {
        Box::new(ZstdFrames::new(reader, meter.budget().window_bytes))
    } else {
        Box::new(reader)
    };
    meter.start_layer();
    Ok(Archive {
        reader: Metered::new(decoded, meter),
        remaining: 0,
        padding: 0,
        next_ordinal: 0,
        done: false,
    })
}

/// The magic number of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A skippable zstd frame (`0x184D2A50`–`0x184D2A5F`, as zstd:chunked writes).
fn is_skippable_frame(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

impl<R: Read> Archive<'_, R> {
    /// The meter the archive charges.
    pub(crate) fn meter(&mut self) -> &mut Meter {
        self.reader.meter()
    }

    /// The next entry (the rest of the current one is skipped), `None` at the end.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        let mut long_path: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                // A stream that ends without its zero blocks: what was read stands.
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            check_checksum(&block)?;
            let size = number(&block[124..136], "size")?;
            let typeflag = block[156];
            if matches!(typeflag, b'L' | b'K' | b'x' | b'g') {
                self.meter().header(size).map_err(Error::from)?;
                let body = self.read_body(size)?;
                match typeflag {
                    b'L' => long_path = Some(c_string(&body)),
                    b'K' => long_link = Some(c_string(&body)),
                    b'x' => {
                        for (key, value) in pax_records(&body)? {
                            match key.as_str() {
                                "path" => long_path = Some(value),
                                "linkpath" => long_link = Some(value),
                                "size" => {
                                    pax_size = Some(value.parse().map_err(|_| {
                                        invalid(format!("a PAX size `{}` is not a number", printable(&value)))
                                    })?);
                                }
                                _ => {}
                            }
                        }
                    }
                    // Global headers change nothing here (as in Go's archive/tar).
                    _ => {}
                }
                continue;
            }
            let kind = match typeflag {
                b'0' | 0 | b'7' => EntryKind::File,
                b'1' => EntryKind::HardLink,
                b'2' => EntryKind::Symlink,
                b'5' => EntryKind::Dir,
                _ => EntryKind::Other,
            };
            let header_only = matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6');
            let size = if header_only { 0 } else { pax_size.unwrap_or(size) };
            let path = long_path.take().unwrap_or_else(|| header_path(&block));
            let link = long_link.take().unwrap_or_else(|| c_string(&block[157..257]));
            self.meter().entry().map_err(Error::from)?;
            self.remaining = size;
            self.padding = padding(size);
            let ordinal = self.next_ordinal;
            self.next_ordinal += 1;
            return Ok(Some(Entry { path, kind, link, size, ordinal }));
        }
    }

    /// Reads the current entry's data whole (the caller checked its size).
    pub(crate) fn read_data(&mut self) -> Result<Vec<u8>> {
        let size =
            usize::try_from(self.remaining).map_err(|_| invalid("an entry too large to read".into()))?;
        let mut bytes = vec![0; size];
        self.reader.read_exact(&mut bytes).map_err(Error::layer)?;
        self.remaining = 0;
        Ok(bytes)
    }

    /// Reads up to `n` first bytes of the current entry's data (they are consumed).
    pub(crate) fn peek_data(&mut self, n: usize) -> Result<Vec<u8>> {
        let n = n.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let mut bytes = vec![0; n];
        self.reader.read_exact(&mut bytes).map_err(Error::layer)?;
        self.remaining -= n as u64;
        Ok(bytes)
    }

    /// An extended header's body (`size` checked), without its padding.
    fn read_body(&mut self, size: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(size).map_err(|_| invalid("an extended header too large".into()))?;
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).map_err(Error::layer)?;
        self.skip(padding(size))?;
        Ok(body)
    }

    /// Reads one block; `false` at a clean end of the stream.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
        let mut filled = 0;
        while filled < BLOCK {
            match self.reader.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => return Err(invalid("the layer ends inside a tar header".into())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::layer(e)),
            }
        }
        Ok(true)
    }

    /// Reads and drops `n` bytes (decompressing them is the cost; nothing is kept).
    fn skip(&mut self, n: u64) -> Result<()> {
        let copied =
            std::io::copy(&mut (&mut self.reader).take(n), &mut std::io::sink()).map_err(Error::layer)?;
        if copied < n {
            return Err(invalid("the layer ends inside an entry".into()));
        }
        Ok(())
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[cold]
fn invalid(message: String) -> Error {
    Error::layer(std::io::Error::new(std::io::ErrorKind::InvalidData, message))
}

fn printable(s: &str) -> String {
    s.chars().take(40).flat_map(char::escape_default).collect()
}

/// The header's checksum: the unsigned (or, as some old tars wrote, signed) sum of its bytes
/// with the checksum field read as spaces.
fn check_checksum(block: &[u8; BLOCK]) -> Result<()> {
    let stored = number(&block[148..156], "checksum")?;
    let field = 148..156;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if field.contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b.cast_signed());
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(invalid("a tar header's checksum does not match (not a tar layer, or a damaged one)".into()))
    }
}

/// A numeric field: octal ASCII (NUL or space terminated), or GNU's base-256.
fn number(field: &[u8], what: &str) -> Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] == 0xff {
            return Err(invalid(format!("a negative tar {what}")));
        }
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| invalid(format!("a tar {what} beyond 64 bits")))?;
        }
        return Ok(value);
    }
    let text = field.iter().skip_while(|&&b| b == b' ' || b == 0).take_while(|&&b| b != b' ' && b != 0);
    let mut value: u64 = 0;
    for &b in text {
        if !(b'0'..=b'7').contains(&b) {
            return Err(invalid(format!("a tar {what} field is not octal")));
        }
        value = value
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| invalid(format!("a tar {what} beyond 64 bits")))?;
    }
    Ok(value)
}

/// Bytes up to the first NUL, as text.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `name`, with the POSIX `prefix` before it (only in POSIX `ustar\0` headers: GNU headers
/// keep other fields there).
fn header_path(block: &[u8; BLOCK]) -> String {
    let name = c_string(&block[0..100]);
    if &block[257..263] == b"ustar\0" {
        let prefix = c_string(&block[345..500]);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

/// The `<length> <key>=<value>\n` records of a PAX header.
fn pax_records(body: &[u8]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| invalid("a PAX record without a length".into()))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > space + 1 && l <= rest.len())
            .ok_or_else(|| invalid("a PAX record with a bad length".into()))?;
        let record = &rest[space + 1..len];
        let record =
            record.strip_suffix(b"\n").ok_or_else(|| invalid("a PAX record without its newline".into()))?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| invalid("a PAX record without `=`".into()))?;
        out.push((
            String::from_utf8_lossy(&record[..eq]).into_owned(),
            String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
        ));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A zstd stream of one or more frames (skippable frames skipped), decoded as one; a frame
/// whose window is larger than `max_window` is refused before its decoder allocates it.
struct ZstdFrames<R: BufRead> {
    source: Option<R>,
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    max_window: u64,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R, max_window: u64) -> Self {
        Self { source: Some(source), frame: None, max_window }
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
                let skipped = std::io::copy(&mut (&mut source).take(length), &mut std::io::sink())?;
                if skipped < length {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.source = Some(source);
                continue;
            }
            let frame = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(source, self.max_window)
                .map_err(|e| match e {
                    ruzstd::decoding::errors::FrameDecoderError::WindowSizeTooBig { requested, max } => {
                        OverBudget { what: crate::budget::Limit::WindowBytes, size: requested, limit: max }
                            .into_io()
                    }
                    e => std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                })?;
            self.frame = Some(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;

    fn tar(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::new(*kind));
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if !link.is_empty() {
                header.set_link_name(link).expect("link");
            }
            builder.append_data(&mut header, path, *data).expect("append");
        }
        builder.into_inner().expect("tar")
    }

    fn entries(bytes: &[u8], budget: &Budget) -> Result<Vec<(Entry, Vec<u8>)>> {
        let mut meter = Meter::new(budget);
        let mut archive = open(bytes, &mut meter)?;
        let mut out = Vec::new();
        while let Some(entry) = archive.next_entry()? {
            let data = archive.read_data()?;
            out.push((entry, data));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let long = format!("{}/app.wasm", "d".repeat(300));
        let bytes = tar(&[
            ("a.txt", b'0', b"hello", ""),
            (&long, b'0', b"\0asm", ""),
            ("dir", b'5', b"", ""),
            ("l", b'2', b"", "a.txt"),
            ("h", b'1', b"", "a.txt"),
        ]);
        let found = entries(&bytes, &Budget::default()).expect("reads");
        let paths: Vec<_> = found.iter().map(|(e, _)| e.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", long.as_str(), "dir", "l", "h"]);
        assert_eq!(found[0].1, b"hello");
        assert_eq!(found[1].1, b"\0asm");
        assert_eq!(found[3].0.kind, EntryKind::Symlink);
        assert_eq!(found[3].0.link, "a.txt");
        assert_eq!(found[4].0.kind, EntryKind::HardLink);
        assert_eq!(found.iter().map(|(e, _)| e.ordinal).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn an_extended_header_over_budget_is_refused_before_its_body() {
        // A GNU long-name header that says 1 GiB, followed by nothing: refused at once.
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(1 << 30);
        header.set_cksum();
        let mut meter = Meter::new(&Budget::default());
        let mut archive = open(&header.as_bytes()[..], &mut meter).expect("opens");
        match archive.next_entry() {
            Err(Error::OverBudget(o)) => assert_eq!((o.size, o.limit), (1 << 30, 64 << 10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pax_headers_and_bad_headers() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([("path", &b"pax/name.wasm"[..]), ("linkpath", &b"t"[..])])
            .expect("pax");
        let mut header = tar::Header::new_ustar();
        header.set_size(2);
        header.set_mode(0o644);
        builder.append_data(&mut header, "short", &b"ok"[..]).expect("append");
        let bytes = builder.into_inner().expect("tar");
        let found = entries(&bytes, &Budget::default()).expect("reads");
        assert_eq!(found[0].0.path, "pax/name.wasm");
        let mut damaged = bytes.clone();
        damaged[3] ^= 1;
        assert!(entries(&damaged, &Budget::default()).is_err(), "a bad checksum");
        assert!(entries(&bytes[..700], &Budget::default()).is_err(), "cut inside an entry");
        assert!(entries(b"not a tar at all, just text that is long enough? no", &Budget::default()).is_err());
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "size").expect("base-256"), 1 << 32);
        assert!(number(b"9", "size").is_err());
        assert!(pax_records(b"99 path=x\n").is_err());
    }
}
