//! Robot accounts (`/v2/_wharf/robots`, administrators) and personal access tokens
//! (`/v2/_wharf/tokens`, each user their own): made, listed, disabled, deleted.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use wharf_auth::Principal;
use wharf_auth::credential::Kind;

use super::context::{Ctx, Gate};
use super::respond::json_value;
use super::route::Route;
use crate::auth::credentials::Create;
use crate::auth::{AccessControl, Credentials};
use crate::error::{Error, Result};
use crate::text::printable;

/// The largest request body: a name, a few grants and an expiry fit many times over.
const MAX_BODY: usize = 16 * 1024;

/// What `PATCH` sends.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    disabled: bool,
}

/// Answers the robot and token routes.
pub(crate) async fn handle(route: &Route, ctx: &Ctx, gate: Gate<'_>, body: Body) -> Result<Response> {
    let Some((access, principal)) = gate.0 else {
        return Err(Error::RouteUnknown(
            "robot accounts and personal access tokens need access control ([auth])".into(),
        ));
    };
    let store = access.credentials().ok_or_else(|| Error::RouteUnknown("no credential storage".into()))?;
    let owner = principal.identity.name().to_owned();
    match (route, &ctx.method) {
        (Route::WharfRobots, &Method::GET) => {
            Ok(json_value(&serde_json::json!({ "robots": store.list(Kind::Robot, None).await? })))
        }
        (Route::WharfRobots, &Method::POST) => create(access, store, principal, Kind::Robot, body).await,
        (Route::WharfRobot(name), method) => {
            let robot = store
                .robot(name)
                .await?
                .ok_or_else(|| Error::RouteUnknown(format!("no robot named `{}`", printable(name, 64))))?;
            match *method {
                Method::GET => Ok(json_value(&crate::auth::credentials::View::from(&robot))),
                Method::PATCH => {
                    let change: Change = parse(body).await?;
                    let changed = store.set_disabled(&robot, change.disabled).await?;
                    Ok(json_value(&crate::auth::credentials::View::from(&changed)))
                }
                Method::DELETE => {
                    store.remove(&robot).await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(not_allowed(route, ctx)),
            }
        }
        (Route::WharfTokens, &Method::GET) => {
            Ok(json_value(&serde_json::json!({ "tokens": store.list(Kind::Personal, Some(&owner)).await? })))
        }
        (Route::WharfTokens, &Method::POST) => create(access, store, principal, Kind::Personal, body).await,
        (Route::WharfToken(id), &Method::DELETE) => {
            let token = store
                .get(id)
                .await?
                .filter(|c| c.kind == Kind::Personal && c.owner.as_deref() == Some(owner.as_str()))
                .ok_or_else(|| Error::RouteUnknown(format!("you hold no token `{}`", printable(id, 64))))?;
            store.remove(&token).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(not_allowed(route, ctx)),
    }
}

fn not_allowed(route: &Route, ctx: &Ctx) -> Error {
    Error::MethodNotAllowed { method: printable(ctx.method.as_str(), 32), allow: route.allowed() }
}

async fn parse<T: serde::de::DeserializeOwned>(body: Body) -> Result<T> {
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Error::TooLarge(format!("the request body exceeds {MAX_BODY} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("the request body: {e}")))
}

/// Makes a robot or a personal token of the caller's ([`Credentials::make`]). The answer
/// holds the secret, shown this once.
async fn create(
    access: &AccessControl,
    store: &Credentials,
    principal: &Principal,
    kind: Kind,
    body: Body,
) -> Result<Response> {
    let asked: Create = parse(body).await?;
    let (credential, secret) = store.make(access.authenticator(), principal, kind, asked).await?;
    let mut body =
        serde_json::to_value(crate::auth::credentials::View::from(&credential)).expect("a view serialises");
    body["secret"] = serde_json::json!(secret.expose());
    let mut response = json_value(&body);
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(response)
}
