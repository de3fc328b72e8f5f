//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and this crate's tests.

use wharf_types::Manifest;

use crate::{Location, classify, inspect};

/// `classify` on arbitrary input: the first byte splits the rest into manifest and config.
/// A Wasm kind always has evidence; every layer or child index named is in range; the
/// verdict is the same twice (pure).
pub fn classify_bytes(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (config, manifest) = rest.split_at(rest.len() - at);
    let Ok(manifest) = Manifest::from_bytes(manifest.to_vec(), None) else {
        return;
    };
    for config in [None, Some(config)] {
        let c = classify(&manifest, config);
        if c.is_wasm() {
            assert!(!c.evidence.is_empty(), "{:?} without evidence", c.kind);
        }
        let (layers, children) = match manifest.body() {
            wharf_types::ManifestBody::Image(m) => (m.layers.len(), 0),
            wharf_types::ManifestBody::Index(i) => (0, i.manifests.len()),
            _ => (0, 0),
        };
        for l in &c.wasm_layers {
            assert!(l.index < layers, "layer index {} of {layers}", l.index);
            if matches!(l.location, Location::Raw) {
                assert!(c.is_wasm());
            }
        }
        for child in &c.wasm_children {
            assert!(child.index < children, "child index {} of {children}", child.index);
        }
        assert_eq!(c.is_wasm(), !matches!(c.kind, crate::Kind::NotWasm));
        assert_eq!(classify(&manifest, config), c, "classify is not deterministic");
    }
}

/// `inspect` on arbitrary bytes: never panics; what it accepts has a Wasm header that agrees
/// with its kind, and lists no more than it may.
pub fn inspect_bytes(data: &[u8]) {
    if let Ok(info) = quietly(|| inspect(data)) {
        assert!(data.starts_with(&crate::WASM_MAGIC));
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(crate::Header::parse(data).expect("accepted, so the header parses"), info.header);
        assert!(info.imports.len() <= crate::MAX_LISTED && info.exports.len() <= crate::MAX_LISTED);
        if info.wasi == crate::WasiFlavor::Component {
            assert!(!info.wasi_interfaces.is_empty());
        }
    }
    let _ = crate::validate(data);
}

/// The budget the extraction invariants run under: small enough that the fuzzer's memory
/// limit catches any reader that holds what it should only count.
pub const FUZZ_BUDGET: crate::budget::Budget = crate::budget::Budget {
    layer_bytes: 64 << 20,
    artifact_bytes: 128 << 20,
    header_bytes: 64 << 10,
    entries: 100_000,
    path_bytes: 16 << 20,
    link_hops: 40,
    module_bytes: 1 << 20,
    window_bytes: 8 << 20,
    time: std::time::Duration::from_secs(10),
};

/// A layer's bytes read as tar, tar+gzip or tar+zstd, alone and as the two layers of an
/// image (itself twice): never panics, never returns more than its budget allows, a module
/// found "as any `.wasm`" starts with the Wasm magic, paths come out normalized, and reading
/// the layer as one stream or as an image finds the same file.
pub fn extract_bytes(data: &[u8]) {
    use crate::budget::Meter;
    use crate::{EntryMatch, WasmLayer, extract};
    let budget = FUZZ_BUDGET;
    for wanted in [
        EntryMatch::AnyWasm,
        EntryMatch::Path("/app/main.wasm".into()),
        EntryMatch::FileName("plugin.wasm".into()),
    ] {
        let any = matches!(wanted, EntryMatch::AnyWasm);
        // A probe (a file name) reads each layer on its own; a path, the layers together.
        let probe = matches!(wanted, EntryMatch::FileName(_));
        let location = Location::TarEntry(wanted);
        let mut meter = Meter::new(&budget);
        let one = extract::read_wasm_metered(data, &location, &mut meter);
        assert!(meter.bytes_read() <= budget.artifact_bytes + (2 << 20));
        if let Ok(found) = &one {
            assert!(found.bytes.len() as u64 <= budget.module_bytes);
            assert!(!any || found.bytes.starts_with(&crate::WASM_MAGIC));
            assert_eq!(found.path, extract::normalize_path(&found.path), "the path is normalized");
        }
        // The same bytes as an image of one layer, then of two (the layer on itself).
        let descriptor = wharf_types::Descriptor::new(
            wharf_types::MediaType::OCI_LAYER_TAR.clone(),
            wharf_types::Digest::sha256(data),
            data.len() as u64,
        );
        let mut blobs = std::collections::HashMap::new();
        blobs.insert(descriptor.digest.clone(), bytes::Bytes::copy_from_slice(data));
        let stack = [
            WasmLayer::new(0, descriptor.clone(), location.clone()),
            WasmLayer::new(1, descriptor, location),
        ];
        for layers in [&stack[..1], &stack[..]] {
            let mut meter = Meter::new(&budget);
            let found =
                crate::image::find_modules(layers, &mut blobs, &mut meter).expect("blobs in memory open");
            assert_eq!(found.len(), if probe { layers.len() } else { 1 });
            assert!(meter.bytes_read() <= budget.artifact_bytes + (2 << 20));
            if let Ok(bytes) = &found[0].bytes {
                assert!(bytes.len() as u64 <= budget.module_bytes);
                assert!(!any || bytes.starts_with(&crate::WASM_MAGIC));
                if layers.len() == 1
                    && let Ok(one) = &one
                {
                    assert_eq!((&one.path, &one.bytes), (&found[0].path, bytes), "stream and image differ");
                }
            }
        }
    }
    if let Ok(raw) = extract::read_wasm_metered(data, &Location::Raw, &mut Meter::new(&budget)) {
        assert_eq!(raw.bytes, data.get(..raw.bytes.len()).unwrap_or_default());
    }
}

/// A component's WIT world from arbitrary bytes: never panics; what decodes has bounded
/// text, names every entry, and decodes the same twice.
#[cfg(feature = "wit")]
pub fn wit_bytes(data: &[u8]) {
    if let Ok(world) = quietly(|| crate::wit::world(data)) {
        assert!(world.wit.len() <= crate::wit::MAX_WIT_TEXT + 128);
        assert!(world.imports.iter().chain(&world.exports).all(|e| !e.name.is_empty()));
        assert_eq!(quietly(|| crate::wit::world(data)).ok(), Some(world), "decoding is not deterministic");
    }
    // A WIT package (or a component): decoded alike twice, and compatible with itself.
    if let Ok(decoded) = quietly(|| crate::wit::decode(data)) {
        if let crate::wit::Wit::Package(p) = &decoded {
            assert!(p.wit.len() <= crate::wit::MAX_WIT_TEXT + 128);
            assert!(!p.name.is_empty() && p.name.contains(':'));
        }
        assert_eq!(quietly(|| crate::wit::decode(data)).ok(), Some(decoded), "decoding is not deterministic");
        if let Err(crate::Error::Incompatible { reason }) = quietly(|| crate::wit::compatible(data, data)) {
            panic!("a binary is incompatible with itself: {reason}");
        }
    }
}

/// Runs `f`; under `cargo fuzz` (`cfg(fuzzing)`) with a silent panic hook, because
/// `libfuzzer-sys` installs a hook that aborts on any panic, even one `wit::world` catches (a
/// panic inside `wit-parser`). A panic `f` lets escape still aborts the fuzzer through
/// `fuzz_target!`'s own check. (The tests leave the hook alone: it is global, and they run in
/// threads.)
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(fuzzing)]
    {
        type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;
        struct Restore(Option<Hook>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(hook) = self.0.take() {
                    std::panic::set_hook(hook);
                }
            }
        }
        let _restore = Restore(Some(std::panic::take_hook()));
        std::panic::set_hook(Box::new(|_| {}));
        f()
    }
    #[cfg(not(fuzzing))]
    f()
}

/// A tar+gzip layer whose first entry is a GNU long-name (`L`) header of `mib` MiB (the body
/// all `a`), then `app.wasm`: finding 1 of issue 29, the nastiest input for a tar reader that
/// holds what it should only count. About 1 KB of gzip per MiB; made in milliseconds (one
/// deflate block of 1 MiB of `a`, repeated: each decodes the same after the one before).
pub fn long_name_gzip(mib: u64) -> Vec<u8> {
    big_entry_gzip(b'L', mib)
}

/// A tar+gzip layer whose first entry is `mib` MiB of `a` — a GNU long name (`typeflag` `L`),
/// a PAX header (`x`, whose body is then no valid PAX record), or a regular file named
/// `filler` (`0`) — then `app.wasm` (an empty module); about 1 KB of gzip per MiB.
pub fn big_entry_gzip(typeflag: u8, mib: u64) -> Vec<u8> {
    use std::io::Write as _;
    const MIB: usize = 1 << 20;
    let run = vec![b'a'; MIB];
    let header = big_entry_header(typeflag, mib << 20);
    let mut crc = flate2::Crc::new();
    crc.update(&header);
    let mut run_crc = flate2::Crc::new();
    run_crc.update(&run);
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(&header).expect("in memory");
    deflate.write_all(&run).expect("in memory");
    deflate.flush().expect("in memory");
    let first = deflate.get_ref().len();
    deflate.write_all(&run).expect("in memory");
    deflate.flush().expect("in memory");
    let stream = deflate.get_ref().clone();
    let (head, block) = stream.split_at(first);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(head);
    crc.combine(&run_crc);
    for _ in 1..mib {
        out.extend_from_slice(block);
        crc.combine(&run_crc);
    }
    // The rest of the tar, in blocks of their own (the last one final).
    let tail = tail_after_long_name();
    crc.update(&tail);
    let mut last = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    last.write_all(&tail).expect("in memory");
    out.extend(last.finish().expect("in memory"));
    let total = header.len() as u64 + (mib << 20) + tail.len() as u64;
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the length modulo 2^32.
    out.extend_from_slice(&((total & 0xffff_ffff) as u32).to_le_bytes());
    out
}

/// [`long_name_gzip`] as one zstd frame of raw-literal (RLE) blocks: about 4 bytes per
/// 128 KiB, so a 1 GiB long name fits a fuzzer's 64 KiB inputs.
pub fn long_name_zstd(mib: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 << 10;
    let header = big_entry_header(b'L', mib << 20);
    // Magic; frame header descriptor 0 (no checksum, not single segment, no content size);
    // window descriptor: exponent 7 (128 KiB).
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3];
    let block_header = |last: bool, kind: u32, size: u64| {
        let size = u32::try_from(size).expect("a block is at most 128 KiB");
        let value = u32::from(last) | (kind << 1) | (size << 3);
        value.to_le_bytes()[..3].to_vec()
    };
    out.extend(block_header(false, 0, header.len() as u64));
    out.extend_from_slice(&header);
    let mut left = mib << 20;
    while left > 0 {
        let size = left.min(BLOCK);
        out.extend(block_header(false, 1, size));
        out.push(b'a');
        left -= size;
    }
    let tail = tail_after_long_name();
    out.extend(block_header(true, 0, tail.len() as u64));
    out.extend_from_slice(&tail);
    out
}

/// A header block announcing `size` bytes of an entry of type `typeflag`.
fn big_entry_header(typeflag: u8, size: u64) -> Vec<u8> {
    let mut block = vec![0u8; 512];
    let name: &[u8] = if typeflag == b'0' { b"filler" } else { b"././@LongLink" };
    block[..name.len()].copy_from_slice(name);
    block[100..108].copy_from_slice(b"0000644\0");
    block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = typeflag;
    block[257..265].copy_from_slice(b"ustar  \0");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum::<u32>() + 8 * u32::from(b' ');
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    block
}

/// What follows the long name's body: the entry it names (`app.wasm`, an empty module) and
/// the end of the archive.
fn tail_after_long_name() -> Vec<u8> {
    let module = b"\0asm\x01\0\0\0";
    let mut block = vec![0u8; 512];
    block[..8].copy_from_slice(b"app.wasm");
    block[100..108].copy_from_slice(b"0000644\0");
    block[124..136].copy_from_slice(format!("{:011o}\0", module.len()).as_bytes());
    block[136..148].copy_from_slice(b"00000000000\0");
    block[156] = b'0';
    block[257..265].copy_from_slice(b"ustar  \0");
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum::<u32>() + 8 * u32::from(b' ');
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tail = block;
    let mut data = module.to_vec();
    data.resize(512, 0);
    tail.extend(data);
    tail.extend([0u8; 1024]);
    tail
}
