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
//! on the repository (the signer must read what it signs: Harbor's #22650).
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
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use std::time::{Duration, Instant};

use wharf_auth::Pattern;
use wharf_auth::signature::{self, PublicKey, Signer, TrustRoot};
use wharf_types::{Digest, Manifest, ManifestBody, Repository, Tag, TagOrDigest};

use crate::api::{MAX_UNVERIFIED, SignatureRecord, TrustSummary};
use crate::error::{Error, Result};
use crate::registry::{Core, keys};

/// The most signatures over one manifest read by one verification (more are counted as
/// omitted, not read).
pub const MAX_SIGNATURES: usize = 1024;
/// The most bundle and payload bytes one verification reads.
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024 * 1024;
/// How long a pull trusts a summary it read before reading it again (another process may
/// have verified a signature since).
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// The most summaries cached.
const CACHE_ENTRIES: usize = 65_536;

/// `enforce` or `audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An artifact no trusted signature covers is refused (403 `DENIED`).
    Enforce,
    /// It is served, and logged and counted as unverified.
    Audit,
}

/// An identity a policy trusts: an OIDC issuer (exact) and a subject (exact, or a glob with
/// `*`).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The OIDC issuer.
    pub issuer: String,
    /// The subject: an email, a URI; `*` matches any run of characters.
    pub subject: String,
}

/// One `[[trust_policy]]` table.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustPolicyConfig {
    /// A name for messages [default: `trust_policy[<n>]`].
    pub name: Option<String>,
    /// Repository patterns (`*` within a component, `**` any depth).
    pub repositories: Vec<String>,
    /// `enforce` or `audit`.
    pub mode: Mode,
    /// `wasm`, `image` (every other artifact) [default: both].
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Keyless signers trusted.
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
    /// PEM files of public keys trusted, relative to the config file.
    #[serde(default)]
    pub keys: Vec<std::path::PathBuf>,
}

/// `[trust]`: the trust material of keyless signatures.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustConfig {
    /// PEM certificates of the certificate authorities (Fulcio roots and intermediates).
    pub fulcio_roots: Option<std::path::PathBuf>,
    /// PEM public keys of the transparency logs (Rekor).
    pub rekor_keys: Option<std::path::PathBuf>,
}

/// A checked policy.
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    name: String,
    patterns: Vec<Pattern>,
    mode: Mode,
    wasm: bool,
    image: bool,
    identities: Vec<IdentityConfig>,
    keys: Vec<PublicKey>,
}

impl TrustPolicy {
    /// A policy from its table and the keys its files hold.
    pub fn new(index: usize, table: &TrustPolicyConfig, keys: Vec<PublicKey>) -> Result<Self> {
        let name = table.name.clone().unwrap_or_else(|| format!("trust_policy[{index}]"));
        let bad = |what: String| Error::BadRequest(format!("[[trust_policy]] {name}: {what}"));
        let patterns = Pattern::parse_list(&table.repositories).map_err(bad)?;
        if patterns.is_empty() {
            return Err(bad("no `repositories`".into()));
        }
        let (mut wasm, mut image) = (table.kinds.is_empty(), table.kinds.is_empty());
        for kind in &table.kinds {
            match kind.as_str() {
                "wasm" => wasm = true,
                "image" => image = true,
                other => return Err(bad(format!("`kinds` entry `{other}` is not `wasm` or `image`"))),
            }
        }
        if table.identities.is_empty() && keys.is_empty() {
            return Err(bad("trusts no one: give `identities` or `keys`".into()));
        }
        if let Some(i) = table.identities.iter().find(|i| i.issuer.is_empty() || i.subject.is_empty()) {
            return Err(bad(format!(
                "identity `{}` / `{}`: issuer and subject are required",
                i.issuer, i.subject
            )));
        }
        Ok(Self { name, patterns, mode: table.mode, wasm, image, identities: table.identities.clone(), keys })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it trusts `signer`.
    fn trusts(&self, signer: &Signer) -> bool {
        match signer {
            Signer::Key { key } => self.keys.iter().any(|k| k.id() == key),
            Signer::Identity { issuer, subject } => self
                .identities
                .iter()
                .any(|i| i.issuer == *issuer && wharf_auth::glob(i.subject.as_bytes(), subject.as_bytes())),
        }
    }

    /// Whether it judges an artifact of `kind` (unknown: yes).
    fn judges(&self, kind: Option<&str>) -> bool {
        match kind {
            Some("wasm") => self.wasm,
            Some(_) => self.image,
            None => true,
        }
    }
}

/// What a pull may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No policy judges it, or every one that does is satisfied (their names).
    Allowed(Vec<String>),
    /// An `audit` policy is not satisfied: served, reported.
    Unverified {
        /// The policy's name.
        policy: String,
        /// Why it is not satisfied.
        why: String,
    },
    /// An `enforce` policy is not satisfied: refused.
    Denied {
        /// The policy's name.
        policy: String,
        /// Why it is not satisfied.
        why: String,
    },
}

/// The trust policies, what they trust, and the summaries pulls read.
#[derive(Debug, Default)]
pub struct Trust {
    root: TrustRoot,
    policies: Vec<TrustPolicy>,
    /// Every key of every policy (a signature is verified once, against all of them).
    keys: Vec<PublicKey>,
    fingerprint: String,
    cache: Mutex<HashMap<(Repository, Digest), Cached>>,
}

#[derive(Clone, Debug)]
struct Cached {
    at: Instant,
    summary: Option<Arc<TrustSummary>>,
    /// Whether the manifest is a referrer or a signature (never blocked), once looked at.
    exempt: Option<bool>,
}

impl Trust {
    /// Policies over `root`.
    pub fn new(root: TrustRoot, policies: Vec<TrustPolicy>) -> Self {
        let mut keys: Vec<PublicKey> = Vec::new();
        for k in policies.iter().flat_map(|p| &p.keys) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        let mut ids: Vec<&str> = keys.iter().map(PublicKey::id).collect();
        ids.sort_unstable();
        let fingerprint =
            format!("{}-{}", root.fingerprint(), &Digest::sha256(ids.join(",").as_bytes()).encoded()[..16]);
        Self { root, policies, keys, fingerprint, cache: Mutex::default() }
    }

    /// What is trusted (roots, logs, keys), as a short string: summaries verified under
    /// another fingerprint are stale.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether there is no policy.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies.
    pub fn policies(&self) -> &[TrustPolicy] {
        &self.policies
    }

    /// Whether a policy covers `repo`.
    pub(crate) fn covers(&self, repo: &Repository) -> bool {
        self.policies.iter().any(|p| p.patterns.iter().any(|pat| pat.matches(repo.as_str())))
    }

    /// The first `enforce` policy covering `repo`.
    fn enforcing(&self, repo: &Repository) -> Option<&TrustPolicy> {
        self.policies
            .iter()
            .find(|p| p.mode == Mode::Enforce && p.patterns.iter().any(|pat| pat.matches(repo.as_str())))
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

    /// What the policies covering `repo` say of an artifact with signatures `summary` (`None`:
    /// none verified yet). A summary verified under other trust material counts as none.
    pub fn judge(&self, repo: &Repository, recorded: Option<&TrustSummary>) -> Verdict {
        let summary = recorded.filter(|s| s.fingerprint == self.fingerprint);
        let kind = summary.map(|s| s.kind.as_str());
        let signers: Vec<&Signer> = summary
            .map(|s| s.signatures.iter().filter(|r| r.verified).filter_map(|r| r.signer.as_ref()).collect())
            .unwrap_or_default();
        let mut satisfied = Vec::new();
        let mut failed: Option<(&TrustPolicy, String)> = None;
        let judging =
            self.policies.iter().filter(|p| p.patterns.iter().any(|pat| pat.matches(repo.as_str())));
        for policy in judging.filter(|p| p.judges(kind)) {
            if signers.iter().any(|s| policy.trusts(s)) {
                satisfied.push(policy.name.clone());
                continue;
            }
            let why = match (recorded, summary) {
                (None, _) => "its signatures are not verified yet (or it has none)".to_owned(),
                (Some(_), None) => {
                    "its signatures were verified under other trust material; verifying again".to_owned()
                }
                (Some(_), Some(s)) if s.signatures.is_empty() => "it is not signed".to_owned(),
                (Some(_), Some(s)) if signers.is_empty() => {
                    let reasons: Vec<&str> =
                        s.signatures.iter().filter_map(|r| r.reason.as_deref()).take(2).collect();
                    format!("no signature verifies ({})", reasons.join("; "))
                }
                _ => format!(
                    "signed only by signers the policy does not trust: {}",
                    signers.iter().take(3).map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
            };
            let worse =
                failed.as_ref().is_none_or(|(p, _)| p.mode == Mode::Audit && policy.mode == Mode::Enforce);
            if worse {
                failed = Some((policy, why));
            }
        }
        match failed {
            None => Verdict::Allowed(satisfied),
            Some((policy, why)) if policy.mode == Mode::Enforce => {
                Verdict::Denied { policy: policy.name.clone(), why }
            }
            Some((policy, why)) => Verdict::Unverified { policy: policy.name.clone(), why },
        }
    }

    /// The summary of `digest` (cached for [`CACHE_TTL`]).
    async fn cached(&self, core: &Core, repo: &Repository, digest: &Digest) -> Result<Cached> {
        let key = (repo.clone(), digest.clone());
        if let Some(c) =
            self.cache.lock().expect("trust cache").get(&key).filter(|c| c.at.elapsed() < CACHE_TTL)
        {
            return Ok(c.clone());
        }
        let summary = read_summary(core, repo, digest).await?.map(Arc::new);
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

    /// Whether the manifest is a referrer or a cosign signature (read once, then cached).
    async fn exempt(&self, core: &Core, repo: &Repository, digest: &Digest, cached: &Cached) -> Result<bool> {
        if let Some(exempt) = cached.exempt {
            return Ok(exempt);
        }
        let stored = core.get_manifest(repo, &TagOrDigest::Digest(digest.clone())).await?;
        let exempt = match Manifest::from_bytes(stored.bytes, None) {
            Ok(m) => is_signature_or_referrer(&m),
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
        let servable = core.storage().get_meta(&keys::servable(repo, digest)).await?.is_some();
        Ok((!servable).then(|| policy.name.clone()))
    }

    /// Verifies every signature over `subject` in `repo` and records the summary; marks the
    /// blobs of a trusted manifest and of its referrers servable. Idempotent (a job).
    pub(crate) async fn verify(&self, core: &Core, repo: &Repository, subject: &Digest) -> Result<()> {
        // Signatures pushed while this runs are read by a second pass.
        let mut seen = None;
        for _ in 0..3 {
            let found = self.verify_once(core, repo, subject).await?;
            if seen.as_ref() == Some(&found) {
                break;
            }
            seen = Some(found);
        }
        Ok(())
    }

    /// One pass of [`verify`](Self::verify): returns the signature manifests it read.
    async fn verify_once(&self, core: &Core, repo: &Repository, subject: &Digest) -> Result<Vec<Digest>> {
        let storage = core.storage();
        let stored = match core.get_manifest(repo, &TagOrDigest::Digest(subject.clone())).await {
            Ok(m) => m,
            Err(Error::ManifestUnknown(_)) => {
                // Signed before it was pushed, or deleted since: nothing to record.
                storage.remove_meta(&keys::trust(repo, subject)).await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let kind = match core.artifact_record(repo, subject).await? {
            Some(record) if record["wasm"] == true => "wasm",
            _ => "image",
        };
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
        let source = Stored { core, repo };
        let summary = self.summarize(&source, subject, &stored.bytes, kind, &candidates).await?;
        let read: Vec<Digest> = candidates.iter().take(MAX_SIGNATURES).map(|c| c.digest().clone()).collect();
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
        }
        let mut writes: Vec<wharf_store::Write> = servable
            .into_iter()
            .map(|d| wharf_store::Write::Set { key: keys::servable(repo, &d), value: bytes::Bytes::new() })
            .collect();
        let json = serde_json::to_vec(&summary).expect("a summary serialises");
        writes.push(wharf_store::Write::Set { key: keys::trust(repo, subject), value: json.into() });
        storage.write_steps(vec![writes]).await?;
        let verified = summary.signatures.iter().filter(|r| r.verified).count();
        let unverified = summary.signatures.len() - verified;
        tracing::info!(%repo, %subject, verified, unverified, omitted = summary.omitted, "signatures verified");
        self.remember(
            (repo.clone(), subject.clone()),
            Cached { at: Instant::now(), summary: Some(Arc::new(summary)), exempt: None },
        );
        let mut read = read;
        read.sort();
        Ok(read)
    }

    /// Verifies the signatures `candidates` over manifest `subject` (its `bytes`, of `kind`
    /// `wasm` or `image`), read from `source` within the budgets (at most [`MAX_SIGNATURES`]
    /// of them, [`MAX_SIGNATURE_BYTES`] read): every one that verifies and at most
    /// [`MAX_UNVERIFIED`] that do not, each with why.
    ///
    /// # Errors
    ///
    /// What `source` fails with (a signature that cannot be read is recorded, not an error).
    pub async fn summarize<S: SignatureSource + Sync>(
        &self,
        source: &S,
        subject: &Digest,
        bytes: &[u8],
        kind: &str,
        candidates: &[Candidate],
    ) -> Result<TrustSummary> {
        let artifact = signature::Artifact { digest: subject, bytes };
        let mut summary = TrustSummary {
            fingerprint: self.fingerprint.clone(),
            checked_at: crate::clock::now_rfc3339(),
            kind: kind.to_owned(),
            ..TrustSummary::default()
        };
        let mut unverified = 0;
        let mut budget = MAX_SIGNATURE_BYTES;
        for (i, candidate) in candidates.iter().enumerate() {
            if i >= MAX_SIGNATURES {
                summary.omitted += 1;
                continue;
            }
            let records = match candidate {
                Candidate::Bundle(d) => vec![self.verify_bundle(source, d, &artifact, &mut budget).await?],
                Candidate::CosignTag(d) => self.verify_cosign(source, d, subject, &mut budget).await?,
            };
            for record in records {
                if record.verified {
                    summary.signatures.push(record);
                } else if unverified < MAX_UNVERIFIED {
                    unverified += 1;
                    summary.signatures.push(record);
                } else {
                    summary.omitted += 1;
                }
            }
        }
        Ok(summary)
    }

    /// A Sigstore bundle referrer: its bundle layer, verified over the subject.
    async fn verify_bundle<S: SignatureSource + Sync>(
        &self,
        source: &S,
        d: &Digest,
        artifact: &signature::Artifact<'_>,
        budget: &mut u64,
    ) -> Result<SignatureRecord> {
        let format = signature::Format::SigstoreBundle.as_str();
        let unverified = |why: String| Ok(SignatureRecord::unverified(d.clone(), format, why));
        let manifest = match signature_manifest(source, d).await? {
            Ok(m) => m,
            Err(why) => return unverified(why),
        };
        let ManifestBody::Image(image) = manifest.body() else {
            return unverified("a bundle referrer that is not an image manifest".into());
        };
        if manifest.subject().map(|s| &s.digest) != Some(artifact.digest) {
            return unverified("the referrer names another subject".into());
        }
        let Some(layer) = image.layers.first() else {
            return unverified("a bundle referrer with no layer".into());
        };
        if layer.size > signature::MAX_BUNDLE_LEN as u64 {
            return unverified(format!(
                "bundle of {} bytes (at most {})",
                layer.size,
                signature::MAX_BUNDLE_LEN
            ));
        }
        if !spend(budget, layer.size) {
            return unverified(format!(
                "not read: past the {MAX_SIGNATURE_BYTES} bytes one verification reads"
            ));
        }
        let Some(bytes) = source.blob(&layer.digest).await? else {
            return unverified("the bundle blob is missing".into());
        };
        Ok(match signature::verify_bundle(&bytes, artifact, &self.root, &self.keys) {
            Ok(v) => SignatureRecord::verified(d.clone(), v),
            Err(e) => SignatureRecord::unverified(d.clone(), format, reason(&e)),
        })
    }

    /// cosign's `.sig` manifest: each simple-signing layer, verified over the subject digest.
    async fn verify_cosign<S: SignatureSource + Sync>(
        &self,
        source: &S,
        d: &Digest,
        subject: &Digest,
        budget: &mut u64,
    ) -> Result<Vec<SignatureRecord>> {
        let format = signature::Format::CosignSimpleSigning.as_str();
        let manifest = match signature_manifest(source, d).await? {
            Ok(m) => m,
            Err(why) => return Ok(vec![SignatureRecord::unverified(d.clone(), format, why)]),
        };
        let ManifestBody::Image(image) = manifest.body() else {
            return Ok(vec![SignatureRecord::unverified(d.clone(), format, "not an image manifest".into())]);
        };
        let mut out = Vec::new();
        for layer in image.layers.iter().take(16) {
            let signature_b64 =
                layer.annotations.as_ref().and_then(|a| a.get(signature::SIGNATURE_ANNOTATION));
            let record = match signature_b64 {
                _ if layer.media_type.essence() != signature::SIMPLE_SIGNING_MEDIA_TYPE => continue,
                None => SignatureRecord::unverified(
                    d.clone(),
                    format,
                    "a layer with no signature annotation".into(),
                ),
                Some(_) if layer.size > 64 * 1024 => {
                    SignatureRecord::unverified(d.clone(), format, "payload over 64 KiB".into())
                }
                Some(_) if !spend(budget, layer.size) => SignatureRecord::unverified(
                    d.clone(),
                    format,
                    format!("not read: past the {MAX_SIGNATURE_BYTES} bytes one verification reads"),
                ),
                Some(sig) => match source.blob(&layer.digest).await? {
                    Some(payload) => {
                        match signature::verify_simple_signing(&payload, sig, subject, &self.keys) {
                            Ok(v) => SignatureRecord::verified(d.clone(), v),
                            Err(e) => SignatureRecord::unverified(d.clone(), format, reason(&e)),
                        }
                    }
                    None => {
                        SignatureRecord::unverified(d.clone(), format, "the payload blob is missing".into())
                    }
                },
            };
            out.push(record);
        }
        if out.is_empty() {
            out.push(SignatureRecord::unverified(d.clone(), format, "no simple-signing layer".into()));
        }
        Ok(out)
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
                let fresh = read_summary(core, &repo, &digest)
                    .await?
                    .is_some_and(|s| s.fingerprint == self.fingerprint);
                if !fresh {
                    out.push((repo.clone(), digest));
                }
            }
        }
        Ok(out)
    }
}

/// Takes `n` bytes from `budget`, if it holds them.
fn spend(budget: &mut u64, n: u64) -> bool {
    match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    }
}

/// A signature's manifest, parsed (or why not).
async fn signature_manifest<S: SignatureSource + Sync>(
    source: &S,
    d: &Digest,
) -> Result<std::result::Result<Manifest, String>> {
    let Some(bytes) = source.manifest(d).await? else {
        return Ok(Err("the signature manifest is gone".into()));
    };
    Ok(Manifest::from_bytes(bytes, None).map_err(|e| format!("the signature manifest: {e}")))
}

/// A signature over a manifest, to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// A referrer whose artifact type is a Sigstore bundle's.
    Bundle(Digest),
    /// The manifest cosign's `sha256-<hex>.sig` tag names.
    CosignTag(Digest),
}

impl Candidate {
    /// The signature manifest's digest.
    pub fn digest(&self) -> &Digest {
        match self {
            Self::Bundle(d) | Self::CosignTag(d) => d,
        }
    }
}

/// Where signatures are read from: the registry's storage (the `trust` job), or a registry
/// over HTTP (`wharf verify`). Sizes are checked against the budgets before a read.
pub trait SignatureSource {
    /// A manifest's bytes; `None` when it is not there.
    fn manifest(&self, digest: &Digest) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// A blob's bytes; `None` when it is not there.
    fn blob(&self, digest: &Digest) -> impl Future<Output = Result<Option<Bytes>>> + Send;
}

/// The registry's own storage.
struct Stored<'a> {
    core: &'a Core,
    repo: &'a Repository,
}

impl SignatureSource for Stored<'_> {
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

/// The recorded summary of `digest`.
pub(crate) async fn read_summary(
    core: &Core,
    repo: &Repository,
    digest: &Digest,
) -> Result<Option<TrustSummary>> {
    Ok(core
        .storage()
        .get_meta(&keys::trust(repo, digest))
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
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

/// A refusal's reason, without the error's prefix.
fn reason(e: &wharf_auth::Error) -> String {
    match e {
        wharf_auth::Error::Signature(why) => why.clone(),
        other => other.to_string(),
    }
}
