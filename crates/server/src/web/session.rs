//! Web sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under TLS),
//! kept in memory by its SHA-256 (a lookup's timing says nothing of the ids), with the user
//! who logged in and the CSRF token its forms carry. Every visitor has one, so that the
//! forms of anonymous visitors are protected too; a login starts a new one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub(crate) const COOKIE: &str = "wharf_session";
/// How long a session lives.
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept: past it, expired ones go, then the oldest.
const MAX_SESSIONS: usize = 10_000;

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
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
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

    /// Starts a session for `user` (or an anonymous one): its id and what it holds.
    pub(crate) fn start(&self, user: Option<String>) -> (String, Session) {
        let id = token();
        let session = Session { user, csrf: token(), expires: Instant::now() + LIFETIME };
        let mut map = self.by_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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

    /// Ends the session `id` names.
    pub(crate) fn end(&self, id: &str) {
        self.by_hash.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key(id));
    }
}

/// The session id a request's `Cookie` headers carry.
pub(crate) fn cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| {
            *name == COOKIE && value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value for session `id` (`None`: the cookie removed).
pub(crate) fn set_cookie(id: Option<&str>, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether a form's CSRF token is the session's (constant-time).
pub(crate) fn csrf_matches(session: &Session, presented: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    session.csrf.len() == presented.len() && bool::from(session.csrf.as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_find_and_end() {
        let sessions = Sessions::default();
        let (id, session) = sessions.start(Some("alice".into()));
        assert_eq!(sessions.get(&id).and_then(|s| s.user), Some("alice".into()));
        assert!(csrf_matches(&session, &session.csrf));
        assert!(!csrf_matches(&session, &token()));
        assert!(sessions.get(&token()).is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, format!("a=b; {COOKIE}={id}").parse().expect("header"));
        assert_eq!(cookie(&headers), Some(id));
        headers.insert(http::header::COOKIE, format!("{COOKIE}=../../etc").parse().expect("header"));
        assert_eq!(cookie(&headers), None);
        assert!(set_cookie(Some("x"), true).ends_with("; Secure"));
    }
}
