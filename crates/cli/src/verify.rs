//! `wharf verify`: what a registry's trust policies say of an artifact (a Wharf's
//! `trustVerdict` and the signatures it verified) and, with a policy file, the same
//! verification done here — the same code the registry runs
//! (`wharf_auth::signature::TrustPolicies`), reading the signatures over HTTP: cosign's `.sig`
//! tag and the Sigstore bundle referrers.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::json;
use wharf_auth::signature::{
    Candidate, SignatureSource, TrustConfig, TrustPolicies, TrustPolicyConfig, TrustSummary, TrustVerdict,
};
use wharf_client::{Client, Reference};
use wharf_types::{Digest, ManifestBody, Tag};

use crate::cli;
use crate::commands::print_json;
use crate::failure::{Failure, Result};
use crate::inspect::{clean, render_trust};
use crate::session::{Resolved, Session};

/// The largest signature manifest or blob read (a bundle is at most 512 KiB).
const MAX_READ: usize = 1024 * 1024;
/// The largest config read to tell Wasm from an image.
const MAX_CONFIG: usize = 4 * 1024 * 1024;

pub(crate) async fn verify(session: &Session<'_>, args: &cli::Verify) -> Result {
    let Resolved { reference, client, .. } = session.resolve(&args.reference, true).await?;
    let registry = client.wharf_artifact(&reference).await.ok().flatten();
    let registry_verdict = registry.as_ref().map(|r| r["trustVerdict"].clone()).filter(|v| !v.is_null());
    // A verification here that cannot run (the registry refuses the manifest, say) fails the
    // command after the registry's verdict is shown.
    let (local, local_error) = match &args.policy {
        Some(path) => match verify_here(&client, &reference, path).await {
            Ok(l) => (Some(l), None),
            Err(e @ Failure::Usage(_)) => return Err(e),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    let digest = registry.as_ref().and_then(|r| r["digest"].as_str().map(str::to_owned));
    if session.json() {
        print_json(&json!({
            "reference": reference.to_string(),
            "digest": digest.or_else(|| local.as_ref().map(|l| l.digest.to_string())),
            "registry": registry.as_ref().map(|r| json!({ "trust": r["trust"], "trustVerdict": r["trustVerdict"] })),
            "local": local.as_ref().map(|l| json!({ "policy": l.policy, "trust": l.summary, "trustVerdict": l.verdict }))
                .or_else(|| local_error.as_ref().map(|e| json!({ "error": e.to_string() }))),
        }));
    } else {
        let mut out = String::new();
        out.push_str(&clean(&json!(reference.to_string())));
        out.push('\n');
        match &registry {
            Some(r) if !r["trustVerdict"].is_null() => {
                render_trust(&mut out, "registry", &r["trust"], &r["trustVerdict"]);
            }
            _ => out.push_str(
                "  registry       judges no signatures for it (no trust policy covers it, or not a Wharf)\n",
            ),
        }
        if let Some(l) = &local {
            let summary = serde_json::to_value(&l.summary).expect("a summary serialises");
            let verdict = serde_json::to_value(&l.verdict).expect("a verdict serialises");
            render_trust(&mut out, &format!("here ({})", l.policy), &summary, &verdict);
        }
        print!("{out}");
    }
    if let Some(e) = local_error {
        return Err(e);
    }
    let mut verdicts: Vec<(String, String)> = Vec::new();
    if let Some(v) = &registry_verdict {
        verdicts.push(("the registry".into(), v["verdict"].as_str().unwrap_or_default().to_owned()));
    }
    if let Some(l) = &local {
        verdicts.push((format!("the policy file {}", l.policy), l.verdict.verdict.clone()));
    }
    if verdicts.is_empty() {
        return Err(Failure::Failed(format!(
            "nothing verified {reference}: the registry judges no signatures for it; give --policy FILE to verify here"
        )));
    }
    match verdicts.iter().find(|(_, v)| v == "denied" || v == "unverified") {
        Some((whose, verdict)) => Err(Failure::Failed(format!("{reference} is {verdict} by {whose}"))),
        None => Ok(()),
    }
}

/// A verification done here.
struct Local {
    policy: String,
    digest: Digest,
    summary: TrustSummary,
    verdict: TrustVerdict,
}

/// Reads the signatures over `reference` and judges them by the policy file's `[trust]` and
/// `[[trust_policy]]` tables (the server's syntax; paths relative to the file).
async fn verify_here(client: &Client, reference: &Reference, path: &Path) -> Result<Local> {
    let bad = |e: String| Failure::Usage(format!("--policy {}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| Failure::file(path, &e))?;
    let file: PolicyFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let trust = TrustPolicies::load(base, &file.trust, &file.trust_policy).map_err(|e| bad(e.to_string()))?;
    if trust.is_empty() {
        return Err(bad("no [[trust_policy]]".into()));
    }
    let registry = |e| Failure::at(&e, reference);
    let manifest = client.pull_manifest(reference).await.map_err(registry)?;
    let digest = manifest.digest().clone();
    let config = match manifest.body() {
        ManifestBody::Image(m) if m.config.size <= MAX_CONFIG as u64 => {
            let mut out = Capped::new(MAX_CONFIG);
            client.pull_blob(reference, &m.config.digest, &mut out).await.ok().map(|_| out.0)
        }
        _ => None,
    };
    let kind = if wharf_wasm::classify(&manifest, config.as_deref()).is_wasm() { "wasm" } else { "image" };
    let mut candidates = Vec::new();
    let sig_tag = format!("{}-{}.sig", digest.algorithm(), digest.encoded());
    if let Ok(tag) = sig_tag.parse::<Tag>()
        && let Ok((d, _)) = client.resolve(&reference.clone().with_tag(tag)).await
    {
        candidates.push(Candidate::CosignTag(d));
    }
    let referrers = client.referrers(reference, &digest, None).await.map_err(registry)?;
    for d in referrers {
        let bundle = d
            .artifact_type
            .as_ref()
            .is_some_and(|t| wharf_auth::signature::BUNDLE_MEDIA_TYPES.contains(&t.as_str()));
        if bundle {
            candidates.push(Candidate::Bundle(d.digest));
        }
    }
    let source = Http { client, reference };
    let summary = trust
        .summarize(&source, &digest, manifest.bytes(), kind, &candidates)
        .await
        .map_err(|e| Failure::Failed(format!("verifying the signatures of {reference}: {e}")))?;
    let verdict = trust.judge(reference.repository(), Some(&summary)).into();
    Ok(Local { policy: path.display().to_string(), digest, summary, verdict })
}

/// A policy file: the `[trust]` and `[[trust_policy]]` tables (a server's whole config file
/// will do; its other tables are not read).
#[derive(serde::Deserialize)]
struct PolicyFile {
    #[serde(default)]
    trust: TrustConfig,
    #[serde(default)]
    trust_policy: Vec<TrustPolicyConfig>,
}

/// Signatures read from the registry, each read bounded.
struct Http<'a> {
    client: &'a Client,
    reference: &'a Reference,
}

impl SignatureSource for Http<'_> {
    type Error = wharf_client::Error;

    async fn manifest(&self, digest: &Digest) -> wharf_client::Result<Option<bytes::Bytes>> {
        match self.client.pull_manifest(&self.reference.clone().with_digest(digest.clone())).await {
            Ok(m) => Ok(Some(m.bytes().clone())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn blob(&self, digest: &Digest) -> wharf_client::Result<Option<bytes::Bytes>> {
        let mut out = Capped::new(MAX_READ);
        match self.client.pull_blob(self.reference, digest, &mut out).await {
            Ok(_) => Ok(Some(out.0.into())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A buffer that refuses more than its limit.
struct Capped(Vec<u8>, usize);

impl Capped {
    fn new(limit: usize) -> Self {
        Self(Vec::new(), limit)
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.0.len() + buf.len() > self.1 {
            return Poll::Ready(Err(std::io::Error::other(format!("more than {} bytes", self.1))));
        }
        self.0.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
