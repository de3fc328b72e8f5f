//! Robot accounts and personal access tokens: made through the API, bounded by their grants
//! and their maker's rights, used with Basic credentials and through the token endpoint, and
//! refused on the very next request by another process over the same storage once disabled,
//! deleted or expired.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use wharf_server::config::FileConfig;
use wharf_server::{Server, ServerHandle, Wharf};
use wharf_types::Digest;

use crate::access::Secure;
use crate::common::OCI_MANIFEST;

/// A second server over the same configuration and data directory (another process, as far
/// as the storage knows): its base URL and handle.
async fn second(reg: &Secure) -> (String, ServerHandle) {
    let path = reg.setup.path();
    let file = FileConfig::read(&path.join("wharf.toml")).expect("config");
    let data = path.join("wharf-data");
    let store = wharf_store::FsStore::open(&data).await.expect("store");
    let tls = file.tls(path).expect("tls").expect("[tls]");
    let access = file.access(path, Some(&data)).expect("access").expect("[auth]");
    let server = Server::bind("127.0.0.1:0".parse().expect("addr"), Wharf::new(Arc::new(store)))
        .await
        .expect("bind")
        .with_tls(tls)
        .with_access(access);
    (format!("https://localhost:{}", server.local_addr().port()), server.spawn())
}

async fn create(
    reg: &Secure,
    path: &str,
    who: (&str, &str),
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let r =
        reg.http.post(reg.url(path)).basic_auth(who.0, Some(who.1)).json(&body).send().await.expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `GET path` as `who`, as JSON.
async fn get_json(reg: &Secure, path: &str, who: (&str, &str)) -> serde_json::Value {
    let r = reg.http.get(reg.url(path)).basic_auth(who.0, Some(who.1)).send().await.expect("send");
    r.json().await.expect("json")
}

/// Pushes a one-blob image to `repo:tag` at `base` with `auth` applied to every request;
/// the statuses of the blob and manifest pushes.
pub(crate) async fn push(
    http: &reqwest::Client,
    base: &str,
    auth: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    repo: &str,
    tag: &str,
) -> (u16, u16) {
    let config = format!("{{\"robot\":\"{repo}:{tag}\"}}");
    let digest = Digest::sha256(config.as_bytes());
    let blob =
        auth(http.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}")).body(config.clone()))
            .send()
            .await
            .expect("send")
            .status()
            .as_u16();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.to_string(), "size": config.len() },
        "layers": []
    })
    .to_string();
    let put = auth(
        http.put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest),
    )
    .send()
    .await
    .expect("send")
    .status()
    .as_u16();
    (blob, put)
}

#[tokio::test]
async fn a_robot_pushes_only_where_it_may_and_is_refused_everywhere_once_disabled() {
    let reg = Secure::start("").await;
    let (other, other_handle) = second(&reg).await;
    let grants = json!([{ "repositories": ["ci/app"], "actions": ["pull", "push"] }]);

    // Only administrators make robots, and never beyond what they hold.
    let (status, _) = create(
        &reg,
        "/v2/_wharf/robots",
        ("alice", "alice-pw"),
        json!({ "name": "ci-app", "grants": grants }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = create(
        &reg,
        "/v2/_wharf/robots",
        ("admin", "admin-pw"),
        json!({ "name": "x", "grants": [{ "repositories": ["ci/app"], "actions": ["admin"] }] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "robots never administer");
    let (status, robot) = create(
        &reg,
        "/v2/_wharf/robots",
        ("admin", "admin-pw"),
        json!({ "name": "ci-app", "grants": grants }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{robot}");
    assert_eq!(robot["username"], "robot$ci-app");
    let secret = robot["secret"].as_str().expect("the secret, shown once").to_owned();
    assert!(robot["expires"].as_u64().is_some(), "robots expire by default");
    let (status, _) = create(
        &reg,
        "/v2/_wharf/robots",
        ("admin", "admin-pw"),
        json!({ "name": "ci-app", "grants": grants }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "one robot per name");

    // Basic credentials, on either process.
    let basic = |r: reqwest::RequestBuilder| r.basic_auth("robot$ci-app", Some(secret.clone()));
    assert_eq!(push(&reg.http, &reg.base, &basic, "ci/app", "v1").await, (201, 201));
    assert_eq!(push(&reg.http, &other, &basic, "ci/app", "v2").await, (201, 201));
    assert_eq!(push(&reg.http, &reg.base, &basic, "ci/other", "v1").await, (403, 403));
    let delete = basic(reg.http.delete(reg.url("/v2/ci/app/manifests/v1"))).send().await.expect("send");
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    let wrong = |r: reqwest::RequestBuilder| r.basic_auth("robot$other", Some(secret.clone()));
    assert_eq!(push(&reg.http, &reg.base, &wrong, "ci/app", "v3").await, (401, 401), "its secret is its own");
    let r = basic(reg.http.get(reg.url("/v2/_wharf/robots"))).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a robot administers nothing");

    // Through the token endpoint: the token grants what the robot may, of what it asks.
    let r = reg
        .token(
            Some(("robot$ci-app", &secret)),
            &["repository:ci/app:pull,push,delete repository:ci/other:push".into()],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token =
        r.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_owned();
    let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(token.clone());
    assert_eq!(push(&reg.http, &other, &bearer, "ci/app", "v4").await, (201, 201));
    assert_eq!(push(&reg.http, &other, &bearer, "ci/other", "v4").await, (403, 403), "insufficient_scope");

    // Listed with its last use.
    let mut listed = serde_json::Value::Null;
    for _ in 0..50 {
        listed = get_json(&reg, "/v2/_wharf/robots", ("admin", "admin-pw")).await;
        if listed["robots"][0]["lastUsed"].is_u64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // As the API's document says.
    let doc = crate::openapi::document();
    let mut errors = Vec::new();
    let schema = crate::openapi::response_schema(&doc, "/v2/_wharf/robots");
    crate::openapi::check(&doc, schema, &listed, "robots", &mut errors);
    let made = &doc["paths"]["/v2/_wharf/robots"]["post"]["responses"]["201"]["content"]["application/json"]
        ["schema"];
    crate::openapi::check(&doc, made, &robot, "robot", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(listed["robots"][0]["name"], "ci-app", "{listed}");
    assert!(listed["robots"][0]["lastUsed"].is_u64(), "{listed}");
    assert!(!listed.to_string().contains(&secret[20..]), "no secret in a listing");

    // Disabled through one process: the other refuses its very next request, token or not.
    let r = reg
        .http
        .patch(reg.url("/v2/_wharf/robots/ci-app"))
        .basic_auth("admin", Some("admin-pw"))
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    for auth in [&basic as &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder, &bearer] {
        let r = auth(reg.http.get(format!("{other}/v2/ci/app/tags/list"))).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(reg.token(Some(("robot$ci-app", &secret)), &[]).await.status(), StatusCode::UNAUTHORIZED);
    // Enabled again, then deleted.
    let r = reg
        .http
        .patch(reg.url("/v2/_wharf/robots/ci-app"))
        .basic_auth("admin", Some("admin-pw"))
        .json(&json!({ "disabled": false }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = basic(reg.http.get(format!("{other}/v2/ci/app/tags/list"))).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = reg
        .http
        .delete(reg.url("/v2/_wharf/robots/ci-app"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = bearer(reg.http.get(format!("{other}/v2/ci/app/tags/list"))).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    other_handle.shutdown().await.expect("clean shutdown");
    reg.stop().await;
}

#[tokio::test]
async fn a_personal_token_limited_to_pull_cannot_push_and_stops_at_its_expiry() {
    let reg = Secure::start("").await;
    reg.seed("team/app", "v1", "seed").await;
    // Never more than its owner holds.
    let (status, _) = create(
        &reg,
        "/v2/_wharf/tokens",
        ("alice", "alice-pw"),
        json!({ "name": "wide", "grants": [{ "repositories": ["**"], "actions": ["pull"] }] }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, made) = create(
        &reg,
        "/v2/_wharf/tokens",
        ("alice", "alice-pw"),
        json!({ "name": "pull-only", "grants": [{ "repositories": ["team/**"], "actions": ["pull"] }], "expiresIn": "3s" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["username"], "alice");
    let secret = made["secret"].as_str().expect("secret").to_owned();
    let pat = |r: reqwest::RequestBuilder| r.basic_auth("alice", Some(secret.clone()));
    let r = pat(reg.http.get(reg.url("/v2/team/app/manifests/v1")).header("Accept", OCI_MANIFEST))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(push(&reg.http, &reg.base, &pat, "team/app", "v2").await, (403, 403));
    // A token cannot make tokens; its owner sees it listed.
    let r = pat(reg.http.post(reg.url("/v2/_wharf/tokens")))
        .json(&json!({ "name": "again", "grants": [{ "repositories": ["team/app"], "actions": ["pull"] }] }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let listed = get_json(&reg, "/v2/_wharf/tokens", ("alice", "alice-pw")).await;
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(1), "{listed}");
    let doc = crate::openapi::document();
    let mut errors = Vec::new();
    crate::openapi::check(
        &doc,
        crate::openapi::response_schema(&doc, "/v2/_wharf/tokens"),
        &listed,
        "tokens",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let mine = get_json(&reg, "/v2/_wharf/tokens", ("bob", "bob-pw")).await;
    assert_eq!(mine["tokens"].as_array().map(Vec::len), Some(0), "each user sees their own");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = pat(reg.http.get(reg.url("/v2/team/app/manifests/v1")).header("Accept", OCI_MANIFEST))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "expired");
    reg.stop().await;
}

#[tokio::test]
async fn robots_made_by_the_operator_command_work_at_once_on_a_running_server() {
    let reg = Secure::start("").await;
    let storage = format!("fs:{}", reg.setup.path().join("wharf-data").display());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["--storage", &storage, "robot"])
            .args(args)
            .output()
            .expect("runs");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, out) =
        run(&["add", "deployer", "--repository", "ops/**", "--actions", "pull,push", "--expires", "1h"]);
    assert!(ok, "{out}");
    let made: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let secret = made["secret"].as_str().expect("secret").to_owned();
    let basic = |r: reqwest::RequestBuilder| r.basic_auth("robot$deployer", Some(secret.clone()));
    assert_eq!(push(&reg.http, &reg.base, &basic, "ops/site", "v1").await, (201, 201));
    assert_eq!(push(&reg.http, &reg.base, &basic, "team/app", "v1").await, (403, 403));
    let (ok, out) = run(&["disable", "deployer"]);
    assert!(ok && out.contains("\"disabled\": true"), "{out}");
    let r = basic(reg.http.get(reg.url("/v2/ops/site/tags/list"))).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (ok, out) = run(&["list"]);
    assert!(ok && out.contains("deployer") && !out.contains(&secret[20..]), "{out}");
    assert!(run(&["remove", "deployer"]).0);
    assert!(!run(&["remove", "deployer"]).0, "gone");
    assert!(!run(&["add", "x", "--repository", "a", "--actions", "admin"]).0, "robots never administer");
    reg.stop().await;
}

/// The web page: a user makes, uses and revokes a personal access token; an administrator
/// makes, disables, enables and deletes a robot; forged forms, grants beyond the maker and
/// other users' pages are refused, and what a visitor typed comes back escaped.
#[tokio::test]
async fn the_web_page_makes_and_revokes_tokens_and_robots() {
    use crate::access::{csrf_of, session_cookie, set_cookie};
    let reg = Secure::start("").await;
    reg.seed("team/app", "v1", "team").await;
    let web = reg.web_client();
    let get = |path: &str, cookie: &str| web.get(reg.url(path)).header("cookie", cookie.to_owned()).send();
    let post = |path: &str, cookie: &str, form: &[(&str, &str)]| {
        web.post(reg.url(path)).header("cookie", cookie.to_owned()).form(form).send()
    };
    // Signs `user` in: its session cookie.
    let sign_in = async |user: &str, password: &str| {
        let form = get("/login", "").await.expect("GET");
        let (nonce, _) = set_cookie(&form, "wharf_csrf").expect("a nonce");
        let csrf = csrf_of(&form.text().await.expect("body"));
        let nonce = format!("wharf_csrf={nonce}");
        let ok = post("/login", &nonce, &[("csrf", &csrf), ("username", user), ("password", password)])
            .await
            .expect("POST");
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        format!("wharf_session={}", session_cookie(&ok).expect("a session").0)
    };
    let secret_of = |html: &str| {
        let at = html.find(r#"id="secret" readonly size="72" value=""#).expect("the secret, shown once")
            + r#"id="secret" readonly size="72" value=""#.len();
        html[at..].split('"').next().expect("a secret").to_owned()
    };
    let status = async |secret: &str, user: &str, method: reqwest::Method, path: &str| {
        let r = reg
            .http
            .request(method, reg.url(path))
            .basic_auth(user, Some(secret))
            .send()
            .await
            .expect("send");
        r.status()
    };

    let alice = sign_in("alice", "alice-pw").await;
    let page = get("/tokens", &alice).await.expect("GET").text().await.expect("body");
    assert!(page.contains("Your access tokens") && page.contains("None yet."), "{page}");
    assert_eq!(
        get("/robots", &alice).await.expect("GET").status(),
        StatusCode::NOT_FOUND,
        "alice administers nothing"
    );
    assert_eq!(get("/tokens", "").await.expect("GET").status(), StatusCode::NOT_FOUND, "no one's tokens");
    let csrf = csrf_of(&page);
    let forged = post(
        "/tokens",
        &alice,
        &[("op", "create"), ("name", "x"), ("repositories", "team/**"), ("action", "pull")],
    );
    assert_eq!(
        forged.await.expect("POST").status(),
        StatusCode::FORBIDDEN,
        "a form without the session's token"
    );

    // A pull-only token: shown once, pulls, cannot push; more than alice has is refused.
    let made = post(
        "/tokens",
        &alice,
        &[
            ("csrf", &csrf),
            ("op", "create"),
            ("name", "ci"),
            ("repositories", "team/**"),
            ("action", "pull"),
            ("expires", "1h"),
        ],
    )
    .await
    .expect("POST");
    assert_eq!(made.status(), StatusCode::OK);
    assert_eq!(made.headers()["cache-control"], "no-store");
    let html = made.text().await.expect("body");
    let secret = secret_of(&html);
    assert!(secret.starts_with("wharf_"), "{secret}");
    assert_eq!(
        status(&secret, "alice", reqwest::Method::GET, "/v2/team/app/manifests/v1").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&secret, "alice", reqwest::Method::DELETE, "/v2/team/app/manifests/v1").await,
        StatusCode::FORBIDDEN
    );
    let again = get("/tokens", &alice).await.expect("GET").text().await.expect("body");
    assert!(again.contains("pull on team/**") && !again.contains(&secret), "listed, never its secret again");
    let wide = post(
        "/tokens",
        &alice,
        &[
            ("csrf", &csrf),
            ("op", "create"),
            ("name", "wide"),
            ("repositories", "secret/**"),
            ("action", "pull"),
        ],
    )
    .await
    .expect("POST");
    assert_eq!(wide.status(), StatusCode::FORBIDDEN);
    assert!(wide.text().await.expect("body").contains("may not hand on"));
    let odd = post(
        "/tokens",
        &alice,
        &[
            ("csrf", &csrf),
            ("op", "create"),
            ("name", "<script>alert(1)</script>"),
            ("repositories", "team/**"),
            ("action", "pull"),
        ],
    )
    .await
    .expect("POST");
    assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
    let html = odd.text().await.expect("body");
    assert!(!html.contains("<script>alert") && html.contains("&#60;script&#62;alert"), "escaped: {html}");
    // Revoked: refused at once.
    let id = {
        let listed = get_json_of(&reg, "/v2/_wharf/tokens", ("alice", "alice-pw")).await;
        listed["tokens"][0]["id"].as_str().expect("an id").to_owned()
    };
    let revoked =
        post("/tokens", &alice, &[("csrf", &csrf), ("op", "delete"), ("id", &id)]).await.expect("POST");
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        status(&secret, "alice", reqwest::Method::GET, "/v2/team/app/manifests/v1").await,
        StatusCode::UNAUTHORIZED
    );

    // The administrator's robots: made, disabled, enabled, deleted.
    let admin = sign_in("admin", "admin-pw").await;
    let page = get("/robots", &admin).await.expect("GET").text().await.expect("body");
    assert!(page.contains("Robot accounts"), "{page}");
    let csrf = csrf_of(&page);
    let made = post(
        "/robots",
        &admin,
        &[
            ("csrf", &csrf),
            ("op", "create"),
            ("name", "web-ci"),
            ("repositories", "team/app"),
            ("action", "pull"),
            ("action", "push"),
        ],
    )
    .await
    .expect("POST");
    let html = made.text().await.expect("body");
    let robot = secret_of(&html);
    assert!(html.contains("robot$web-ci"), "{html}");
    let pull =
        async || status(&robot, "robot$web-ci", reqwest::Method::GET, "/v2/team/app/manifests/v1").await;
    assert_eq!(pull().await, StatusCode::OK);
    let id = get_json_of(&reg, "/v2/_wharf/robots", ("admin", "admin-pw")).await["robots"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    for (op, expected) in [
        ("disable", StatusCode::UNAUTHORIZED),
        ("enable", StatusCode::OK),
        ("delete", StatusCode::UNAUTHORIZED),
    ] {
        let done = post("/robots", &admin, &[("csrf", &csrf), ("op", op), ("id", &id)]).await.expect("POST");
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{op}");
        assert_eq!(pull().await, expected, "after {op}");
    }
    // alice cannot act on the admin's page, even with a session of her own.
    let refused =
        post("/robots", &alice, &[("csrf", &csrf), ("op", "delete"), ("id", &id)]).await.expect("POST");
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    reg.stop().await;
}

/// `GET path` as `who`, as JSON.
async fn get_json_of(reg: &Secure, path: &str, who: (&str, &str)) -> serde_json::Value {
    get_json(reg, path, who).await
}
