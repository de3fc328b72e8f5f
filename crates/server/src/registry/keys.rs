//! Every storage key of the server's records, and the codecs of the core's own records: the
//! one module that knows the layout (no other module writes a key's text).
//!
//! ```text
//! catalog/<repo>                                                  the repository exists
//! repositories/<repo>/_layers/<alg>/<hex>                         blob linked to the repository (`<size> <unix secs linked>`)
//! repositories/<repo>/_uploads/<upload id>                        an upload session of the repository
//! repositories/<repo>/_manifests/revisions/<alg>/<hex>            manifest in the repository (JSON: media type, size, subject, pushed)
//! repositories/<repo>/_manifests/tags/<tag>                       `<digest> <size> <media type>` of the manifest tagged, then a line `<unix secs pushed>`
//! repositories/<repo>/_manifests/pulled/<tag>                     `<unix secs>`: when the tag was last pulled (at most once a minute per process)
//! repositories/<repo>/_manifests/pulled/<alg>/<hex>               `<unix secs>`: when the manifest was last pulled by digest (under a cache budget)
//! repositories/<repo>/_manifests/checked/<tag>                    `<unix secs>`: when a mirrored tag was last checked at its upstream (`mirror`)
//! repositories/<repo>/_manifests/tagged/<alg>/<hex>/<tag>          (empty) the tag was set to the manifest: a hint, checked against the tag record
//! repositories/<repo>/_manifests/tag-index                        (empty) every tag of the repository has its `tagged/` hint
//! repositories/<repo>/_referrers/<subj alg>/<subj hex>/<alg>/<hex>   referrer descriptor (JSON)
//! repositories/<repo>/_wharf/artifacts/<alg>/<hex>               the Wasm classification of a manifest (JSON, `classify`)
//! repositories/<repo>/_wharf/trust/<alg>/<hex>                   the signatures over a manifest, verified (JSON, `trust`)
//! repositories/<repo>/_wharf/servable/<alg>/<hex>                (the trust fingerprint) a blob of a trusted manifest or a referrer (`trust`)
//! blob-repositories/<alg>/<hex>/<repo>                            reverse link, for mounts without `from` and garbage collection
//! manifest-repositories/<alg>/<hex>/<repo>                        reverse revision, for garbage collection
//! uploads/<upload id>                                             `<unix seconds> <repo>`: when a session began, for expiry
//! jobs/pending/<id>, jobs/leases/<id>, jobs/parked/<id>           background work (`jobs`)
//! gc/epoch, gc/lease, gc/doomed/…, gc/last-report, gc/last-scrub  the collector's fence, lease, marks and reports (`fence`, `lifecycle`)
//! search/stamps/<process>                                         a process's search index changed (`search`)
//! webhook-events/<stream>/<event id>                              a change's events, each naming the webhooks still to be told (JSON, `webhooks`); stream: the repository's key
//! webhooks/<webhook>/pending/<stream>/<event id>                   events held for one webhook after a failed send, in order (JSON)
//! webhooks/<webhook>/parked/<event id>                            an event given up after its last attempt (JSON)
//! webhooks/<webhook>/recent/<process>                             a process's last deliveries (JSON)
//! auth/credentials/<id>                                          a robot account or personal access token: grants, owner, expiry, SHA-256 of its secret (JSON, `auth::credentials`)
//! auth/robots/<name>                                              the id of robot `<name>`
//! auth/credential-uses/<id>                                       `<unix secs>`: when a credential was last used (at most once a minute per process)
//! mirror/planned/<upstream>/<n>                                   `<unix secs>`: when sync rule n of an upstream last queued its tags (`mirror`)
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wharf_store::Write;
use wharf_types::{Digest, Repository};

use crate::clock::now_secs;

/// Every repository's catalog entry starts with this.
pub(crate) const CATALOG: &str = "catalog/";
/// Every upload session's expiry record starts with this.
pub(crate) const UPLOADS: &str = "uploads/";
/// Queued jobs.
pub(crate) const JOBS_PENDING: &str = "jobs/pending/";
/// Jobs given up.
pub(crate) const JOBS_PARKED: &str = "jobs/parked/";
/// The collection epoch: `sweep <run>` while a collector decides, `idle <run>` after.
pub(crate) const GC_EPOCH: &str = "gc/epoch";
/// The collector's lease.
pub(crate) const GC_LEASE: &str = "gc/lease";
/// Where the doomed marks live: `gc/doomed/<alg>/<hex>` for a digest (its links, revisions
/// and bytes), `gc/doomed/tags/<hash of repository and tag>` for a tag.
pub(crate) const GC_DOOMED: &str = "gc/doomed/";
/// The report of the last collection that could remove anything.
pub(crate) const GC_LAST_REPORT: &str = "gc/last-report";
/// The report of the last scrub.
pub(crate) const GC_LAST_SCRUB: &str = "gc/last-scrub";
/// The processes' search stamps.
pub(crate) const SEARCH_STAMPS: &str = "search/stamps/";

/// `<alg>/<hex>`: a digest as a part of a key.
pub(crate) fn digest_key(d: &Digest) -> String {
    format!("{}/{}", d.algorithm(), d.encoded())
}

/// The digest a `<alg>/<hex>` key part names.
pub(crate) fn parse_digest_key(part: &str) -> Option<Digest> {
    let (alg, hex) = part.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Every robot account and personal access token.
pub(crate) const CREDENTIALS: &str = "auth/credentials/";

/// A robot account or personal access token, by its id.
pub(crate) fn credential(id: &str) -> String {
    format!("{CREDENTIALS}{id}")
}

/// The id of a robot, by its name.
pub(crate) fn robot(name: &str) -> String {
    format!("auth/robots/{name}")
}

/// When a credential was last used.
pub(crate) fn credential_use(id: &str) -> String {
    format!("auth/credential-uses/{id}")
}

/// A record of the repository: `repositories/<repo>/<rest>`.
pub(crate) fn repo_key(repo: &Repository, rest: &str) -> String {
    format!("repositories/{repo}/{rest}")
}

/// The catalog entry of a repository (present once it has held anything).
pub(crate) fn catalog(repo: &Repository) -> String {
    format!("{CATALOG}{repo}")
}

/// The record linking blob `d` to the repository.
pub(crate) fn layer(repo: &Repository, d: &Digest) -> String {
    repo_key(repo, &format!("_layers/{}", digest_key(d)))
}

/// The links of the repository.
pub(crate) fn layers(repo: &Repository) -> String {
    repo_key(repo, "_layers/")
}

/// The reverse link of blob `d` to the repository.
pub(crate) fn blob_repository(d: &Digest, repo: &Repository) -> String {
    format!("{}{repo}", blob_repositories(d))
}

/// The reverse links of blob `d`.
pub(crate) fn blob_repositories(d: &Digest) -> String {
    format!("blob-repositories/{}/", digest_key(d))
}

/// The reverse revision of manifest `d` in the repository.
pub(crate) fn manifest_repository(d: &Digest, repo: &Repository) -> String {
    format!("{}{repo}", manifest_repositories(d))
}

/// The reverse revisions of manifest `d`.
pub(crate) fn manifest_repositories(d: &Digest) -> String {
    format!("manifest-repositories/{}/", digest_key(d))
}

/// The revision record of manifest `d` in the repository.
pub(crate) fn revision(repo: &Repository, d: &Digest) -> String {
    format!("{}{}", revisions(repo), digest_key(d))
}

/// The revisions of the repository.
pub(crate) fn revisions(repo: &Repository) -> String {
    repo_key(repo, "_manifests/revisions/")
}

/// The record of a tag.
pub(crate) fn tag(repo: &Repository, tag: &str) -> String {
    format!("{}{tag}", tags(repo))
}

/// The tags of the repository.
pub(crate) fn tags(repo: &Repository) -> String {
    repo_key(repo, "_manifests/tags/")
}

/// When a tag was last pulled.
pub(crate) fn pulled(repo: &Repository, tag: &str) -> String {
    format!("{}{tag}", pulls(repo))
}

/// A `<unix secs>` record (a pull, a mirror's check, a sync rule's run); `None` when it does
/// not read as one.
pub(crate) fn decode_secs(record: &[u8]) -> Option<u64> {
    std::str::from_utf8(record).ok()?.trim().parse().ok()
}

/// When a manifest was last pulled by digest (a tag has no `/`: the keys never meet).
pub(crate) fn pulled_manifest(repo: &Repository, d: &Digest) -> String {
    format!("{}{}", pulls(repo), digest_key(d))
}

/// When sync rule `n` of `upstream` last queued its tags: `<unix secs>`.
pub(crate) fn sync_planned(upstream: &str, n: usize) -> String {
    format!("mirror/planned/{upstream}/{n}")
}

/// When a mirrored tag was last checked at its upstream: `<unix secs>`.
pub(crate) fn checked(repo: &Repository, tag: &str) -> String {
    format!("{}{tag}", checks(repo))
}

/// The check records of the repository's mirrored tags.
pub(crate) fn checks(repo: &Repository) -> String {
    repo_key(repo, "_manifests/checked/")
}

/// The pull records of the repository.
pub(crate) fn pulls(repo: &Repository) -> String {
    repo_key(repo, "_manifests/pulled/")
}

/// The hints of the tags set to manifest `d`.
pub(crate) fn tagged(repo: &Repository, d: &Digest) -> String {
    repo_key(repo, &format!("_manifests/tagged/{}/", digest_key(d)))
}

/// The mark that every tag of the repository has its hint.
pub(crate) fn tag_index(repo: &Repository) -> String {
    repo_key(repo, "_manifests/tag-index")
}

/// The referrers of `subject` in the repository.
pub(crate) fn referrers(repo: &Repository, subject: &Digest) -> String {
    repo_key(repo, &format!("_referrers/{}/", digest_key(subject)))
}

/// The referrer record of manifest `d` to `subject`.
pub(crate) fn referrer(repo: &Repository, subject: &Digest, d: &Digest) -> String {
    format!("{}{}", referrers(repo, subject), digest_key(d))
}

/// The repository's record of an upload session.
pub(crate) fn repo_upload(repo: &Repository, id: &str) -> String {
    repo_key(repo, &format!("_uploads/{id}"))
}

/// The expiry record of an upload session.
pub(crate) fn upload(id: &str) -> String {
    format!("{UPLOADS}{id}")
}

/// The artifact record of manifest `d`.
pub(crate) fn artifact(repo: &Repository, d: &Digest) -> String {
    format!("{}{}", artifacts(repo), digest_key(d))
}

/// The artifact records of the repository.
pub(crate) fn artifacts(repo: &Repository) -> String {
    repo_key(repo, "_wharf/artifacts/")
}

/// The trust summary of manifest `d` (its signatures, verified).
pub(crate) fn trust(repo: &Repository, d: &Digest) -> String {
    repo_key(repo, &format!("_wharf/trust/{}", digest_key(d)))
}

/// The mark that blob `d` may be served under an `enforce` trust policy.
pub(crate) fn servable(repo: &Repository, d: &Digest) -> String {
    repo_key(repo, &format!("_wharf/servable/{}", digest_key(d)))
}

/// The record that a package version (its tag) is yanked.
pub(crate) fn yanked(repo: &Repository, tag: &str) -> String {
    format!("{}{tag}", yanks(repo))
}

/// The yanked records of the repository.
pub(crate) fn yanks(repo: &Repository) -> String {
    repo_key(repo, "_wharf/yanked/")
}

/// Every stream's events waiting for the webhooks they name.
pub(crate) const WEBHOOK_EVENTS: &str = "webhook-events/";

/// The events of one stream (a repository's key) waiting for the webhooks they name.
pub(crate) fn webhook_events(stream: &str) -> String {
    format!("{WEBHOOK_EVENTS}{stream}/")
}

/// A change's events waiting for the webhooks they name, under the id of the first.
pub(crate) fn webhook_change(stream: &str, id: &str) -> String {
    format!("{WEBHOOK_EVENTS}{stream}/{id}")
}

/// The events held for webhook `name`, every stream.
pub(crate) fn webhook_pending_all(name: &str) -> String {
    format!("webhooks/{name}/pending/")
}

/// The events of one stream (a repository's key) held for webhook `name`.
pub(crate) fn webhook_stream(name: &str, stream: &str) -> String {
    format!("webhooks/{name}/pending/{stream}/")
}

/// Events held for webhook `name`, under the id of the first.
pub(crate) fn webhook_event(name: &str, stream: &str, id: &str) -> String {
    format!("webhooks/{name}/pending/{stream}/{id}")
}

/// The events webhook `name` gave up.
pub(crate) fn webhook_parked_all(name: &str) -> String {
    format!("webhooks/{name}/parked/")
}

/// An event webhook `name` gave up.
pub(crate) fn webhook_parked(name: &str, id: &str) -> String {
    format!("webhooks/{name}/parked/{id}")
}

/// Every process's record of its last deliveries to webhook `name`.
pub(crate) fn webhook_recent_all(name: &str) -> String {
    format!("webhooks/{name}/recent/")
}

/// A process's record of its last deliveries to webhook `name`.
pub(crate) fn webhook_recent(name: &str, process: &str) -> String {
    format!("webhooks/{name}/recent/{process}")
}

/// A queued job.
pub(crate) fn job_pending(id: &str) -> String {
    format!("{JOBS_PENDING}{id}")
}

/// The lease of a job.
pub(crate) fn job_lease(id: &str) -> String {
    format!("jobs/leases/{id}")
}

/// A job given up.
pub(crate) fn job_parked(id: &str) -> String {
    format!("{JOBS_PARKED}{id}")
}

/// The doomed mark of a digest.
pub(crate) fn doomed_digest(d: &Digest) -> String {
    format!("{GC_DOOMED}{}", digest_key(d))
}

/// The doomed mark of a tag.
pub(crate) fn doomed_tag(repo: &Repository, tag: &str) -> String {
    format!("{GC_DOOMED}tags/{}", Digest::sha256(format!("{repo}:{tag}").as_bytes()).encoded())
}

/// A process's search stamp.
pub(crate) fn search_stamp(process: &str) -> String {
    format!("{SEARCH_STAMPS}{process}")
}

/// The hint that `tag` was set to `digest`: written with the tag, never removed when the tag
/// moves, so a reader checks it against the tag record.
pub(crate) fn tagged_write(repo: &Repository, digest: &Digest, tag: &str) -> Write {
    Write::Set { key: format!("{}{tag}", tagged(repo, digest)), value: Bytes::new() }
}

/// The record of a manifest revision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Revision {
    pub(crate) media_type: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Digest>,
    /// When it was pushed (unix seconds; absent in records of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pushed: Option<u64>,
    /// Fetched from a mirror's upstream: its blobs and children are fetched when a client
    /// asks for them, so their absence is not damage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) mirrored: bool,
}

/// A tag record: `<digest> <size> <media type>`, then a line with when it was pushed (older
/// records: `<digest>` alone, or without the time).
#[derive(Debug)]
pub(crate) struct TagRecord {
    pub(crate) digest: Digest,
    /// The manifest's size and media type, when the record holds them.
    pub(crate) head: Option<(u64, String)>,
    /// When the tag was pushed (unix seconds), when the record says.
    pub(crate) pushed: Option<u64>,
}

impl TagRecord {
    pub(crate) fn encode(digest: &Digest, size: u64, media_type: &str) -> Bytes {
        format!("{digest} {size} {media_type}\n{}", now_secs()).into()
    }

    pub(crate) fn decode(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let (text, pushed) = match text.split_once('\n') {
            Some((head, time)) => (head, time.trim().parse().ok()),
            None => (text, None),
        };
        let mut parts = text.trim().splitn(3, ' ');
        let digest = parts.next()?.parse().ok()?;
        let head = match (parts.next().map(str::parse), parts.next()) {
            (Some(Ok(size)), Some(media_type)) if !media_type.is_empty() => {
                Some((size, media_type.to_owned()))
            }
            _ => None,
        };
        Some(Self { digest, head, pushed })
    }
}

/// A link record: `<size> <unix secs linked>`. Records of older versions hold the size alone
/// (or nothing): their time reads as 0, long ago.
pub(crate) struct LinkRecord {
    /// The blob's size, when the record holds it.
    pub(crate) size: Option<u64>,
    /// When the link was written.
    pub(crate) linked: u64,
}

impl LinkRecord {
    pub(crate) fn encode(size: u64) -> Bytes {
        format!("{size} {}", now_secs()).into()
    }

    pub(crate) fn decode(record: &[u8]) -> Self {
        let mut fields = std::str::from_utf8(record).unwrap_or_default().split(' ');
        let size = fields.next().and_then(|s| s.parse().ok());
        let linked = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        Self { size, linked }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_records_old_and_new() {
        let digest = Digest::sha256(b"m");
        let new =
            TagRecord::decode(&TagRecord::encode(&digest, 42, "application/vnd.oci.image.manifest.v1+json"))
                .expect("new record");
        assert_eq!(new.digest, digest);
        assert_eq!(new.head, Some((42, "application/vnd.oci.image.manifest.v1+json".to_owned())));
        let old = TagRecord::decode(digest.as_str().as_bytes()).expect("old record");
        assert_eq!((old.digest, old.head), (digest, None));
        assert!(TagRecord::decode(b"not a digest").is_none());
        assert!(TagRecord::decode(b"").is_none());
    }

    #[test]
    fn keys_read_back() {
        let repo: Repository = "team/app".parse().expect("repo");
        let d = Digest::sha256(b"m");
        assert_eq!(layer(&repo, &d), format!("repositories/team/app/_layers/sha256/{}", d.encoded()));
        assert_eq!(parse_digest_key(&digest_key(&d)), Some(d.clone()));
        assert!(revision(&repo, &d).starts_with(&revisions(&repo)));
        assert!(blob_repository(&d, &repo).ends_with("/team/app"));
        assert_eq!(catalog(&repo), "catalog/team/app");
    }
}
