//! Trust policies (`[trust]`, `[[trust_policy]]`): which signers a repository's artifacts
//! must be signed by, and whether an artifact that is not is refused (`enforce`) or only
//! reported (`audit`).
//!
//! Verification is off the hot path. A push into a repository a policy covers queues a
//! `trust` job for the manifest (for a signature — a Sigstore bundle referrer, a cosign
//! `sha256-<hex>.sig` tag — for the manifest it signs). The job reads every signature over the
//! manifest within the budgets of `wharf_auth::signature` (and at most [`MAX_SIGNATURES`] of
//! them), verifies each against the trusted roots, logs and keys, and records a
//! [`TrustSummary`] beside the manifest. A pull reads that record (through a cache of
//! [`CACHE_TTL`]) and matches its verified signers against the policies: no cryptography, no
//! blob read. A summary verified under other trust material (keys or roots changed) is stale:
//! it trusts nothing, and the server queues every manifest under a policy again at start.
//!
//! What a policy never blocks: referrers (signatures, SBOMs, attestations — nothing runs from
//! them), cosign's `.sig` manifests, blob `HEAD`s, and anything to a caller with push rights
//! on the repository (the signer must read what it signs: Harbor's #22650). A trusted index
//! covers its children. A mount from a repository under `enforce` is one only for a caller
//! with push rights there.
//!
//! ```toml
//! [trust]
//! fulcio_roots = "fulcio.pem"       # certificate authorities of keyless signatures
//! rekor_keys = "rekor.pub"          # transparency logs
//!
//! [[trust_policy]]
//! name = "prod"
//! repositories = ["prod/**"]
//! mode = "enforce"                  # or "audit"
//! kinds = ["wasm", "image"]         # default: both
//! identities = [{ issuer = "https://token.actions.githubusercontent.com", subject = "https://github.com/acme/*" }]
//! keys = ["cosign.pub"]
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wharf_auth::signature::{self, Candidate, MAX_SIGNATURES, SignatureSource, TrustPolicies, TrustSummary};
use wharf_types::{Digest, Manifest, ManifestBody, Repository, Tag, TagOrDigest};

use crate::error::{Error, Result};
use crate::registry::{Core, keys};

pub use wharf_auth::signature::{IdentityConfig, Mode, TrustConfig, TrustPolicy, TrustPolicyConfig, Verdict};

/// The most children of a trusted index made servable.
const MAX_CHILDREN: usize = 256;
/// How long a pull trusts a summary it read before reading it again (another process may
/// have verified a signature since).
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// The most summaries cached.
const CACHE_ENTRIES: usize = 65_536;
/// The most verifications whose signatures this process remembers until its job ends (each
/// as one digest of what it read, however many signatures and referrers that was).
const READ_ENTRIES: usize = 4_096;

/// The trust policies (`wharf_auth::signature::TrustPolicies`, reached through `Deref`) and
/// the summaries pulls read.
#[derive(Debug, Default)]
pub struct Trust {
    policies: TrustPolicies,
    cache: Mutex<HashMap<(Repository, Digest), Cached>>,
    /// What the last verification of each subject read (a digest of its signatures and
    /// referrers, [`found`]), until its job asks
    /// [`changed_since_verified`](Self::changed_since_verified).
    read: Mutex<HashMap<(Repository, Digest), Digest>>,
}

impl std::ops::Deref for Trust {
    type Target = TrustPolicies;

    fn deref(&self) -> &TrustPolicies {
        &self.policies
    }
}

#[derive(Clone, Debug)]
struct Cached {
    at: Instant,
    summary: Option<Arc<TrustSummary>>,
    /// Whether the manifest is a referrer or a signature (never blocked), once looked at.
    exempt: Option<bool>,
}

impl Trust {
    /// The registry's trust policies.
    pub fn new(policies: TrustPolicies) -> Self {
        Self { policies, cache: Mutex::default(), read: Mutex::default() }
    }

    /// The manifest whose signatures a push of `manifest` (with `tags`) asks to verify: the
    /// subject of a signature, the manifest itself otherwise. `None` outside every policy.
    pub(crate) fn subject_of(&self, repo: &Repository, manifest: &Manifest, tags: &[Tag]) -> Option<Digest> {
        if !self.covers(repo) {
            return None;
        }
        if let Some(subject) = manifest.subject() {
            return Some(subject.digest.clone());
        }
        if let Some(d) = tags.iter().find_map(|t| sig_tag_subject(t.as_str())) {
            return Some(d);
        }
        Some(manifest.digest().clone())
    }

    /// Decides a pull of manifest `digest` in `repo`.
    pub(crate) async fn decide(&self, core: &Core, repo: &Repository, digest: &Digest) -> Result<Verdict> {
        if !self.covers(repo) {
            return Ok(Verdict::Allowed(Vec::new()));
        }
        let cached = self.cached(core, repo, digest).await?;
        let verdict = self.judge(repo, cached.summary.as_deref());
        if matches!(verdict, Verdict::Allowed(_)) || !self.exempt(core, repo, digest, &cached).await? {
            return Ok(verdict);
        }
        Ok(Verdict::Allowed(Vec::new()))
    }

    /// The summary of `digest` (cached for [`CACHE_TTL`]).
    async fn cached(&self, core: &Core, repo: &Repository, digest: &Digest) -> Result<Cached> {
        let key = (repo.clone(), digest.clone());
        if let Some(c) =
            self.cache.lock().expect("trust cache").get(&key).filter(|c| c.at.elapsed() < CACHE_TTL)
        {
            return Ok(c.clone());
        }
        let summary = core.trust_summary(repo, digest).await?.map(Arc::new);
        let entry = Cached { at: Instant::now(), summary, exempt: None };
        self.remember(key, entry.clone());
        Ok(entry)
    }

    fn remember(&self, key: (Repository, Digest), entry: Cached) {
        let mut cache = self.cache.lock().expect("trust cache");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, entry);
    }

    /// Whether the manifest is a referrer, a cosign signature, or a child of a trusted index
    /// (read once, then cached).
    async fn exempt(&self, core: &Core, repo: &Repository, digest: &Digest, cached: &Cached) -> Result<bool> {
        if let Some(exempt) = cached.exempt {
            return Ok(exempt);
        }
        let stored = core.get_manifest(repo, &TagOrDigest::Digest(digest.clone())).await?;
        let exempt = match Manifest::from_bytes(stored.bytes, None) {
            Ok(m) => is_signature_or_referrer(&m) || self.servable(core, repo, digest).await?,
            Err(_) => false,
        };
        let mut entry = cached.clone();
        entry.exempt = Some(exempt);
        self.remember((repo.clone(), digest.clone()), entry);
        Ok(exempt)
    }

    /// Whether a blob `GET` in `repo` may be served to a caller without push rights: under an
    /// `enforce` policy, only blobs of trusted manifests and of referrers are. `Some(policy)`
    /// when not.
    pub(crate) async fn blob_refused(
        &self,
        core: &Core,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<String>> {
        let Some(policy) = self.enforcing(repo) else { return Ok(None) };
        let servable = self.servable(core, repo, digest).await?;
        Ok((!servable).then(|| policy.name().to_owned()))
    }

    /// Whether `digest` (a blob, or the child manifest of a trusted index) is marked servable
    /// in `repo` under the trust material of now (a mark counts under the material it was
    /// written under only).
    async fn servable(&self, core: &Core, repo: &Repository, digest: &Digest) -> Result<bool> {
        let mark = core.storage().get_meta(&keys::servable(repo, digest)).await?;
        Ok(mark.is_some_and(|m| m == self.fingerprint().as_bytes()))
    }

    /// Verifies every signature over `subject` in `repo` and records the summary; marks the
    /// blobs of a trusted manifest and of its referrers servable. Idempotent (a job).
    pub(crate) async fn verify(
        &self,
        core: &Core,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Arc<TrustSummary>>> {
        // Signatures pushed while this runs are read by a second pass.
        let mut seen = None;
        let mut recorded = None;
        for _ in 0..3 {
            let (found, summary) = self.verify_once(core, repo, subject).await?;
            recorded = summary;
            if seen.as_ref() == Some(&found) {
                break;
            }
            seen = Some(found);
        }
        let mut read = self.read.lock().expect("trust reads");
        if read.len() >= READ_ENTRIES {
            read.clear();
        }
        read.insert((repo.clone(), subject.clone()), found(&seen.unwrap_or_default()));
        Ok(recorded)
    }

    /// Whether a signature or referrer of `subject` arrived, or went, since this process last
    /// verified it: its job's record may have been removed after the push that asked again
    /// (the job queue has no compare-and-swap), so the job is queued again. Asked once per
    /// verification; `false` when this process did not verify it.
    pub(crate) async fn changed_since_verified(
        &self,
        core: &Core,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<bool> {
        let Some(read) = self.read.lock().expect("trust reads").remove(&(repo.clone(), subject.clone()))
        else {
            return Ok(false);
        };
        if core.head_manifest(repo, &TagOrDigest::Digest(subject.clone())).await.is_err() {
            return Ok(false);
        }
        let (candidates, referrers) = self.signatures_of(core, repo, subject).await?;
        Ok(found(&read_by(&candidates, &referrers)) != read)
    }

    /// The signatures over `subject` (cosign's `.sig` tag first, then the referrers that are
    /// Sigstore bundles) and every referrer's digest.
    async fn signatures_of(
        &self,
        core: &Core,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<(Vec<Candidate>, Vec<Digest>)> {
        let mut candidates = Vec::new();
        // cosign's `.sig` tag first: one per manifest, it cannot be crowded out.
        let sig_tag = format!("{}-{}.sig", subject.algorithm(), subject.encoded());
        if let Ok(tag) = sig_tag.parse::<Tag>()
            && let Ok((d, ..)) = core.head_manifest(repo, &TagOrDigest::Tag(tag)).await
        {
            candidates.push(Candidate::CosignTag(d));
        }
        let referrers = core.referrers(repo, subject, None).await?;
        let mut referrer_digests = Vec::new();
        for d in &referrers.manifests {
            referrer_digests.push(d.digest.clone());
            if d.artifact_type.as_ref().is_some_and(|t| signature::BUNDLE_MEDIA_TYPES.contains(&t.as_str())) {
                candidates.push(Candidate::Bundle(d.digest.clone()));
            }
        }
        Ok((candidates, referrer_digests))
    }

    /// One pass of [`verify`](Self::verify): the signature manifests it read, and the summary
    /// it recorded (none when the manifest is gone).
    async fn verify_once(
        &self,
        core: &Core,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<(Vec<Digest>, Option<Arc<TrustSummary>>)> {
        let storage = core.storage();
        let stored = match core.get_manifest(repo, &TagOrDigest::Digest(subject.clone())).await {
            Ok(m) => m,
            Err(Error::ManifestUnknown(_)) => {
                // Signed before it was pushed, or deleted since: nothing to record.
                storage.remove_meta(&keys::trust(repo, subject)).await?;
                return Ok((Vec::new(), None));
            }
            Err(e) => return Err(e),
        };
        let kind = match core.artifact_record(repo, subject).await? {
            Some(record) if record["wasm"] == true => "wasm",
            _ => "image",
        };
        let (candidates, referrer_digests) = self.signatures_of(core, repo, subject).await?;
        let source = Stored { core, repo };
        let summary = self.summarize(&source, subject, &stored.bytes, kind, &candidates).await?;
        // Blobs a client without push rights may fetch: a referrer's always (a client verifies
        // signatures itself), the manifest's own once a policy covering it is satisfied.
        let trusted = !matches!(self.judge(repo, Some(&summary)), Verdict::Denied { .. });
        let mut servable = Vec::new();
        for d in candidates.iter().map(Candidate::digest).chain(&referrer_digests).take(MAX_SIGNATURES * 2) {
            if let Ok(m) = core.get_manifest(repo, &TagOrDigest::Digest(d.clone())).await
                && let Ok(m) = Manifest::from_bytes(m.bytes, None)
            {
                servable.extend(blobs_of(&m));
            }
        }
        if trusted && let Ok(m) = Manifest::from_bytes(stored.bytes.clone(), None) {
            servable.extend(blobs_of(&m));
            // A signed index covers its children (as `cosign verify` of a multi-platform image
            // does): each child manifest, and its blobs, may be served.
            if let ManifestBody::Index(index) = m.body() {
                for child in index.manifests.iter().take(MAX_CHILDREN) {
                    servable.push(child.digest.clone());
                    if let Ok(c) = core.get_manifest(repo, &TagOrDigest::Digest(child.digest.clone())).await
                        && let Ok(c) = Manifest::from_bytes(c.bytes, None)
                    {
                        servable.extend(blobs_of(&c));
                    }
                }
            }
        }
        let mut writes: Vec<wharf_store::Write> = servable
            .into_iter()
            .map(|d| wharf_store::Write::Set {
                key: keys::servable(repo, &d),
                value: Bytes::copy_from_slice(self.fingerprint().as_bytes()),
            })
            .collect();
        let json = serde_json::to_vec(&summary).expect("a summary serialises");
        writes.push(wharf_store::Write::Set { key: keys::trust(repo, subject), value: json.into() });
        storage.write_steps(vec![writes]).await?;
        let verified = summary.signatures.iter().filter(|r| r.verified).count();
        let unverified = summary.signatures.len() - verified;
        tracing::info!(%repo, %subject, verified, unverified, omitted = summary.omitted, "signatures verified");
        let summary = Arc::new(summary);
        self.remember(
            (repo.clone(), subject.clone()),
            Cached { at: Instant::now(), summary: Some(Arc::clone(&summary)), exempt: None },
        );
        Ok((read_by(&candidates, &referrer_digests), Some(summary)))
    }

    /// Queues a verification of every manifest under a policy whose summary is missing or
    /// was made under other trust material (at start).
    pub(crate) async fn stale(&self, core: &Core) -> Result<Vec<(Repository, Digest)>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let storage = core.storage();
        let mut out = Vec::new();
        for key in storage.list_meta(keys::CATALOG).await? {
            let Some(repo) = key.strip_prefix(keys::CATALOG).and_then(|n| n.parse::<Repository>().ok())
            else {
                continue;
            };
            if !self.covers(&repo) {
                continue;
            }
            let prefix = keys::revisions(&repo);
            for key in storage.list_meta(&prefix).await? {
                let Some(digest) = key.strip_prefix(&prefix).and_then(keys::parse_digest_key) else {
                    continue;
                };
                let referrer = core.revision(&repo, &digest).await?.is_none_or(|r| r.subject.is_some());
                if referrer {
                    continue;
                }
                let fresh = core
                    .trust_summary(&repo, &digest)
                    .await?
                    .is_some_and(|s| s.fingerprint == self.fingerprint());
                if !fresh {
                    out.push((repo.clone(), digest));
                }
            }
        }
        Ok(out)
    }
}

/// The registry's own storage.
struct Stored<'a> {
    core: &'a Core,
    repo: &'a Repository,
}

impl SignatureSource for Stored<'_> {
    type Error = Error;

    async fn manifest(&self, digest: &Digest) -> Result<Option<Bytes>> {
        match self.core.get_manifest(self.repo, &TagOrDigest::Digest(digest.clone())).await {
            Ok(m) => Ok(Some(m.bytes)),
            Err(Error::ManifestUnknown(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn blob(&self, digest: &Digest) -> Result<Option<Bytes>> {
        match self.core.storage().read_all(digest).await {
            Ok(b) => Ok(Some(b)),
            Err(wharf_store::Error::BlobNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// What one pass of verification read, to compare with another: the signatures and
/// referrers, sorted.
fn read_by(candidates: &[Candidate], referrers: &[Digest]) -> Vec<Digest> {
    let mut read: Vec<Digest> =
        candidates.iter().map(|c| c.digest().clone()).chain(referrers.iter().cloned()).collect();
    read.sort();
    read.dedup();
    read
}

/// One digest of what a verification read ([`read_by`]), kept until its job ends.
fn found(read: &[Digest]) -> Digest {
    let joined: Vec<&str> = read.iter().map(Digest::as_str).collect();
    Digest::sha256(joined.join("\n").as_bytes())
}

/// The digest a cosign signature tag (`sha256-<hex>.sig`) names.
fn sig_tag_subject(tag: &str) -> Option<Digest> {
    let (alg, hex) = tag.strip_suffix(".sig")?.split_once('-')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Whether nothing would run from the manifest: it has a subject (a referrer), or it is a
/// cosign signature or a Sigstore bundle.
fn is_signature_or_referrer(m: &Manifest) -> bool {
    if m.subject().is_some() {
        return true;
    }
    if m.artifact_type().is_some_and(|t| signature::BUNDLE_MEDIA_TYPES.contains(&t.as_str())) {
        return true;
    }
    match m.body() {
        ManifestBody::Image(image) => {
            !image.layers.is_empty()
                && image.layers.iter().all(|l| l.media_type.essence() == signature::SIMPLE_SIGNING_MEDIA_TYPE)
        }
        _ => false,
    }
}

/// The blobs a manifest references (config and layers).
fn blobs_of(m: &Manifest) -> Vec<Digest> {
    match m.body() {
        ManifestBody::Image(image) => std::iter::once(image.config.digest.clone())
            .chain(image.layers.iter().map(|l| l.digest.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes an image manifest (with `subject`, if any) whose config is `{}`.
    async fn push(core: &Core, repo: &Repository, subject: Option<&Digest>, tag: &str) -> Digest {
        let config = Bytes::from_static(b"{}");
        let config_digest = Digest::sha256(&config);
        let epoch = core.epoch().await.expect("epoch");
        core.store_blob(&epoch, repo, &config_digest, wharf_store::single(config)).await.expect("config");
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest.as_str(), "size": 2},
            "layers": [],
            "annotations": {"tag": tag}
        });
        if let Some(subject) = subject {
            manifest["subject"] = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": subject.as_str(),
                "size": 1
            });
        }
        let parsed = Manifest::from_bytes(Bytes::from(serde_json::to_vec(&manifest).expect("JSON")), None)
            .expect("manifest");
        let changed = wharf_store::Write::Remove { key: "nothing".into() };
        let tags = vec![tag.parse().expect("tag")];
        core.write_manifest(&epoch, repo, &parsed, tags, Vec::new(), changed, true).await.expect("put").digest
    }

    /// What a verification read is compared, once, with what is there when its job ends: a
    /// referrer pushed since is found; nothing new, or a subject never verified here, is not.
    #[tokio::test]
    async fn a_referrer_pushed_after_the_last_look_is_found_once() {
        let core = Core::new(Arc::new(wharf_store::MemoryStore::new()));
        let trust = Trust::new(TrustPolicies::default());
        let repo: Repository = "prod/app".parse().expect("repo");
        let subject = push(&core, &repo, None, "v1").await;
        assert!(!trust.changed_since_verified(&core, &repo, &subject).await.expect("look"), "never verified");
        trust.verify(&core, &repo, &subject).await.expect("verify");
        assert!(!trust.changed_since_verified(&core, &repo, &subject).await.expect("look"), "nothing new");
        trust.verify(&core, &repo, &subject).await.expect("verify");
        push(&core, &repo, Some(&subject), "sbom").await;
        assert!(
            trust.changed_since_verified(&core, &repo, &subject).await.expect("look"),
            "a referrer arrived"
        );
        assert!(!trust.changed_since_verified(&core, &repo, &subject).await.expect("look"), "asked once");
        trust.verify(&core, &repo, &subject).await.expect("verify");
        assert!(!trust.changed_since_verified(&core, &repo, &subject).await.expect("look"), "read it");
    }
}
