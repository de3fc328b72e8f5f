//! htpasswd files with bcrypt entries, as `htpasswd -B` writes them and distribution and zot
//! read them: `user:$2y$…` lines, `#` comments, blank lines.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// The bcrypt cost of new entries (what `htpasswd -B` uses by default is 5; distribution's
/// docs use 10; 10 is ~60 ms here, paid once per login thanks to the credential cache).
pub const DEFAULT_COST: u32 = 10;

/// A checked user name: 1–256 characters, no `:`, no control character or space, not starting
/// with `robot$` (robots' names).
pub fn valid_user(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.chars().any(|c| c == ':' || c.is_control() || c.is_whitespace())
        // Robots' user names: no person may take one.
        && !name.starts_with(crate::credential::ROBOT_PREFIX)
}

/// The users of an htpasswd file, by name. Entries keep their order on rewrite.
#[derive(Clone, Default)]
pub struct Htpasswd {
    entries: BTreeMap<String, String>,
    /// The hash unknown users are checked against, made on first use at the file's most
    /// common cost.
    dummy: std::sync::OnceLock<String>,
}

impl PartialEq for Htpasswd {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Htpasswd {}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hashes are secrets too (offline guessing).
        f.debug_struct("Htpasswd")
            .field("users", &self.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Parses an htpasswd file. Every entry must be bcrypt (`$2y$`, `$2a$`, `$2b$`); MD5
    /// (`$apr1$`), SHA-1 (`{SHA}`), crypt and plain entries are refused with their line,
    /// since they are weak (and distribution refuses them too).
    pub fn parse(text: &str) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let bad = |message: String| Error::Htpasswd { line: n + 1, message };
            let (user, hash) = trimmed.split_once(':').ok_or_else(|| bad("expected user:hash".to_owned()))?;
            if !valid_user(user) {
                return Err(bad(format!("{} is not a user name", wharf_types::error::Input::new(user))));
            }
            if !is_bcrypt(hash) {
                return Err(bad(format!(
                    "the entry of `{user}` is not bcrypt (create it with `htpasswd -B` or `wharf-server user add`)"
                )));
            }
            if entries.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(bad(format!("`{user}` appears twice")));
            }
        }
        Ok(Self { entries, dummy: std::sync::OnceLock::new() })
    }

    /// The cost most entries of the file have ([`DEFAULT_COST`] when it has none).
    pub fn common_cost(&self) -> u32 {
        let mut counts = BTreeMap::new();
        for hash in self.entries.values() {
            if let Some(cost) = hash.get(4..6).and_then(|c| c.parse::<u32>().ok()) {
                *counts.entry(cost).or_insert(0usize) += 1;
            }
        }
        counts.into_iter().max_by_key(|(cost, n)| (*n, *cost)).map_or(DEFAULT_COST, |(cost, _)| cost)
    }

    /// A hash that no one's password is checked against for real, at the file's most common
    /// cost: unknown users cost as much time as known ones, so response times do not tell
    /// which names exist.
    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            bcrypt::hash(uuid::Uuid::new_v4().to_string(), self.common_cost()).unwrap_or_default()
        })
    }

    /// The file's text, one `user:hash` line per user.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (user, hash) in &self.entries {
            out.push_str(user);
            out.push(':');
            out.push_str(hash);
            out.push('\n');
        }
        out
    }

    /// Whether `user` has an entry.
    pub fn contains(&self, user: &str) -> bool {
        self.entries.contains_key(user)
    }

    /// The users, sorted.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `user`'s password (hashed with bcrypt at `cost`); returns whether the user was new.
    pub fn set(&mut self, user: &str, password: &str, cost: u32) -> Result<bool> {
        if !valid_user(user) {
            return Err(Error::Password(format!(
                "{} is not a user name",
                wharf_types::error::Input::new(user)
            )));
        }
        let hash = bcrypt::hash(password, cost).map_err(|e| Error::Password(e.to_string()))?;
        self.dummy = std::sync::OnceLock::new();
        Ok(self.entries.insert(user.to_owned(), hash).is_none())
    }

    /// Removes `user`; returns whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        self.dummy = std::sync::OnceLock::new();
        self.entries.remove(user).is_some()
    }

    /// Checks a password (bcrypt compares in constant time). An unknown user costs the same
    /// time as a known one.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        if let Some(hash) = self.entries.get(user) {
            bcrypt::verify(password, hash).unwrap_or(false)
        } else {
            let _ = bcrypt::verify(password, self.dummy_hash());
            false
        }
    }

    /// A fingerprint of `user`'s entry: it changes when the password does, so a refresh
    /// token issued before a password change stops working.
    pub fn fingerprint(&self, user: &str) -> Option<String> {
        use sha2::Digest as _;
        let hash = self.entries.get(user)?;
        let digest = sha2::Sha256::digest(format!("{user}:{hash}").as_bytes());
        Some(hex::encode(&digest[..12]))
    }
}

fn is_bcrypt(hash: &str) -> bool {
    let Some(rest) = ["$2y$", "$2a$", "$2b$"].iter().find_map(|p| hash.strip_prefix(p)) else {
        return false;
    };
    let Some((cost, salted)) = rest.split_once('$') else { return false };
    cost.len() == 2
        && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c))
        && salted.len() == 53
        && salted.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_htpasswd_writes() {
        // `htpasswd -nbB alice wonderland`
        let text = "# team\nalice:$2y$05$nZ1bG6mVwXAzvQnFO0y1b.OVK8w7n6XlCqbgV3dAz2a2Gk1p1w7Ku\n\n";
        let file = Htpasswd::parse(text).expect("parses");
        assert!(file.contains("alice"));
        assert_eq!(file.len(), 1);
        assert!(!format!("{file:?}").contains("$2y$"));
    }

    #[test]
    fn refuses_weak_and_malformed_entries() {
        for (text, line) in [
            ("bob:$apr1$abc$def\n", 1),
            ("#c\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", 2),
            ("bob:plain\n", 1),
            ("bob\n", 1),
            (":$2y$05$nZ1bG6mVwXAzvQnFO0y1b.OVK8w7n6XlCqbgV3dAz2a2Gk1p1w7Ku\n", 1),
            ("a:$2y$05$short\n", 1),
        ] {
            match Htpasswd::parse(text) {
                Err(Error::Htpasswd { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let twice = "a:$2y$05$nZ1bG6mVwXAzvQnFO0y1b.OVK8w7n6XlCqbgV3dAz2a2Gk1p1w7Ku\n".repeat(2);
        assert!(Htpasswd::parse(&twice).is_err());
    }

    #[test]
    fn set_verify_render_roundtrip() {
        let mut file = Htpasswd::default();
        assert!(file.set("alice", "wonderland", 4).expect("hash"));
        assert!(file.set("bob", "builder", 4).expect("hash"));
        let fp = file.fingerprint("alice");
        let again = Htpasswd::parse(&file.render()).expect("parses");
        assert_eq!(again, file);
        assert!(again.verify("alice", "wonderland"));
        assert!(!again.verify("alice", "Wonderland"));
        assert!(!again.verify("carol", "wonderland"));
        assert!(!file.set("alice", "new", 4).expect("hash"));
        assert_ne!(file.fingerprint("alice"), fp);
        assert!(file.set("a:b", "x", 4).is_err());
        assert!(file.remove("bob"));
        assert!(!file.verify("bob", "builder"));
    }

    #[test]
    fn unknown_users_cost_what_the_files_entries_cost() {
        let mut file = Htpasswd::default();
        assert_eq!(file.common_cost(), DEFAULT_COST);
        file.set("a", "x", 4).expect("hash");
        file.set("b", "x", 4).expect("hash");
        file.set("c", "x", 6).expect("hash");
        assert_eq!(file.common_cost(), 4);
        assert!(file.dummy_hash().starts_with("$2"));
        assert_eq!(file.dummy_hash().get(4..6), Some("04"));
    }
}
