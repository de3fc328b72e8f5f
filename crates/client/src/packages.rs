//! Wasm packages as `wkg` finds them: `/.well-known/wasm-pkg/registry.json` on a registry's
//! host maps `namespace:name@version` to `<registry>/<prefix><namespace>/<name>:<version>`
//! (wasm-pkg-tools' `registry-metadata.md`); and Wharf's versions API.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use wharf_types::{PackageName, PackageVersion, Reference, Registry, Repository};

use crate::client::{Client, expect, read_limited};
use crate::error::{Error, Result};

/// The path of the discovery file.
pub const REGISTRY_METADATA_PATH: &str = "/.well-known/wasm-pkg/registry.json";
/// The largest discovery file or versions answer read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// The scope a Wharf asks for its personal-token endpoints.
const TOKENS_SCOPE: &str = "registry:tokens:*";

/// Where a registry keeps Wasm packages: the registry and prefix its discovery file names, or
/// (no file) the registry itself with no prefix — what `wkg` falls back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRegistry {
    registry: Registry,
    prefix: String,
    /// Wharf's per-namespace prefixes (`"wharf": {"namespaces": …}`), which `wkg` ignores.
    namespaces: BTreeMap<String, (Registry, String)>,
    discovered: bool,
}

impl PackageRegistry {
    /// The mapping `wkg` uses without a discovery file: `registry`, no prefix.
    pub fn plain(registry: Registry) -> Self {
        Self { registry, prefix: String::new(), namespaces: BTreeMap::new(), discovered: false }
    }

    /// Reads a discovery file (`{"preferredProtocol":"oci","oci":{"registry":…,
    /// "namespacePrefix":…}}`, or the older `ociRegistry`/`ociNamespacePrefix`) found on
    /// `host`; the registry defaults to `host`.
    pub fn from_json(host: &Registry, body: &[u8]) -> Result<Self> {
        let bad = |why: String| Error::InvalidResponse(format!("{REGISTRY_METADATA_PATH} on {host}: {why}"));
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let protocol = value["preferredProtocol"].as_str();
        if protocol.is_some_and(|p| p != "oci") && value.get("oci").is_none() {
            return Err(bad(format!(
                "the registry serves packages over `{}`, not OCI",
                protocol.unwrap_or("")
            )));
        }
        let read = |oci: &serde_json::Value, registry: Option<String>, prefix: Option<String>| {
            let registry = match text(&oci["registry"]).or(registry) {
                Some(r) => r.parse::<Registry>().map_err(|e| bad(format!("registry `{r}`: {e}")))?,
                None => host.clone(),
            };
            let prefix = text(&oci["namespacePrefix"]).or(prefix).unwrap_or_default();
            check_prefix(&prefix).map_err(|e| bad(format!("namespacePrefix `{prefix}`: {e}")))?;
            Ok::<_, Error>((registry, prefix))
        };
        let (registry, prefix) =
            read(&value["oci"], text(&value["ociRegistry"]), text(&value["ociNamespacePrefix"]))?;
        let mut namespaces = BTreeMap::new();
        for (ns, oci) in value["wharf"]["namespaces"].as_object().into_iter().flatten() {
            namespaces.insert(ns.clone(), read(oci, Some(registry.to_string()), None)?);
        }
        Ok(Self { registry, prefix, namespaces, discovered: true })
    }

    /// Whether the registry served a discovery file.
    pub fn discovered(&self) -> bool {
        self.discovered
    }

    /// The registry packages live in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The prefix joined to a namespace (`""`, or a path ending in `/`).
    pub fn namespace_prefix(&self) -> &str {
        &self.prefix
    }

    /// The repository (with its registry) of `package`, tagged with `version` (without one,
    /// `latest`, as every reference).
    pub fn reference(&self, package: &PackageName, version: Option<&PackageVersion>) -> Result<Reference> {
        let (registry, prefix) = self
            .namespaces
            .get(package.namespace())
            .map_or((&self.registry, self.prefix.as_str()), |(r, p)| (r, p.as_str()));
        let path = format!("{prefix}{}/{}", package.namespace(), package.name());
        let repository: Repository = path.parse().map_err(|e: wharf_types::Error| {
            Error::InvalidResponse(format!("{package} maps to `{path}`, not a repository: {e}"))
        })?;
        let reference = Reference::new(registry.as_str(), repository)
            .map_err(|e| Error::InvalidResponse(format!("registry `{registry}`: {e}")))?;
        Ok(match version {
            Some(v) => reference.with_tag(v.tag()),
            None => reference,
        })
    }

    /// The package this mapping puts at `reference`'s repository (`<prefix><ns>/<name>` on
    /// its registry), if any: the inverse of [`reference`](Self::reference).
    pub fn package(&self, reference: &Reference) -> Option<PackageName> {
        let path = reference.repository().as_str();
        let (head, name) = path.rsplit_once('/')?;
        let namespace = head.rsplit('/').next().unwrap_or(head);
        let package: PackageName = format!("{namespace}:{name}").parse().ok()?;
        let here = self.reference(&package, None).ok()?;
        (here.registry() == reference.registry() && here.repository() == reference.repository())
            .then_some(package)
    }
}

/// A prefix is empty or a repository path followed by `/`.
fn check_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    let Some(path) = prefix.strip_suffix('/') else { return Err("does not end in `/`".into()) };
    path.parse::<Repository>().map(drop).map_err(|e| e.to_string())
}

impl Client {
    /// Where `registry` keeps Wasm packages: its `/.well-known/wasm-pkg/registry.json`, or,
    /// when it serves none (any error status), the registry itself with no prefix, as `wkg`
    /// does. A connection failure is an error.
    pub async fn package_registry(&self, registry: &Registry) -> Result<PackageRegistry> {
        let url = format!("{}{REGISTRY_METADATA_PATH}", self.base_url(registry));
        let response = self.send(registry, "", || self.http().get(&url)).await?;
        if !response.status().is_success() {
            return Ok(PackageRegistry::plain(registry.clone()));
        }
        let body = read_limited(response, MAX_ANSWER, "discovery file").await?;
        PackageRegistry::from_json(registry, &body)
    }

    /// A Wharf's upstreams, when it mirrors other registries (`GET /v2/_wharf/upstreams`:
    /// name, URL, prefix, time-to-live, sync rules and their last run, sync jobs waiting; for
    /// administrators); `None` where the registry has no such API.
    pub async fn upstreams(&self, registry: &Registry) -> Result<Option<serde_json::Value>> {
        let url = format!("{}/v2/_wharf/upstreams", self.base_url(registry));
        let response = self.send(registry, "", || self.http().get(&url)).await?;
        if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
            return Ok(None);
        }
        let response = expect(response, &[StatusCode::OK]).await?;
        let body = read_limited(response, MAX_ANSWER, "upstreams answer").await?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::InvalidResponse(format!("the upstreams of {}: {e}", registry.as_str())))?;
        Ok(value["upstreams"].is_array().then_some(value))
    }

    /// The caller's personal access tokens on a Wharf (`GET /v2/_wharf/tokens`, signed in
    /// as a user: a token for `registry:tokens:*`).
    pub async fn personal_tokens(&self, registry: &Registry) -> Result<serde_json::Value> {
        let url = format!("{}/v2/_wharf/tokens", self.base_url(registry));
        let response = self.send(registry, TOKENS_SCOPE, || self.http().get(&url)).await?;
        let response = expect(response, &[StatusCode::OK]).await?;
        let body = read_limited(response, MAX_ANSWER, "tokens answer").await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::InvalidResponse(format!("the tokens of {}: {e}", registry.as_str())))
    }

    /// Makes a personal access token on a Wharf (`POST /v2/_wharf/tokens` with `{"name",
    /// "grants": [{"repositories", "actions"}], "expiresIn"}`): the answer holds its secret,
    /// shown this once.
    pub async fn create_personal_token(
        &self,
        registry: &Registry,
        request: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let url = format!("{}/v2/_wharf/tokens", self.base_url(registry));
        let response = self.send(registry, TOKENS_SCOPE, || self.http().post(&url).json(request)).await?;
        let response = expect(response, &[StatusCode::CREATED]).await?;
        let body = read_limited(response, MAX_ANSWER, "token answer").await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::InvalidResponse(format!("the token made on {}: {e}", registry.as_str())))
    }

    /// Revokes the personal access token `id` on a Wharf (`DELETE /v2/_wharf/tokens/<id>`).
    pub async fn revoke_personal_token(&self, registry: &Registry, id: &str) -> Result<()> {
        let url = format!("{}/v2/_wharf/tokens/{id}", self.base_url(registry));
        let response = self.send(registry, TOKENS_SCOPE, || self.http().delete(&url)).await?;
        expect(response, &[StatusCode::NO_CONTENT, StatusCode::OK, StatusCode::ACCEPTED]).await?;
        Ok(())
    }

    /// Wharf's record of an artifact (`GET /v2/<name>/_wharf/artifacts/<reference>`: its
    /// layout, module, and under trust policies its verified signatures `trust` and the
    /// policies' `trustVerdict`); `None` where the registry has no such API (any other
    /// registry) or no such artifact.
    pub async fn wharf_artifact(&self, reference: &Reference) -> Result<Option<serde_json::Value>> {
        let url = format!(
            "{}/v2/{}/_wharf/artifacts/{}",
            self.base_url(reference),
            reference.repository(),
            reference.target()
        );
        let scope = format!("repository:{}:pull", reference.repository());
        let response = self.send(reference, &scope, || self.http().get(&url)).await?;
        if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
            return Ok(None);
        }
        let response = expect(response, &[StatusCode::OK]).await?;
        let body = read_limited(response, MAX_ANSWER, "artifact record").await?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::InvalidResponse(format!("the artifact record of {reference}: {e}")))?;
        Ok(value["digest"].is_string().then_some(value))
    }

    /// Wharf's record of the package versions in `reference`'s repository
    /// (`GET /v2/<name>/_wharf/versions`: versions in semver order with kind, WIT, size, push
    /// time, yanked state, dependencies; other tags apart); `None` where the registry has no
    /// such API (any other registry) or no such repository.
    pub async fn package_versions(&self, reference: &Reference) -> Result<Option<serde_json::Value>> {
        let url = format!("{}/v2/{}/_wharf/versions", self.base_url(reference), reference.repository());
        let scope = format!("repository:{}:pull", reference.repository());
        let response = self.send(reference, &scope, || self.http().get(&url)).await?;
        if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
            return Ok(None);
        }
        let response = expect(response, &[StatusCode::OK]).await?;
        let body = read_limited(response, MAX_ANSWER, "versions answer").await?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::InvalidResponse(format!("the versions of {reference}: {e}")))?;
        Ok(value["versions"].is_array().then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_files() {
        let host: Registry = "127.0.0.1:5000".parse().expect("valid");
        let greeter: PackageName = "acme:greeter".parse().expect("valid");
        let v = "0.1.0+b.1".parse().expect("valid");
        let at = |json: &str| {
            let found = PackageRegistry::from_json(&host, json.as_bytes()).expect(json);
            found.reference(&greeter, Some(&v)).expect("maps").to_string()
        };
        assert_eq!(
            at(
                r#"{"preferredProtocol":"oci","oci":{"registry":"127.0.0.1:5000","namespacePrefix":"pkgs/"}}"#
            ),
            "127.0.0.1:5000/pkgs/acme/greeter:0.1.0_b.1"
        );
        assert_eq!(at(r#"{"oci":{}}"#), "127.0.0.1:5000/acme/greeter:0.1.0_b.1");
        assert_eq!(
            at(r#"{"ociRegistry":"ghcr.io","ociNamespacePrefix":"org/"}"#),
            "ghcr.io/org/acme/greeter:0.1.0_b.1"
        );
        assert_eq!(
            at(
                r#"{"oci":{"namespacePrefix":"p/"},"wharf":{"namespaces":{"acme":{"namespacePrefix":"teams/"}}}}"#
            ),
            "127.0.0.1:5000/teams/acme/greeter:0.1.0_b.1"
        );
        for bad in [
            "not json",
            r#"{"preferredProtocol":"warg","warg":{"url":"https://x"}}"#,
            r#"{"oci":{"namespacePrefix":"../"}}"#,
            r#"{"oci":{"namespacePrefix":"p"}}"#,
            r#"{"oci":{"registry":"a b"}}"#,
        ] {
            assert!(PackageRegistry::from_json(&host, bad.as_bytes()).is_err(), "{bad}");
        }
        let plain = PackageRegistry::plain(host.clone());
        let bare = plain.reference(&greeter, None).expect("maps");
        assert_eq!((bare.registry(), bare.repository().as_str()), ("127.0.0.1:5000", "acme/greeter"));
        // The inverse: only where the mapping puts a package.
        let prefixed =
            PackageRegistry::from_json(&host, br#"{"oci":{"namespacePrefix":"p/"}}"#).expect("valid");
        let at = |r: &str| prefixed.package(&r.parse().expect("reference"));
        assert_eq!(at("127.0.0.1:5000/p/acme/greeter:1.0.0"), Some(greeter.clone()));
        for elsewhere in [
            "127.0.0.1:5000/acme/greeter:1.0.0",
            "127.0.0.1:5000/q/acme/greeter:1.0.0",
            "ghcr.io/p/acme/greeter:1.0.0",
            "127.0.0.1:5000/p/acme/1x:1.0.0",
            "127.0.0.1:5000/p/greeter:1.0.0",
        ] {
            assert_eq!(at(elsewhere), None, "{elsewhere}");
        }
        assert_eq!(plain.package(&bare), Some(greeter));
    }
}
