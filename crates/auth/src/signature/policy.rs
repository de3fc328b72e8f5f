//! Trust policies over signatures: which signers an artifact must be signed by
//! ([`TrustPolicy`]), the trust material keyless signatures chain to, the verification of every
//! signature over a manifest within budgets ([`TrustPolicies::summarize`], reading through a
//! [`SignatureSource`]) and the verdict over what verified ([`TrustPolicies::judge`]). The
//! registry runs it in a job and records the [`TrustSummary`]; `wharf verify --policy` runs the
//! same over HTTP.

use std::future::Future;
use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wharf_types::{Digest, Manifest, ManifestBody, Repository};

use super::{Artifact, Format, LogEntry, PublicKey, Signer, TrustRoot, Verified};
use super::{MAX_BUNDLE_LEN, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use super::{verify_bundle, verify_simple_signing};
use crate::Pattern;
use crate::error::{Error, Result};

/// The most signatures over one manifest read by one verification (more are counted as
/// omitted, not read).
pub const MAX_SIGNATURES: usize = 1024;
/// The most bundle and payload bytes one verification reads.
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024 * 1024;

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
        let bad = |what: String| Error::TrustPolicy(format!("[[trust_policy]] {name}: {what}"));
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
                .any(|i| i.issuer == *issuer && crate::glob(i.subject.as_bytes(), subject.as_bytes())),
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

/// What the registry knows of the signatures over one manifest (`trust`): recorded by the
/// job that verifies them, read by every pull under a trust policy, shown by the artifact
/// API and the web page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TrustSummary {
    /// What was trusted when the signatures were verified (keys, roots, logs): a summary of
    /// another fingerprint is stale and trusts nothing until verified again.
    pub fingerprint: String,
    /// When they were verified (RFC 3339).
    pub checked_at: String,
    /// `wasm` or `image` (everything else): what a policy's `kinds` select.
    pub kind: String,
    /// Each signature found (referrers that are Sigstore bundles, cosign's `.sig` tag), in
    /// the order read: every verified one, and at most [`MAX_UNVERIFIED`] others.
    pub signatures: Vec<SignatureRecord>,
    /// Signatures not read or not kept (past the limits), if any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

/// What the trust policies covering a repository say of a pull of one manifest now
/// (`trustVerdict` in the artifact API, `wharf verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TrustVerdict {
    /// `verified` (every policy judging it is satisfied), `unjudged` (none judges it: its
    /// kind, or a signature or referrer), `unverified` (an `audit` policy is not satisfied:
    /// served, reported) or `denied` (an `enforce` one is not: refused to callers without push
    /// rights).
    pub verdict: String,
    /// The policies satisfied, or the one that is not.
    pub policies: Vec<String>,
    /// Why it is not satisfied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TrustVerdict {
    /// Whether a client without push rights is served it.
    pub fn served(&self) -> bool {
        self.verdict != "denied"
    }

    /// A sentence for a person.
    pub fn sentence(&self) -> String {
        let policies = self.policies.join(", ");
        let why = self.reason.as_deref().unwrap_or_default();
        match self.verdict.as_str() {
            "verified" => format!("Verified: trust policy {policies} is satisfied."),
            "unjudged" => {
                "No trust policy judges it (a signature, a referrer, a child of a signed index, or a kind no policy names).".into()
            }
            "unverified" => format!(
                "Unverified: trust policy {policies} (audit) is not satisfied: {why}. Pulls succeed and are reported."
            ),
            _ => format!("Denied: trust policy {policies} refuses pulls: {why}."),
        }
    }
}

impl From<Verdict> for TrustVerdict {
    fn from(v: Verdict) -> Self {
        let (verdict, policies, reason) = match v {
            Verdict::Allowed(p) if p.is_empty() => ("unjudged", p, None),
            Verdict::Allowed(p) => ("verified", p, None),
            Verdict::Unverified { policy, why } => ("unverified", vec![policy], Some(why)),
            Verdict::Denied { policy, why } => ("denied", vec![policy], Some(why)),
        };
        Self { verdict: verdict.to_owned(), policies, reason }
    }
}

/// The most unverified signatures a [`TrustSummary`] keeps.
pub const MAX_UNVERIFIED: usize = 16;

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One signature over a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SignatureRecord {
    /// The manifest that carries it (a referrer, or the `.sig` tag's manifest).
    pub digest: Digest,
    /// `sigstore-bundle` or `cosign`.
    pub format: String,
    /// Whether it verified.
    pub verified: bool,
    /// Who signed (when it verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<Signer>,
    /// The transparency-log entry that witnessed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogEntry>,
    /// Why it did not verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SignatureRecord {
    /// A signature that verified.
    pub fn verified(digest: Digest, v: Verified) -> Self {
        Self {
            digest,
            format: v.format.as_str().to_owned(),
            verified: true,
            signer: Some(v.signer),
            log: v.log,
            reason: None,
        }
    }

    /// A signature that did not, and why.
    pub fn unverified(digest: Digest, format: &str, reason: String) -> Self {
        Self {
            digest,
            format: format.to_owned(),
            verified: false,
            signer: None,
            log: None,
            reason: Some(reason),
        }
    }
}

/// Checked trust policies over trust material: what a registry enforces and `wharf verify`
/// checks.
#[derive(Debug, Default)]
pub struct TrustPolicies {
    root: TrustRoot,
    policies: Vec<TrustPolicy>,
    /// Every key of every policy (a signature is verified once, against all of them).
    keys: Vec<PublicKey>,
    fingerprint: String,
}

impl TrustPolicies {
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
        Self { root, policies, keys, fingerprint }
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
    pub fn covers(&self, repo: &Repository) -> bool {
        self.policies.iter().any(|p| p.patterns.iter().any(|pat| pat.matches(repo.as_str())))
    }

    /// The first `enforce` policy covering `repo`.
    pub fn enforcing(&self, repo: &Repository) -> Option<&TrustPolicy> {
        self.policies
            .iter()
            .find(|p| p.mode == Mode::Enforce && p.patterns.iter().any(|pat| pat.matches(repo.as_str())))
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
    ) -> std::result::Result<TrustSummary, S::Error> {
        let artifact = Artifact { digest: subject, bytes };
        let mut summary = TrustSummary {
            fingerprint: self.fingerprint.clone(),
            checked_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
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
        artifact: &Artifact<'_>,
        budget: &mut u64,
    ) -> std::result::Result<SignatureRecord, S::Error> {
        let format = Format::SigstoreBundle.as_str();
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
        if layer.size > MAX_BUNDLE_LEN as u64 {
            return unverified(format!("bundle of {} bytes (at most {})", layer.size, MAX_BUNDLE_LEN));
        }
        if !spend(budget, layer.size) {
            return unverified(format!(
                "not read: past the {MAX_SIGNATURE_BYTES} bytes one verification reads"
            ));
        }
        let Some(bytes) = source.blob(&layer.digest).await? else {
            return unverified("the bundle blob is missing".into());
        };
        Ok(match verify_bundle(&bytes, artifact, &self.root, &self.keys) {
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
    ) -> std::result::Result<Vec<SignatureRecord>, S::Error> {
        let format = Format::CosignSimpleSigning.as_str();
        let manifest = match signature_manifest(source, d).await? {
            Ok(m) => m,
            Err(why) => return Ok(vec![SignatureRecord::unverified(d.clone(), format, why)]),
        };
        let ManifestBody::Image(image) = manifest.body() else {
            return Ok(vec![SignatureRecord::unverified(d.clone(), format, "not an image manifest".into())]);
        };
        let mut out = Vec::new();
        for layer in image.layers.iter().take(16) {
            let signature_b64 = layer.annotations.as_ref().and_then(|a| a.get(SIGNATURE_ANNOTATION));
            let record = match signature_b64 {
                _ if layer.media_type.essence() != SIMPLE_SIGNING_MEDIA_TYPE => continue,
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
                    Some(payload) => match verify_simple_signing(&payload, sig, subject, &self.keys) {
                        Ok(v) => SignatureRecord::verified(d.clone(), v),
                        Err(e) => SignatureRecord::unverified(d.clone(), format, reason(&e)),
                    },
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

    /// The trust material and policies of `[trust]` and `[[trust_policy]]` tables, files read
    /// relative to `base`.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no valid PEM, or a policy that does not check.
    pub fn load(base: &Path, trust: &TrustConfig, tables: &[TrustPolicyConfig]) -> Result<Self> {
        let read = |what: &str, file: &Path| {
            std::fs::read_to_string(base.join(file))
                .map_err(|e| Error::Key(format!("{what} {}: {e}", file.display())))
        };
        let in_file =
            |what: &str, file: &Path, e: Error| Error::Key(format!("{what} {}: {e}", file.display()));
        let mut root = TrustRoot::new();
        if let Some(f) = &trust.fulcio_roots {
            let what = "[trust] fulcio_roots";
            root = root.with_authorities_pem(&read(what, f)?).map_err(|e| in_file(what, f, e))?;
        }
        if let Some(f) = &trust.rekor_keys {
            let what = "[trust] rekor_keys";
            root = root.with_logs_pem(&read(what, f)?).map_err(|e| in_file(what, f, e))?;
        }
        let mut policies = Vec::new();
        for (i, table) in tables.iter().enumerate() {
            let mut keys = Vec::new();
            for f in &table.keys {
                let what = "[[trust_policy]] keys";
                keys.extend(PublicKey::from_pem(&read(what, f)?).map_err(|e| in_file(what, f, e))?);
            }
            policies.push(TrustPolicy::new(i, table, keys)?);
        }
        Ok(Self::new(root, policies))
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
) -> std::result::Result<std::result::Result<Manifest, String>, S::Error> {
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
    /// Why a read failed (the verification stops; a signature that is not there is recorded
    /// as unverified instead).
    type Error;
    /// A manifest's bytes; `None` when it is not there.
    fn manifest(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = std::result::Result<Option<Bytes>, Self::Error>> + Send;
    /// A blob's bytes; `None` when it is not there.
    fn blob(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = std::result::Result<Option<Bytes>, Self::Error>> + Send;
}

/// A refusal's reason, without the error's prefix.
fn reason(e: &crate::Error) -> String {
    match e {
        crate::Error::Signature(why) => why.clone(),
        other => other.to_string(),
    }
}
