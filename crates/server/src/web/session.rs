//! Web sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS
//! or behind an `https` public URL), kept in memory by its SHA-256 (a lookup's timing says
//! nothing of the ids), with the user who logged in and the CSRF token its forms carry.
//!
//! Only a login starts a session, and a user holds at most [`MAX_PER_USER`]: nothing an
//! anonymous visitor sends is kept, so no flood of visits can log anyone out. The forms of
//! anonymous visitors (the login form) are protected by a signed double-submit token
//! instead: a random nonce in a `wharf_csrf` cookie, and in the form the SHA-256 of a secret
//! of this process and the nonce, which another site can neither read nor compute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub(crate) const COOKIE: &str = "wharf_session";
/// How long a session lives.
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The CSRF nonce cookie of anonymous visitors.
pub(crate) const CSRF_COOKIE: &str = "wharf_csrf";
/// The most sessions kept: past it, expired ones go, then the oldest.
const MAX_SESSIONS: usize = 10_000;
/// The most sessions of one user: a new login ends the user's oldest beyond it.
pub(crate) const MAX_PER_USER: usize = 32;

/// What a session holds.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The user logged in, if any.
    pub(crate) user: Option<String>,
    /// The token every form of this session carries.
    pub(crate) csrf: String,
    expires: Instant,
}

/// The sessions of one server process (a restart logs everyone out).
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
    /// Signs anonymous visitors' CSRF nonces.
    secret: [u8; 32],
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.by_hash.lock().map_or(0, |m| m.len());
        f.debug_struct("Sessions").field("sessions", &n).finish_non_exhaustive()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        let mut secret = [0; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self { by_hash: Mutex::new(HashMap::new()), secret }
    }
}

/// A fresh random token (two v4 UUIDs: 244 random bits), hex.
fn token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn key(id: &str) -> String {
    wharf_types::Digest::sha256(id.as_bytes()).encoded().to_owned()
}

impl Sessions {
    /// The live session `id` names.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let map = self.by_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&key(id)).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Starts a session for `user` (who just logged in): its id and what it holds. The
    /// user's oldest sessions beyond [`MAX_PER_USER`] end.
    pub(crate) fn start(&self, user: &str) -> (String, Session) {
        let id = token();
        let session =
            Session { user: Some(user.to_owned()), csrf: token(), expires: Instant::now() + LIFETIME };
        let mut map = self.by_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut own: Vec<(Instant, String)> = map
            .iter()
            .filter(|(_, s)| s.user.as_deref() == Some(user))
            .map(|(k, s)| (s.expires, k.clone()))
            .collect();
        if own.len() >= MAX_PER_USER {
            own.sort();
            for (_, k) in own.iter().take(own.len() + 1 - MAX_PER_USER) {
                map.remove(k);
            }
        }
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key(&id), session.clone());
        (id, session)
    }

    /// How many sessions are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_hash.lock().map_or(0, |m| m.len())
    }

    /// The CSRF token of an anonymous visitor's nonce: signed with this process's secret.
    pub(crate) fn csrf_for(&self, nonce: &str) -> String {
        let mut bytes = self.secret.to_vec();
        bytes.extend_from_slice(b"wharf csrf\0");
        bytes.extend_from_slice(nonce.as_bytes());
        wharf_types::Digest::sha256(&bytes).encoded().to_owned()
    }

    /// A new nonce for an anonymous visitor's CSRF cookie.
    pub(crate) fn nonce() -> String {
        token()
    }

    /// Ends the session `id` names.
    pub(crate) fn end(&self, id: &str) {
        self.by_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key(id));
    }
}

/// The session id a request's `Cookie` headers carry.
pub(crate) fn cookie(headers: &http::HeaderMap) -> Option<String> {
    cookie_named(headers, COOKIE)
}

/// The value (64 hex digits) of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie_named(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, value)| *n == name && value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value for cookie `name` holding `value` (`None`: the cookie removed).
pub(crate) fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match value {
        Some(value) => format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether a form's CSRF token is the expected one (constant-time).
pub(crate) fn csrf_matches(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    !expected.is_empty()
        && expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_find_and_end() {
        let sessions = Sessions::default();
        let (id, session) = sessions.start("alice");
        assert_eq!(sessions.get(&id).and_then(|s| s.user), Some("alice".into()));
        assert!(csrf_matches(&session.csrf, &session.csrf));
        assert!(!csrf_matches(&session.csrf, &token()));
        assert!(!csrf_matches("", ""));
        assert!(sessions.get(&token()).is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, format!("a=b; {COOKIE}={id}").parse().expect("header"));
        assert_eq!(cookie(&headers), Some(id));
        headers.insert(http::header::COOKIE, format!("{COOKIE}=../../etc").parse().expect("header"));
        assert_eq!(cookie(&headers), None);
        assert!(set_cookie(COOKIE, Some("x"), true).ends_with("; Secure"));
    }

    #[test]
    fn a_user_holds_a_bounded_number_of_sessions_and_anonymous_csrf_is_signed() {
        let sessions = Sessions::default();
        let (bob, _) = sessions.start("bob");
        let first = sessions.start("alice").0;
        for _ in 0..MAX_PER_USER + 5 {
            sessions.start("alice");
        }
        assert_eq!(sessions.len(), MAX_PER_USER + 1);
        assert!(sessions.get(&first).is_none(), "alice's oldest session ended");
        assert!(sessions.get(&bob).is_some(), "bob's stays");
        let nonce = Sessions::nonce();
        let signed = sessions.csrf_for(&nonce);
        assert!(csrf_matches(&signed, &sessions.csrf_for(&nonce)));
        assert_ne!(signed, Sessions::default().csrf_for(&nonce), "another process, another secret");
        assert_ne!(signed, sessions.csrf_for(&Sessions::nonce()));
    }
}
