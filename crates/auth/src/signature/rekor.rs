//! Rekor (v1) entries: the signed entry timestamp, the inclusion proof up to a signed
//! checkpoint, and what the entry's body says was logged.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{LogEntry, MAX_PROOF_HASHES, TrustRoot, base64, refuse};
use crate::error::Result;

/// The largest entry body read, in bytes.
const MAX_BODY_LEN: usize = 64 * 1024;
/// The largest checkpoint read, in bytes.
const MAX_CHECKPOINT_LEN: usize = 8 * 1024;

/// A transparency-log entry as a v0.3 bundle carries it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Entry {
    #[serde(default = "zero")]
    log_index: String,
    log_id: LogId,
    kind_version: KindVersion,
    integrated_time: String,
    inclusion_promise: Option<Promise>,
    inclusion_proof: Option<Proof>,
    canonicalized_body: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Debug, Deserialize)]
struct KindVersion {
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Proof {
    /// Protobuf's JSON leaves zeros out.
    #[serde(default = "zero")]
    log_index: String,
    root_hash: String,
    tree_size: String,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Checkpoint,
}

#[derive(Debug, Deserialize)]
struct Checkpoint {
    envelope: String,
}

fn zero() -> String {
    "0".to_owned()
}

/// What an entry's body says was logged.
pub(crate) struct Logged {
    pub(crate) kind: String,
    pub(crate) body: serde_json::Value,
}

impl Entry {
    /// Verifies the entry against the trusted logs: its SET (which authenticates the
    /// integrated time, index and body), and its inclusion proof when it carries one. Returns
    /// the entry and its body.
    pub(crate) fn verify(&self, trust: &TrustRoot) -> Result<(LogEntry, Logged)> {
        let number = |what: &str, s: &str| {
            s.parse::<u64>().map_err(|_| refuse(format!("log entry {what} `{}`", short(s))))
        };
        let index = number("index", &self.log_index)?;
        let time = number("integrated time", &self.integrated_time)?;
        let time = i64::try_from(time).map_err(|_| refuse("log entry time out of range"))?;
        let log_id = base64("the log id", &self.log_id.key_id)?;
        let key = trust.log(&log_id).ok_or_else(|| {
            refuse(format!("logged by an untrusted transparency log {}", hex::encode(&log_id)))
        })?;
        if self.canonicalized_body.len() > MAX_BODY_LEN * 4 / 3 + 4 {
            return Err(refuse("log entry body too large"));
        }
        let body = base64("the log entry body", &self.canonicalized_body)?;
        // The SET: the log's signature over the canonical JSON of the entry.
        let promise = self.inclusion_promise.as_ref().ok_or_else(|| {
            refuse("the log entry has no signed entry timestamp (Rekor v2 entries are not supported)")
        })?;
        let set = base64("the signed entry timestamp", &promise.signed_entry_timestamp)?;
        let canonical = format!(
            r#"{{"body":"{}","integratedTime":{time},"logID":"{}","logIndex":{index}}}"#,
            self.canonicalized_body.trim(),
            hex::encode(&log_id)
        );
        if !key.verify(canonical.as_bytes(), &set) {
            return Err(refuse("the log entry's signed entry timestamp does not verify"));
        }
        let inclusion_proof = match &self.inclusion_proof {
            Some(proof) => {
                proof.verify(&body, key)?;
                true
            }
            None => false,
        };
        let parsed: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| refuse("the log entry body is not JSON"))?;
        let kind = parsed["kind"].as_str().unwrap_or_default().to_owned();
        if kind != self.kind_version.kind {
            return Err(refuse("the log entry body is of another kind than the entry says"));
        }
        Ok((
            LogEntry { index, integrated_time: time, log_id: hex::encode(log_id), inclusion_proof },
            Logged { kind, body: parsed },
        ))
    }
}

impl Proof {
    /// RFC 6962's inclusion proof of the body's leaf up to the root hash, and that root in a
    /// checkpoint the log signed.
    fn verify(&self, body: &[u8], key: &super::PublicKey) -> Result<()> {
        let index: u64 = self.log_index.parse().map_err(|_| refuse("inclusion proof index"))?;
        let size: u64 = self.tree_size.parse().map_err(|_| refuse("inclusion proof tree size"))?;
        if index >= size {
            return Err(refuse("inclusion proof index past the tree"));
        }
        if self.hashes.len() > MAX_PROOF_HASHES {
            return Err(refuse(format!(
                "inclusion proof of {} hashes (at most {MAX_PROOF_HASHES})",
                self.hashes.len()
            )));
        }
        let root = base64("the inclusion proof root", &self.root_hash)?;
        let mut hashes = Vec::with_capacity(self.hashes.len());
        for h in &self.hashes {
            hashes.push(base64("an inclusion proof hash", h)?);
        }
        let leaf: [u8; 32] = Sha256::new().chain_update([0u8]).chain_update(body).finalize().into();
        if root_from_path(index, size, leaf, &hashes)? != root.as_slice() {
            return Err(refuse("the inclusion proof does not lead to its root hash"));
        }
        // The checkpoint: a signed note whose third line is that root.
        let envelope = &self.checkpoint.envelope;
        if envelope.len() > MAX_CHECKPOINT_LEN {
            return Err(refuse("checkpoint too large"));
        }
        let (text, signatures) =
            envelope.split_once("\n\n").ok_or_else(|| refuse("checkpoint is not a signed note"))?;
        let text = format!("{text}\n");
        let mut lines = text.lines();
        let (_origin, note_size, note_root) = (lines.next(), lines.next(), lines.next());
        if note_size != Some(self.tree_size.as_str())
            || note_root.map(|r| base64("checkpoint root", r)).transpose()?.as_deref()
                != Some(root.as_slice())
        {
            return Err(refuse("the checkpoint is of another tree than the inclusion proof"));
        }
        let hint = &key.digest()[..4];
        let signed = signatures.lines().filter_map(|l| l.strip_prefix("\u{2014} ")).any(|l| {
            l.rsplit_once(' ').and_then(|(_, sig)| base64("checkpoint signature", sig).ok()).is_some_and(
                |sig| sig.len() > 4 && &sig[..4] == hint && key.verify(text.as_bytes(), &sig[4..]),
            )
        });
        if !signed {
            return Err(refuse("the checkpoint is not signed by the log"));
        }
        Ok(())
    }
}

/// The root hash an inclusion path leads to (RFC 9162, 2.1.3.2).
fn root_from_path(index: u64, size: u64, leaf: [u8; 32], path: &[Vec<u8>]) -> Result<Vec<u8>> {
    let node = |l: &[u8], r: &[u8]| -> Vec<u8> {
        Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().to_vec()
    };
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = leaf.to_vec();
    for p in path {
        if s_n == 0 {
            return Err(refuse("inclusion proof longer than the tree"));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(refuse("inclusion proof shorter than the tree"));
    }
    Ok(r)
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(b: &[u8]) -> [u8; 32] {
        Sha256::new().chain_update([0u8]).chain_update(b).finalize().into()
    }

    fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
        Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().to_vec()
    }

    #[test]
    fn inclusion_paths_of_small_trees() {
        let (a, b, c) = (leaf(b"a"), leaf(b"b"), leaf(b"c"));
        assert_eq!(root_from_path(0, 1, a, &[]).ok(), Some(a.to_vec()));
        let ab = node(&a, &b);
        assert_eq!(root_from_path(0, 2, a, &[b.to_vec()]).ok(), Some(ab.clone()));
        assert_eq!(root_from_path(1, 2, b, &[a.to_vec()]).ok(), Some(ab.clone()));
        let abc = node(&ab, &c);
        assert_eq!(root_from_path(2, 3, c, std::slice::from_ref(&ab)).ok(), Some(abc.clone()));
        assert_eq!(root_from_path(0, 3, a, &[b.to_vec(), c.to_vec()]).ok(), Some(abc));
        assert!(root_from_path(0, 2, a, &[]).is_err(), "a short path");
        assert!(root_from_path(0, 1, a, &[b.to_vec()]).is_err(), "a long path");
    }
}
