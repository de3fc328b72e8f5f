//! The one error type of `wharf-wasm`.

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong inspecting, extracting or building Wasm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not binary WebAssembly.
    #[error("not a WebAssembly binary: {reason}")]
    NotWasm {
        /// Why.
        reason: String,
    },
    /// The preamble has the Wasm magic but a version/layer pair no encoding uses.
    #[error("unknown WebAssembly binary version {version:#x}, layer {layer:#x}")]
    UnknownBinaryVersion {
        /// The version field.
        version: u16,
        /// The layer field.
        layer: u16,
    },
    /// A component in a pre-standard encoding current tools cannot read.
    #[error(
        "component binary version {version:#x} is an encoding current tools cannot read \
         (they read {current:#x})"
    )]
    UnsupportedComponentEncoding {
        /// The version field.
        version: u16,
        /// The version current tools read ([`Header::COMPONENT_VERSION`](crate::Header::COMPONENT_VERSION)).
        current: u16,
    },
    /// The binary's sections do not parse (or, for [`crate::validate`], do not validate).
    #[error("malformed WebAssembly: {reason}")]
    Malformed {
        /// `wasmparser`'s message, with the offset.
        reason: String,
    },
    /// A version's WIT breaks the earlier version of its semver series ([`crate::wit::compatible`]).
    #[error("{reason}")]
    Incompatible {
        /// What broke (`function `greet` of `acme:greeter/hello` was removed`).
        reason: String,
    },
    /// A WIT package published under a name or version other than the one it declares.
    #[error("{reason}")]
    PackageMismatch {
        /// What disagrees (`the WIT package declares acme:greeter@0.1.0, not 0.2.0`).
        reason: String,
    },
    /// Input larger than allowed.
    #[error("{size} bytes exceed the limit of {limit} bytes")]
    TooLarge {
        /// The size seen (or read so far).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The layer could not be read as a tar (or tar+gzip) stream.
    #[error("reading the layer: {0}")]
    Layer(#[source] std::io::Error),
    /// No entry of the layer matched.
    #[error("the layer has no {wanted}")]
    EntryNotFound {
        /// What was looked for.
        wanted: String,
    },
    /// The matching entry is a link, not the module.
    #[error("{path} in the layer is a link to {target}, not a file")]
    LinkEntry {
        /// The entry.
        path: String,
        /// Where it points.
        target: String,
    },
    /// The matching entry is a directory or device.
    #[error("{path} in the layer is not a regular file")]
    NotAFile {
        /// The entry.
        path: String,
    },
    /// Reading the layers went over the [`Budget`](crate::budget::Budget): nothing more is
    /// read.
    #[error("{0}")]
    OverBudget(crate::budget::OverBudget),
    /// A layer the module depends on cannot be had (not stored where it was looked for).
    #[error("{0}")]
    Unavailable(String),
    /// The image's filesystem does not lead to the module (a path through a file, a link that
    /// goes nowhere a stream can reach).
    #[error("the image's files: {reason}")]
    Image {
        /// Why.
        reason: String,
    },
    /// A layout name [`WasmLayout`](crate::WasmLayout) does not know.
    #[error("unknown Wasm layout `{name}` (wasm-to-oci, cncf-artifact)")]
    UnknownLayout {
        /// The name given.
        name: String,
    },
    /// Building an artifact failed (the manifest did not parse back, for example).
    #[error("building the artifact: {0}")]
    Build(#[from] wharf_types::Error),
}

impl From<crate::budget::OverBudget> for Error {
    /// A module over [`Budget::module_bytes`](crate::budget::Budget::module_bytes) is
    /// [`Error::TooLarge`], as a module over a caller's cap always was; every other limit is
    /// [`Error::OverBudget`].
    fn from(over: crate::budget::OverBudget) -> Self {
        match over.what {
            crate::budget::Limit::ModuleBytes => Self::TooLarge { size: over.size, limit: over.limit },
            _ => Self::OverBudget(over),
        }
    }
}

impl Error {
    /// A layer read failed: over budget (the meter said so, through the reader), or the bytes
    /// are not what they claim.
    #[cold]
    pub(crate) fn layer(e: std::io::Error) -> Self {
        match crate::budget::OverBudget::from_io(&e) {
            Some(over) => over.into(),
            None => Self::Layer(e),
        }
    }
}
