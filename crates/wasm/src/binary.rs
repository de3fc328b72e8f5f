//! The binary's preamble and its validation: what every reader of `.wasm` bytes (inspection,
//! WIT decoding, image reading) checks first, with the bounds on what they read.

use serde::Serialize;

use crate::error::{Error, Result};

/// The four bytes every binary Wasm file starts with.
pub const WASM_MAGIC: [u8; 4] = *b"\0asm";

/// The largest input [`inspect`](crate::inspect()) and [`validate`] read (256 MiB); larger input is refused
/// before any parsing.
pub const MAX_INSPECT_SIZE: usize = 256 * 1024 * 1024;

/// How many imports, exports and custom section names [`inspect`](crate::inspect()) records; beyond that it
/// counts but does not keep them, so hostile input cannot make it allocate without bound.
pub const MAX_LISTED: usize = 10_000;

/// Core module or component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryKind {
    /// A core WebAssembly module (version 1, layer 0).
    CoreModule,
    /// A component (the component model's layer 1).
    Component,
}

impl std::fmt::Display for BinaryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CoreModule => "core module",
            Self::Component => "component",
        })
    }
}

/// What the 8-byte preamble says (`WASM-FORMATS.md` §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Header {
    /// Module or component.
    pub kind: BinaryKind,
    /// The version field (little-endian u16 at bytes 4–5).
    pub version: u16,
    /// The layer field (little-endian u16 at bytes 6–7).
    pub layer: u16,
}

impl Header {
    /// The component version `wasmparser` and today's toolchains read and write.
    pub const COMPONENT_VERSION: u16 = 0x0d;

    /// Reads the preamble: a core module is version 1 layer 0; a component is layer 1 with the
    /// current pre-standard version `0x0d`, an obsolete one (`0x0a`–`0x0c`) or the future
    /// standard version 1.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let Some(preamble) = bytes.get(..8) else {
            return Err(Error::NotWasm {
                reason: format!("{} bytes, shorter than the 8-byte preamble", bytes.len()),
            });
        };
        if preamble[..4] != WASM_MAGIC {
            let reason =
                if preamble.starts_with(b"(") || preamble.first().is_some_and(u8::is_ascii_whitespace) {
                    "no `\\0asm` magic (this looks like the `.wat` text format)"
                } else {
                    "no `\\0asm` magic"
                };
            return Err(Error::NotWasm { reason: reason.into() });
        }
        let version = u16::from_le_bytes([preamble[4], preamble[5]]);
        let layer = u16::from_le_bytes([preamble[6], preamble[7]]);
        let kind = match (version, layer) {
            (1, 0) => BinaryKind::CoreModule,
            (0x0a..=0x0d | 1, 1) => BinaryKind::Component,
            _ => return Err(Error::UnknownBinaryVersion { version, layer }),
        };
        Ok(Self { kind, version, layer })
    }

    /// Whether this is a component in an encoding older than today's (`0x0a`–`0x0c`), which
    /// current tools no longer read.
    pub fn is_obsolete_component(&self) -> bool {
        self.kind == BinaryKind::Component && (0x0a..Self::COMPONENT_VERSION).contains(&self.version)
    }
}

/// Fully validates `bytes` (every proposal `wasmparser` knows enabled): the check a registry
/// runs before accepting a layer that claims to be Wasm.
pub fn validate(bytes: &[u8]) -> Result<Header> {
    if bytes.len() > MAX_INSPECT_SIZE {
        return Err(Error::TooLarge { size: bytes.len() as u64, limit: MAX_INSPECT_SIZE as u64 });
    }
    let header = Header::parse(bytes)?;
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .map_err(|e| Error::Malformed { reason: e.to_string() })?;
    Ok(header)
}
