//! Wasm policies per repository pattern (`[[wasm_policy]]`): what a push must be to be kept —
//! Wasm only, a module that validates, allowed WASI versions, no denied imports, a maximum
//! module size. Checked before the PUT is acknowledged; a refused push stores nothing.
//!
//! A policy judges what a runtime would run: for a tar layout, the file the entrypoint names in
//! the image's filesystem after every layer (`wharf_wasm::image`), and a module that cannot be
//! determined (a layer over budget, a link that leads nowhere, a layer not in the repository)
//! refuses the push: fail-closed, with a message that says why.

use serde_json::Value;
use wharf_auth::Pattern;
use wharf_types::Repository;

use crate::error::{Error, Result};

/// One `[[wasm_policy]]` table of the config file.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WasmPolicyConfig {
    /// A name for messages [default: `wasm_policy[<n>]`].
    pub name: Option<String>,
    /// Repository patterns (`*` within a component, `**` any depth), as `[[access]]`.
    pub repositories: Vec<String>,
    /// Only Wasm artifacts (any layout) may be pushed; manifests with a `subject` (signatures,
    /// SBOMs) are still accepted [default: false].
    #[serde(default)]
    pub wasm_only: bool,
    /// Every module must validate [default: false].
    #[serde(default)]
    pub validate: bool,
    /// Allowed WASI versions: `unstable`, `preview1`, or a version prefix (`0.2` allows every
    /// 0.2.x, `0.2.3` only that one); modules importing no WASI pass.
    pub wasi: Option<Vec<String>>,
    /// Denied imports: an interface (`wasi:sockets/tcp`, with or without `@version`), a
    /// `*`-suffixed prefix (`wasi:sockets/*`), or a core module name (`wasi_snapshot_preview1`).
    #[serde(default)]
    pub deny_imports: Vec<String>,
    /// The largest module, in bytes or with a unit (`10MiB`, `512KiB`, `1GB`).
    pub max_module_size: Option<crate::units::ByteSize>,
}

/// A checked policy.
#[derive(Clone, Debug)]
pub struct WasmPolicy {
    name: String,
    patterns: Vec<Pattern>,
    wasm_only: bool,
    validate: bool,
    wasi: Option<Vec<String>>,
    deny_imports: Vec<String>,
    max_module_size: Option<u64>,
}

/// Every `[[wasm_policy]]`, in file order.
#[derive(Clone, Debug, Default)]
pub struct WasmPolicies(Vec<WasmPolicy>);

impl WasmPolicies {
    /// Checks the config tables (patterns, sizes, versions).
    pub fn from_config(tables: &[WasmPolicyConfig]) -> Result<Self> {
        let mut out = Vec::new();
        for (i, t) in tables.iter().enumerate() {
            let name = t.name.clone().unwrap_or_else(|| format!("wasm_policy[{i}]"));
            let bad = |what: String| Error::BadRequest(format!("{name}: {what}"));
            let patterns = Pattern::parse_list(&t.repositories).map_err(bad)?;
            let max_module_size = t.max_module_size.map(|s| s.0);
            if let Some(versions) = &t.wasi
                && let Some(v) = versions.iter().find(|v| !valid_wasi(v))
            {
                return Err(bad(format!(
                    "`wasi` entry `{v}` is not `unstable`, `preview1` or a version like `0.2`"
                )));
            }
            if let Some(p) = t.deny_imports.iter().find(|p| p.is_empty() || p[..p.len() - 1].contains('*')) {
                return Err(bad(format!("`deny_imports` entry `{p}`: `*` only at the end")));
            }
            out.push(WasmPolicy {
                name,
                patterns,
                wasm_only: t.wasm_only,
                validate: t.validate,
                wasi: t.wasi.clone(),
                deny_imports: t.deny_imports.clone(),
                max_module_size,
            });
        }
        Ok(Self(out))
    }

    /// The policies applying to `repo`.
    pub fn matching(&self, repo: &Repository) -> Vec<&WasmPolicy> {
        self.0.iter().filter(|p| p.patterns.iter().any(|pat| pat.matches(repo.as_str()))).collect()
    }

    /// Whether there is no policy at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl WasmPolicy {
    /// Whether checking it needs the modules read before the push is acknowledged.
    pub(crate) fn needs_modules(&self) -> bool {
        self.wasm_only
            || self.validate
            || self.wasi.is_some()
            || !self.deny_imports.is_empty()
            || self.max_module_size.is_some()
    }

    /// Checks an artifact record (with its `modules`) against the policy: `Err` names the
    /// policy, the rule and what broke it.
    pub(crate) fn check(&self, record: &Value, has_subject: bool) -> Result<()> {
        let name = &self.name;
        if self.wasm_only && record["wasm"] != true && !has_subject {
            return Err(Error::Denied {
                message: format!(
                    "policy {name}: only Wasm artifacts may be pushed here (wasm_only), and this {} is not WebAssembly in any known layout",
                    record["mediaType"].as_str().unwrap_or("manifest")
                ),
                challenge: None,
            });
        }
        let modules = record["modules"].as_array().map(Vec::as_slice).unwrap_or_default();
        for layer in modules {
            let module = &layer["module"];
            let at = if layer["layer"].is_null() {
                "the image".to_owned()
            } else {
                format!("layer {}", layer["layer"])
            };
            if let Some(error) = layer["error"].as_str() {
                if self.validate {
                    return Err(Error::ManifestInvalid(format!(
                        "policy {name} (validate): {at} is not valid WebAssembly: {error}"
                    )));
                }
                // Fail-closed: what cannot be read cannot be judged, so it is not kept.
                if self.needs_modules() {
                    return Err(Error::Denied {
                        message: format!(
                            "policy {name}: the module of {at} cannot be determined, so the push is refused: {error}"
                        ),
                        challenge: None,
                    });
                }
                continue;
            }
            if self.validate && module["validation"]["valid"] == false {
                let why = module["validation"]["error"].as_str().unwrap_or_default();
                return Err(Error::ManifestInvalid(format!(
                    "policy {name} (validate): {at} is not valid WebAssembly: {why}"
                )));
            }
            if module.is_null() {
                continue;
            }
            if let (Some(max), Some(size)) = (self.max_module_size, module["size"].as_u64())
                && size > max
            {
                return Err(Error::Denied {
                    message: format!(
                        "policy {name} (max_module_size): {at} holds a module of {size} bytes, more than {max}"
                    ),
                    challenge: None,
                });
            }
            if let (Some(allowed), Some(version)) = (&self.wasi, module["wasiVersion"].as_str())
                && !allowed.iter().any(|a| wasi_allows(a, version))
            {
                return Err(Error::Denied {
                    message: format!(
                        "policy {name} (wasi): {at} targets WASI {version}; allowed: {}",
                        allowed.join(", ")
                    ),
                    challenge: None,
                });
            }
            for import in module["imports"].as_array().map(Vec::as_slice).unwrap_or_default() {
                let interface = import["name"].as_str().unwrap_or_default();
                let core_module = import["module"].as_str().unwrap_or_default();
                let denied = self.deny_imports.iter().find(|p| {
                    if core_module.is_empty() {
                        wharf_wasm::wit::interface_matches(interface, p)
                    } else {
                        wharf_wasm::wit::interface_matches(core_module, p)
                    }
                });
                if let Some(pattern) = denied {
                    let what = if core_module.is_empty() {
                        interface.to_owned()
                    } else {
                        format!("{core_module}::{interface}")
                    };
                    return Err(Error::Denied {
                        message: format!("policy {name} (deny_imports = {pattern}): {at} imports {what}"),
                        challenge: None,
                    });
                }
            }
        }
        Ok(())
    }
}

fn valid_wasi(v: &str) -> bool {
    v == "unstable"
        || v == "preview1"
        || (!v.is_empty() && v.split(['.', '-']).next().is_some_and(|m| m.parse::<u32>().is_ok()))
}

/// `preview1`/`unstable` exactly; a version allows itself and, as a prefix of whole
/// components, its patch versions and pre-releases (`0.2` allows `0.2.3`, not `0.20.0`).
pub(crate) fn wasi_allows(allowed: &str, version: &str) -> bool {
    version == allowed
        || version.strip_prefix(allowed).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_versions() {
        assert_eq!(crate::units::parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(crate::units::parse_size("300 kB"), Ok(300_000));
        assert_eq!(crate::units::parse_size("42"), Ok(42));
        assert!(crate::units::parse_size("ten").is_err());
        assert!(crate::units::parse_size("1 parsec").is_err());
        let size = |json: &str| serde_json::from_str::<crate::units::ByteSize>(json).map(|s| s.0);
        assert_eq!(size("42").ok(), Some(42));
        assert_eq!(size("\"1KiB\"").ok(), Some(1024));
        assert!(size("-1").is_err() && size("true").is_err() && size("\"1 parsec\"").is_err());
        assert!(
            wasi_allows("0.2", "0.2.3")
                && wasi_allows("0.2.3", "0.2.3")
                && wasi_allows("0.3", "0.3.0-rc-2025-09-16")
        );
        assert!(
            !wasi_allows("0.2", "0.20.0")
                && !wasi_allows("0.2.3", "0.2.30")
                && !wasi_allows("preview1", "0.2.0")
        );
        assert!(valid_wasi("preview1") && valid_wasi("0.2") && !valid_wasi("p2") && !valid_wasi(""));
    }
}
