//! The module a runtime would run (`wharf_wasm::image`): layers applied in order, later
//! entries winning, whiteouts, links inside the image; and the budget every read is held to,
//! against the inputs of issue 29 (a 1 GiB long name in a 1 MB gzip, a bypass of policies by
//! a second entry, a link or a `./` path).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use wharf_types::{Descriptor, Digest, MediaType};
use wharf_wasm::budget::{Budget, Limit, Meter};
use wharf_wasm::image::{self, Found};
use wharf_wasm::{EntryMatch, Error, Location, WasmLayer, extract, fuzzing};

/// One entry of a test layer.
enum E<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Dir(&'a str),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        match entry {
            E::File(path, data) => {
                header.set_size(data.len() as u64);
                // The name written as given (the tar crate refuses `//x`, which pushers send).
                header.as_mut_bytes()[..100].fill(0);
                header.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
                header.set_cksum();
                tar.append(&header, *data).expect("file");
            }
            E::Link(path, target) | E::Hard(path, target) => {
                let kind =
                    if matches!(entry, E::Link(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                header.set_entry_type(kind);
                header.set_size(0);
                tar.append_link(&mut header, path, target).expect("link");
            }
            E::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, path, &[][..]).expect("dir");
            }
        }
    }
    tar.into_inner().expect("tar")
}

fn module(tag: &str) -> Vec<u8> {
    // A valid module with a custom section naming it.
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.push(0);
    bytes.push(u8::try_from(tag.len() + 2).expect("short"));
    bytes.push(1);
    bytes.push(b'n');
    bytes.push(u8::try_from(tag.len()).expect("short"));
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// Reads `wanted` out of an image of `layers` (bottom first) within `budget`.
fn run(layers: &[Vec<u8>], wanted: &EntryMatch, budget: &Budget) -> Found {
    let mut blobs = HashMap::new();
    let stack: Vec<WasmLayer> = layers
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let descriptor =
                Descriptor::new(MediaType::OCI_LAYER_TAR.clone(), Digest::sha256(bytes), bytes.len() as u64);
            blobs.insert(descriptor.digest.clone(), Bytes::from(bytes.clone()));
            WasmLayer::new(i, descriptor, Location::TarEntry(wanted.clone()))
        })
        .rev() // as the classifier lists them: topmost first
        .collect();
    let mut found = image::find_modules(&stack, &mut blobs, &mut Meter::new(budget)).expect("in memory");
    assert_eq!(found.len(), if matches!(wanted, EntryMatch::FileName(_)) { layers.len() } else { 1 });
    found.remove(0)
}

fn app(layers: &[Vec<u8>]) -> Found {
    run(layers, &EntryMatch::Path("/app.wasm".into()), &Budget::default())
}

/// Finding 4: whatever order or spelling, the module judged is the one unpacking leaves.
#[test]
fn the_module_is_the_file_unpacking_leaves() {
    let (good, bad) = (module("good"), module("bad"));
    // A second entry at the same path wins, as tar extraction overwrites.
    let found = app(&[layer(&[E::File("app.wasm", &good), E::File("app.wasm", &bad)])]);
    assert_eq!(found.bytes.expect("found"), bad);
    // `./app.wasm` and `app.wasm` are one path.
    let found = app(&[layer(&[E::File("app.wasm", &good), E::File("./app.wasm", &bad)])]);
    assert_eq!(found.bytes.expect("found"), bad);
    let found = app(&[layer(&[E::File("./app.wasm", &good), E::File("//app.wasm", &bad)])]);
    assert_eq!(found.bytes.expect("found"), bad);
    // A symbolic link is followed inside the image (relative, absolute, chained).
    let found = app(&[layer(&[E::File("real.wasm", &bad), E::Link("app.wasm", "real.wasm")])]);
    assert_eq!((found.path.as_str(), found.bytes.expect("found")), ("real.wasm", bad.clone()));
    let found = app(&[layer(&[
        E::File("opt/v2/real.wasm", &bad),
        E::Link("opt/current", "v2"),
        E::Link("app.wasm", "/opt/current/real.wasm"),
    ])]);
    assert_eq!((found.path.as_str(), found.bytes.expect("found")), ("opt/v2/real.wasm", bad.clone()));
    // A link leaving the image's root stays in it (`..` above `/` is `/`).
    let found = app(&[layer(&[E::File("real.wasm", &bad), E::Link("app.wasm", "../../../real.wasm")])]);
    assert_eq!(found.bytes.expect("found"), bad);
    // A hard link is the file it names when it is made.
    let found = app(&[
        layer(&[E::File("real.wasm", &bad), E::Hard("app.wasm", "real.wasm")]),
        layer(&[E::File("real.wasm", &good)]),
    ]);
    assert_eq!(found.bytes.expect("found"), bad);
    // A link to nothing, or a loop, finds no module.
    assert!(matches!(
        app(&[layer(&[E::Link("app.wasm", "gone.wasm")])]).bytes,
        Err(Error::EntryNotFound { .. })
    ));
    let looped = app(&[layer(&[E::Link("app.wasm", "b"), E::Link("b", "app.wasm")])]);
    assert!(matches!(looped.bytes, Err(Error::OverBudget(o)) if o.what == Limit::LinkHops), "{looped:?}");
    // A directory or a hard link to nothing is not a module.
    assert!(matches!(app(&[layer(&[E::Dir("app.wasm")])]).bytes, Err(Error::NotAFile { .. })));
    assert!(app(&[layer(&[E::Hard("app.wasm", "missing")])]).bytes.is_err());
}

/// Layers apply bottom to top: an upper layer replaces, whiteouts remove, opaque directories
/// hide what was below, and entries land through directory links made below.
#[test]
fn layers_apply_in_order_with_whiteouts_and_links() {
    let (one, two) = (module("one"), module("two"));
    let found = app(&[layer(&[E::File("app.wasm", &one)]), layer(&[E::File("app.wasm", &two)])]);
    assert_eq!((found.layer.index, found.bytes.expect("found")), (1, two.clone()));
    // The lower layer's module, when the upper one holds something else.
    let found = app(&[layer(&[E::File("app.wasm", &one)]), layer(&[E::File("etc/motd", b"hi")])]);
    assert_eq!((found.layer.index, found.bytes.expect("found")), (0, one.clone()));
    // A whiteout removes it; a later layer may bring it back.
    let gone = app(&[layer(&[E::File("app.wasm", &one)]), layer(&[E::File(".wh.app.wasm", b"")])]);
    assert!(matches!(gone.bytes, Err(Error::EntryNotFound { .. })));
    let back = app(&[
        layer(&[E::File("app.wasm", &one)]),
        layer(&[E::File(".wh.app.wasm", b"")]),
        layer(&[E::File("app.wasm", &two)]),
    ]);
    assert_eq!(back.bytes.expect("found"), two);
    // A whiteout hides only what is below: a file of its own layer stays.
    let same = app(&[
        layer(&[E::File("app.wasm", &one)]),
        layer(&[E::File("app.wasm", &two), E::File(".wh.app.wasm", b"")]),
    ]);
    assert_eq!(same.bytes.expect("found"), two);
    // A whited-out directory takes its files along; an opaque one hides the lower ones.
    let found = run(
        &[layer(&[E::File("srv/app.wasm", &one)]), layer(&[E::File(".wh.srv", b"")])],
        &EntryMatch::Path("srv/app.wasm".into()),
        &Budget::default(),
    );
    assert!(found.bytes.is_err());
    let found = run(
        &[
            layer(&[E::File("srv/app.wasm", &one)]),
            layer(&[E::File("srv/.wh..wh..opq", b""), E::File("srv/x", b"")]),
        ],
        &EntryMatch::Path("srv/app.wasm".into()),
        &Budget::default(),
    );
    assert!(found.bytes.is_err());
    // An entry under a directory link made below lands at the link's target.
    let found = run(
        &[layer(&[E::Dir("data"), E::Link("opt", "/data")]), layer(&[E::File("opt/app.wasm", &two)])],
        &EntryMatch::Path("/data/app.wasm".into()),
        &Budget::default(),
    );
    assert_eq!((found.path.as_str(), found.bytes.expect("found")), ("data/app.wasm", two.clone()));
    // A file where a directory should be stops the lookup.
    let found =
        run(&[layer(&[E::File("opt", b"x")])], &EntryMatch::Path("opt/app.wasm".into()), &Budget::default());
    assert!(matches!(found.bytes, Err(Error::Image { .. })), "{found:?}");
    // Any `.wasm` file: the topmost layer's first that is a module.
    let found = run(
        &[
            layer(&[E::File("a.wasm", &one)]),
            layer(&[E::File("notes.wasm", b"text"), E::File("b.wasm", &two)]),
        ],
        &EntryMatch::AnyWasm,
        &Budget::default(),
    );
    assert_eq!(found.bytes.expect("found"), two);
    // A probe (F7) reads its own layer, the last entry of a name winning.
    let found = run(
        &[layer(&[E::File("plugin.wasm", &one), E::File("plugin.wasm", &two)])],
        &EntryMatch::FileName("plugin.wasm".into()),
        &Budget::default(),
    );
    assert_eq!(found.bytes.expect("found"), two);
}

/// Finding 1: a 1 MB gzip whose first entry is a 1 GiB long name costs one header: refused
/// before its body, within milliseconds and without the memory (the `tar` crate read it whole).
#[test]
fn a_gib_long_name_in_a_mib_of_gzip_costs_one_header() {
    let started = Instant::now();
    let bomb = fuzzing::long_name_gzip(1024);
    assert!(bomb.len() < 2 << 20, "the input is small: {} bytes", bomb.len());
    let made = started.elapsed();
    let started = Instant::now();
    for wanted in
        [EntryMatch::Path("app.wasm".into()), EntryMatch::FileName("plugin.wasm".into()), EntryMatch::AnyWasm]
    {
        let found = run(std::slice::from_ref(&bomb), &wanted, &Budget::default());
        match found.bytes {
            Err(Error::OverBudget(o)) => {
                assert_eq!((o.what, o.size, o.limit), (Limit::HeaderBytes, 1 << 30, 64 << 10));
            }
            other => panic!("{wanted:?}: {other:?}"),
        }
        let stream = extract::read_wasm(&bomb[..], &Location::TarEntry(wanted), 1 << 20);
        assert!(matches!(stream, Err(Error::OverBudget(o)) if o.what == Limit::HeaderBytes));
    }
    assert!(started.elapsed().as_secs() < 2, "read in {:?} (made in {made:?})", started.elapsed());
    // The zstd form: 1 GiB in ~32 KB.
    let small = fuzzing::long_name_zstd(1024);
    assert!(small.len() < 64 << 10, "{}", small.len());
    let found = run(&[small], &EntryMatch::Path("app.wasm".into()), &Budget::default());
    assert!(matches!(found.bytes, Err(Error::OverBudget(o)) if o.what == Limit::HeaderBytes), "{found:?}");
    // Under a budget that allows the header, both forms decode to the tar they stand for.
    let mut budget = Budget::default();
    budget.header_bytes = 2 << 20;
    for form in [fuzzing::long_name_gzip(2), fuzzing::long_name_zstd(2)] {
        // The long name is the name of the entry after it.
        let found = run(&[form], &EntryMatch::Path("a".repeat(2 << 20)), &budget);
        let path = found.path.clone();
        assert_eq!(
            (path.len(), found.bytes.expect("the module after the long name")),
            (2 << 20, b"\0asm\x01\0\0\0".to_vec())
        );
    }
}

/// Finding 5: every layer counts against one artifact's budget; the time budget ends a read
/// too.
#[test]
fn an_artifact_of_many_heavy_layers_stops_at_its_budget() {
    let filler = vec![0u8; 4 << 20];
    let heavy = |i: u8| {
        let mut bytes = filler.clone();
        bytes[0] = i;
        let tar = layer(&[E::File("filler", &bytes)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).expect("gzip");
        gz.finish().expect("gzip")
    };
    let layers: Vec<Vec<u8>> = (0..20).map(heavy).collect();
    let mut budget = Budget::default();
    budget.artifact_bytes = 20 << 20;
    let found = run(&layers, &EntryMatch::Path("app.wasm".into()), &budget);
    match found.bytes {
        Err(Error::OverBudget(o)) => assert_eq!(o.what, Limit::ArtifactBytes),
        other => panic!("{other:?}"),
    }
    assert!(found.layer.index < 6, "stopped at layer {}", found.layer.index);
    let mut budget = Budget::default();
    budget.layer_bytes = 1 << 20;
    let found = run(&layers[..1], &EntryMatch::Path("app.wasm".into()), &budget);
    assert!(matches!(found.bytes, Err(Error::OverBudget(o)) if o.what == Limit::LayerBytes));
    let mut budget = Budget::default();
    budget.time = std::time::Duration::ZERO;
    let found = run(&layers[..1], &EntryMatch::Path("app.wasm".into()), &budget);
    assert!(matches!(found.bytes, Err(Error::OverBudget(o)) if o.what == Limit::Time));
    let mut budget = Budget::default();
    budget.entries = 3;
    let many = layer(&[E::File("a", b""), E::File("b", b""), E::File("c", b""), E::File("d", b"")]);
    let found = run(&[many], &EntryMatch::Path("app.wasm".into()), &budget);
    assert!(matches!(found.bytes, Err(Error::OverBudget(o)) if o.what == Limit::Entries));
    // A module larger than the budget is never read into memory.
    let mut budget = Budget::default();
    budget.module_bytes = 8;
    let found = app(&[layer(&[E::File("app.wasm", &module("large enough"))])]);
    assert!(found.bytes.is_ok());
    let found = run(
        &[layer(&[E::File("app.wasm", &module("large enough"))])],
        &EntryMatch::Path("app.wasm".into()),
        &budget,
    );
    assert!(matches!(found.bytes, Err(Error::TooLarge { .. })), "{found:?}");
}

/// A zstd frame that declares a window larger than the budget is refused before its decoder
/// allocates it.
#[test]
fn a_zstd_window_over_budget_is_refused() {
    // Magic, descriptor 0, window descriptor: exponent 30 (1 TiB), then a last empty raw block.
    let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 30 << 3, 0x01, 0x00, 0x00];
    let found = run(&[frame.to_vec()], &EntryMatch::Path("app.wasm".into()), &Budget::default());
    assert!(matches!(found.bytes, Err(Error::OverBudget(o)) if o.what == Limit::WindowBytes), "{found:?}");
}
