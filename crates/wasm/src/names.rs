//! Well-known names with a Wasm meaning: the files runtimes look for, manifest annotations
//! and image-config labels. A leaf: every module may use it.

/// The file the solo.io compat variant and Istio look for in a tar layer (F7).
pub const SOLO_PLUGIN_FILE: &str = "plugin.wasm";
/// The file Istio's legacy fetcher looks for in a single uncompressed tar layer (F8).
pub const ISTIO_EXTENSION_FILE: &str = "extension.wasm";

/// Manifest annotation keys with a Wasm meaning.
pub mod annotations {
    /// crun's (and Harbor's) variant annotation: `compat`, `compat-smart`.
    pub const VARIANT: &str = "module.wasm.image/variant";
    /// crun's handler annotation: `wasm`, `wasm-smart`, or a handler name.
    pub const HANDLER: &str = "run.oci.handler";
    /// The `run.oci.handler` values that select a Wasm handler in crun (its alias `wasm`, the
    /// suffix rule `wasm-smart`, and the Wasm handlers' names).
    pub const HANDLER_VALUES: &[&str] = &["wasm", "wasm-smart", "wasmedge", "wasmtime", "wasmer", "wamr"];
    /// solo.io's ABI-version annotation (F6).
    pub const SOLO_ABI_VERSION: &str = "module.wasm.runtime/abi_version";
    /// solo.io's runtime-type annotation (F6).
    pub const SOLO_RUNTIME_TYPE: &str = "module.wasm.runtime/type";
}

/// Image-config label keys with a Wasm meaning.
pub mod labels {
    /// Spin ≥ 2.0's locked-app digest label (F9).
    pub const SPIN_LOCKED_APP: &str = "com.fermyon.spin.lockedAppDigest";
    /// runwasi's label making configs of layer-less images unique (F4).
    pub const RUNWASI_LAYERS: &str = "containerd.runwasi.layers";
}
