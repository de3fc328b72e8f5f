//! The token endpoint of the Docker registry token specification: `GET /token` with Basic
//! credentials or none, the OAuth2 form (`POST /token`, `grant_type=password` or
//! `refresh_token`) that containerd-based clients use, and OAuth 2.0 Token Exchange
//! (RFC 8693) of a workload's OIDC token for a registry token.

use std::net::IpAddr;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use wharf_auth::{Denied, Identity, Principal, Scope};

use super::AccessControl;
use crate::error::{Error, Result};
use crate::text::first;

/// The largest form body accepted: it comes before any credential is checked, so it is small
/// (a user name, a password, a refresh token and a few scopes fit many times over).
const MAX_FORM: usize = 32 * 1024;

/// RFC 8693's grant type, and the subject token types taken (an OIDC token is a JWT).
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const SUBJECT_TYPES: [&str; 2] =
    ["urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"];

/// Answers `GET`/`POST /token`.
pub(crate) async fn endpoint(
    access: &AccessControl,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: axum::body::Body,
    client: Option<IpAddr>,
) -> Result<Response> {
    match *method {
        Method::GET => get(access, &pairs(query.unwrap_or_default()), headers, client).await,
        Method::POST => {
            let bytes = axum::body::to_bytes(body, MAX_FORM)
                .await
                .map_err(|_| Error::TooLarge(format!("the token form exceeds {MAX_FORM} bytes")))?;
            post(access, &pairs(&String::from_utf8_lossy(&bytes)), client).await
        }
        _ => Err(Error::MethodNotAllowed {
            method: crate::text::printable(method.as_str(), 32),
            allow: "GET, POST",
        }),
    }
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space).
fn pairs(text: &str) -> Vec<(String, String)> {
    crate::text::query_pairs(Some(&text.replace('+', "%20")))
}

fn values<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn check_service(access: &AccessControl, pairs: &[(String, String)]) -> Result<()> {
    match first(pairs, "service") {
        Some(s) if s != access.auth.tokens().service => Err(Error::ParameterInvalid(format!(
            "service `{}`: this token service issues tokens for `{}`",
            crate::text::printable(s, 100),
            access.auth.tokens().service
        ))),
        _ => Ok(()),
    }
}

fn scopes<'a>(list: impl Iterator<Item = &'a str>) -> Result<Vec<Scope>> {
    let mut out = Vec::new();
    for s in list {
        out.extend(Scope::parse_list(s).map_err(|e| Error::ParameterInvalid(e.to_string()))?);
    }
    Ok(out)
}

fn refused(access: &AccessControl, denied: Denied, user: &str, client: Option<IpAddr>, grant: &str) -> Error {
    // Attempts the failed-login limit refused unchecked are not recorded one by one.
    if !matches!(denied, Denied::TooMany(_)) {
        access.audit.login(user, client, grant, Err(denied.to_string()), serde_json::Value::Null);
    }
    match denied {
        Denied::TooMany(after) => Error::TooManyRequests {
            message: Denied::TooMany(after).to_string(),
            retry_after: after.as_secs().max(1),
        },
        other => Error::Unauthorized { message: other.to_string(), challenge: None },
    }
}

async fn get(
    access: &AccessControl,
    pairs: &[(String, String)],
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Response> {
    check_service(access, pairs)?;
    let requested = scopes(values(pairs, "scope"))?;
    let principal = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        None => Principal::anonymous(),
        Some(value) => {
            let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
            let Some((user, password)) =
                scheme.eq_ignore_ascii_case("basic").then(|| super::basic(rest.trim())).flatten()
            else {
                return Err(Error::Unauthorized {
                    message: "the token endpoint takes Basic credentials".into(),
                    challenge: None,
                });
            };
            access
                .check_basic(&user, &password, client)
                .await
                .map(|(principal, _)| principal)
                .map_err(|d| refused(access, d, &user, client, "basic"))?
        }
    };
    let offline = first(pairs, "offline_token") == Some("true");
    issue(access, &principal, &requested, offline, client, "basic", true)
}

async fn post(
    access: &AccessControl,
    pairs: &[(String, String)],
    client: Option<IpAddr>,
) -> Result<Response> {
    check_service(access, pairs)?;
    let requested = scopes(values(pairs, "scope"))?;
    let grant = first(pairs, "grant_type").unwrap_or_default();
    let principal = match grant {
        "password" => {
            let user = first(pairs, "username").unwrap_or_default();
            let password = first(pairs, "password").unwrap_or_default();
            access
                .check_basic(user, password, client)
                .await
                .map(|(principal, _)| principal)
                .map_err(|d| refused(access, d, user, client, "password"))?
        }
        "refresh_token" => {
            let token = first(pairs, "refresh_token").unwrap_or_default();
            Principal::from(
                access.auth.refresh(token).map_err(|d| refused(access, d, "-", client, "refresh_token"))?,
            )
        }
        TOKEN_EXCHANGE => {
            let kind = first(pairs, "subject_token_type").unwrap_or_default();
            if !SUBJECT_TYPES.contains(&kind) {
                return Err(Error::ParameterInvalid(format!(
                    "subject_token_type `{}`: expected {}",
                    crate::text::printable(kind, 100),
                    SUBJECT_TYPES.join(" or ")
                )));
            }
            let token = first(pairs, "subject_token").unwrap_or_default();
            access
                .check_workload(token)
                .await
                .map_err(|d| refused(access, d, "-", client, "token-exchange"))?
        }
        other => {
            return Err(Error::ParameterInvalid(format!(
                "grant_type `{}`: expected password, refresh_token or {TOKEN_EXCHANGE}",
                crate::text::printable(other, 64)
            )));
        }
    };
    let offline = grant == "password" && first(pairs, "access_type") == Some("offline");
    let grant = if grant == TOKEN_EXCHANGE { "token-exchange" } else { grant };
    issue(access, &principal, &requested, offline, client, grant, false)
}

/// A token for `principal` granting what it may of `requested` (to a robot, a personal
/// token's holder or a workload: naming the credential, without a refresh token, expiring
/// with the credential at the latest).
fn issue(
    access: &AccessControl,
    principal: &Principal,
    requested: &[Scope],
    offline: bool,
    client: Option<IpAddr>,
    grant: &str,
    docker_form: bool,
) -> Result<Response> {
    let identity = &principal.identity;
    let granted = access.auth.grant(principal, requested);
    let subject = match identity {
        Identity::Anonymous => None,
        Identity::User(u) | Identity::Robot(u) | Identity::External(u) => Some(u.as_str()),
    };
    let credential = principal.credential.as_deref();
    let issued = access
        .auth
        .tokens()
        .issue_to(subject, granted.clone(), credential)
        .map_err(|e| Error::BadRequest(format!("issuing a token: {e}")))?;
    let mut body = serde_json::json!({
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at(),
    });
    if docker_form {
        body["token"] = serde_json::json!(issued.token);
    } else {
        body["scope"] = serde_json::json!(wharf_auth::join_scopes(&granted));
        body["token_type"] = serde_json::json!("Bearer");
    }
    if grant == "token-exchange" {
        body["issued_token_type"] = serde_json::json!("urn:ietf:params:oauth:token-type:access_token");
    }
    if offline
        && credential.is_none()
        && let Some(user) = subject
        && let Some(refresh) = access.auth.refresh_token_for(user)
    {
        body["refresh_token"] = serde_json::json!(refresh);
    }
    if subject.is_some() {
        let mut scopes = serde_json::json!({
            "requested": wharf_auth::join_scopes(requested),
            "granted": wharf_auth::join_scopes(&granted),
        });
        if let Some(c) = &principal.credential {
            scopes["credential"] = serde_json::json!({ "id": c.id, "name": c.name, "kind": c.kind });
            if !c.claims.is_empty() {
                scopes["credential"]["claims"] = serde_json::json!(c.claims);
            }
        }
        access.audit.login(identity.name(), client, grant, Ok(()), scopes);
    }
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(response)
}
