//! The CNCF TAG-Runtime Wasm OCI artifact config (`application/vnd.wasm.config.v0+json`).

use serde::{Deserialize, Serialize};

use crate::binary::BinaryKind;

/// The config of a CNCF Wasm OCI artifact (F5), as `oci-wasm` and `wkg` write it.
///
/// # Example
/// ```
/// use wharf_wasm::{BinaryKind, WasmConfig};
///
/// let config: WasmConfig = serde_json::from_str(r#"{"created":"2024-06-25T15:58:49Z",
///   "author":null,"architecture":"wasm","os":"wasip1","layerDigests":[],"component":null}"#)?;
/// assert_eq!(config.binary_kind(), Some(BinaryKind::CoreModule));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WasmConfig {
    /// When the artifact was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default)]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip1` for a core module, `wasip2` for a component.
    pub os: String,
    /// The digests of the manifest's layers, in order.
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// A component's world: present when `os` is `wasip2`.
    #[serde(default)]
    pub component: Option<Component>,
}

/// The world of a component, in a [`WasmConfig`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Component {
    /// Exported interfaces (`wasi:http/incoming-handler@0.2.0`).
    #[serde(default)]
    pub exports: Vec<String>,
    /// Imported interfaces.
    #[serde(default)]
    pub imports: Vec<String>,
    /// The target world, when known (`wasi:http/proxy@0.2.0`).
    #[serde(default)]
    pub target: Option<String>,
}

impl WasmConfig {
    /// Module or component, as the config states it: `wasip2` or a `component` means a
    /// component, `wasip1` a core module.
    pub fn binary_kind(&self) -> Option<BinaryKind> {
        if self.component.is_some() || self.os.eq_ignore_ascii_case("wasip2") {
            Some(BinaryKind::Component)
        } else if self.os.eq_ignore_ascii_case("wasip1") {
            Some(BinaryKind::CoreModule)
        } else {
            None
        }
    }
}
