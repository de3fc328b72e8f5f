//! Workload identity against an OIDC issuer Wharf did not write (`tests/oidc/issuer.py`:
//! PyJWT and cryptography, GitHub-Actions-shaped tokens signed with RS256, discovery and a
//! JWKS on loopback): the claim rules decide, every wrong token is refused, key rotations are
//! picked up without a restart, and the issuer's keys are fetched once per rotation.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::access::{Secure, Setup};
use crate::common::venv_python;

/// The audience the rules' issuer requires.
const AUDIENCE: &str = "wharf.test";

/// `tests/oidc/issuer.py` on a loopback port; killed when dropped.
pub(crate) struct TestIssuer {
    child: Child,
    pub(crate) url: String,
    http: reqwest::Client,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestIssuer {
    /// Started, or `None` when `.venv` lacks PyJWT and cryptography (see [`venv_python`]).
    pub(crate) fn start(test: &str) -> Option<Self> {
        let python = venv_python(test, &["jwt", "cryptography"])?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/issuer.py");
        let mut child =
            Command::new(python).arg(script).stdout(Stdio::piped()).spawn().expect("start the issuer");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
        let port: u16 =
            line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok()).expect("a port");
        Some(Self { child, url: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() })
    }

    /// A token for the test audience with `claims` over GitHub's for `acme/app` on
    /// `refs/heads/main`, signed with `key` (`current`, `retired`, `stranger`).
    pub(crate) async fn mint(&self, claims: Value, key: &str) -> String {
        let mut claims = claims;
        if claims.get("aud").is_none() {
            claims["aud"] = json!(AUDIENCE);
        }
        let r = self.http.post(format!("{}/mint", self.url)).json(&json!({ "claims": claims, "key": key }));
        let answer: Value = r.send().await.expect("mint").json().await.expect("json");
        answer["token"].as_str().expect("a token").to_owned()
    }

    pub(crate) async fn rotate(&self) {
        self.http.post(format!("{}/rotate", self.url)).send().await.expect("rotate");
    }

    /// How many times its JWKS and its discovery document were fetched.
    pub(crate) async fn fetches(&self) -> (u64, u64) {
        let stats: Value = self
            .http
            .get(format!("{}/stats", self.url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        (stats["jwks_fetches"].as_u64().expect("n"), stats["discovery_fetches"].as_u64().expect("n"))
    }

    /// `[[auth.oidc]]` trusting it, named `github`, with `rules` (`[[auth.oidc.rules]]`
    /// tables) after it.
    pub(crate) fn config(&self, rules: &str) -> String {
        format!(
            "\n[[auth.oidc]]\nname = \"github\"\nissuer = \"{}\"\naudience = \"{AUDIENCE}\"\n{rules}",
            self.url
        )
    }

    /// Appends [`config`](Self::config) to the configuration of `setup`.
    pub(crate) fn trusted_by(&self, setup: &Setup, rules: &str) {
        let path = setup.path().join("wharf.toml");
        let text = std::fs::read_to_string(&path).expect("config") + &self.config(rules);
        std::fs::write(&path, text).expect("write");
    }
}

/// GitHub's `acme/app` on `main` pushes `acme/app/**`; any of `acme`'s repositories pulls
/// `acme/**`.
const ACME_RULES: &str = r#"
[[auth.oidc.rules]]
claims = { repository = "acme/app", ref = "refs/heads/main" }
repositories = ["acme/app/**"]
actions = ["pull", "push"]

[[auth.oidc.rules]]
claims = { repository_owner = "acme" }
repositories = ["acme/**"]
actions = ["pull"]
"#;

/// A registry with TLS, the access rules of the other tests and an audit log, trusting `issuer`
/// with [`ACME_RULES`].
async fn registry(issuer: &TestIssuer) -> Secure {
    let setup = Setup::new("audit_log = \"audit.jsonl\"\n");
    issuer.trusted_by(&setup, ACME_RULES);
    Secure::serve(setup).await
}

/// `GET /token` with `token` as the Basic password: the status and the answer.
async fn token_by_basic(reg: &Secure, token: &str, scope: &str) -> (StatusCode, Value) {
    let r = reg
        .http
        .get(reg.url("/token"))
        .query(&[("service", "wharf"), ("scope", scope)])
        .basic_auth("oidc", Some(token))
        .send()
        .await
        .expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// RFC 8693's token exchange of `token`.
async fn exchange(reg: &Secure, token: &str, scope: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", token),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ("service", "wharf"),
        ("scope", scope),
    ];
    let r = reg.http.post(reg.url("/token")).form(&form).send().await.expect("send");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Pushes a one-blob image to `repo:v1` with `auth` on every request (as the robots' tests
/// do): the blob's and the manifest's statuses.
async fn push(
    reg: &Secure,
    auth: &dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    repo: &str,
) -> (u16, u16) {
    crate::robots::push(&reg.http, &reg.base, auth, repo, "v1").await
}

const PUSH_APP: &str = "repository:acme/app/web:pull,push";
/// Tokens issued per key in the fetch measurement.
const TOKENS: usize = 100;

#[tokio::test]
async fn a_workload_token_signs_in_by_its_claims_and_every_wrong_one_is_refused() {
    let Some(issuer) =
        TestIssuer::start("a_workload_token_signs_in_by_its_claims_and_every_wrong_one_is_refused")
    else {
        return;
    };
    let reg = registry(&issuer).await;
    let main = issuer.mint(json!({}), "current").await;

    // As the Basic password at /token: a registry token with what the rules give.
    let (status, answer) =
        token_by_basic(&reg, &main, &format!("{PUSH_APP} repository:acme/app/web:delete")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let bearer = answer["token"].as_str().expect("a token").to_owned();
    assert!(answer["expires_in"].as_u64().expect("n") <= 300, "no longer than the OIDC token");
    let with_bearer = |r: reqwest::RequestBuilder| r.bearer_auth(&bearer);
    assert_eq!(push(&reg, &with_bearer, "acme/app/web").await, (201, 201));
    let delete = reg.http.delete(reg.url("/v2/acme/app/web/manifests/v1")).bearer_auth(&bearer).send().await;
    assert_eq!(delete.expect("send").status(), StatusCode::FORBIDDEN, "delete was not granted");

    // Through RFC 8693's token exchange: the same, in OAuth's words.
    let (status, answer) = exchange(&reg, &main, PUSH_APP).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["scope"], PUSH_APP);

    // As Basic credentials on the registry's own requests.
    let basic = |r: reqwest::RequestBuilder| r.basic_auth("oidc", Some(&main));
    assert_eq!(push(&reg, &basic, "acme/app/api").await, (201, 201));
    assert_eq!(push(&reg, &basic, "acme/lib").await, (403, 403), "acme's workloads only pull acme/**");
    assert_eq!(push(&reg, &basic, "team/x").await, (403, 403));
    let pull =
        reg.http.get(reg.url("/v2/acme/app/web/manifests/v1")).basic_auth("oidc", Some(&main)).send().await;
    assert_eq!(pull.expect("send").status(), StatusCode::OK);
    let admin = reg.http.get(reg.url("/metrics")).basic_auth("oidc", Some(&main)).send().await;
    assert_eq!(admin.expect("send").status(), StatusCode::FORBIDDEN, "a workload never administers");

    // Another branch: valid, but no rule lets it push (acme's pull rule still matches).
    let dev = issuer.mint(json!({ "ref": "refs/heads/dev" }), "current").await;
    let (status, answer) = token_by_basic(&reg, &dev, PUSH_APP).await;
    assert_eq!(status, StatusCode::OK);
    let pull_only = answer["token"].as_str().expect("a token").to_owned();
    let with_pull_only = |r: reqwest::RequestBuilder| r.bearer_auth(&pull_only);
    assert_eq!(push(&reg, &with_pull_only, "acme/app/web").await.1, 403, "the token grants no push");
    assert_eq!(push(&reg, &|r| r.basic_auth("oidc", Some(&dev)), "acme/app/web").await, (403, 403));
    // Another owner's repository: no rule at all.
    let evil = issuer.mint(json!({ "repository": "evil/app", "repository_owner": "evil" }), "current").await;
    let (status, answer) = token_by_basic(&reg, &evil, PUSH_APP).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer.to_string().contains("no claim rule admits this token"), "{answer}");
    assert!(answer.to_string().contains("repository=evil/app"), "{answer}");

    // Another audience, expired, another issuer, a key the issuer never published.
    let wrong = [
        ("another audience", issuer.mint(json!({ "aud": "elsewhere" }), "current").await),
        ("an expired token", issuer.mint(json!({ "exp": wharf_auth::now() - 120 }), "current").await),
        ("another issuer", issuer.mint(json!({ "iss": "https://token.actions.example" }), "current").await),
        ("an unpublished key", issuer.mint(json!({}), "stranger").await),
    ];
    for (what, token) in &wrong {
        let (status, answer) = token_by_basic(&reg, token, PUSH_APP).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        let (status, _) = exchange(&reg, token, PUSH_APP).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} exchanged");
        assert_eq!(push(&reg, &|r| r.basic_auth("oidc", Some(token)), "acme/app/web").await.0, 401, "{what}");
    }

    // The issuer rotates its key: a token of the new key works at once, without a restart;
    // one of the key it took out of its JWKS no longer does.
    issuer.rotate().await;
    let fresh = issuer.mint(json!({}), "current").await;
    assert_eq!(token_by_basic(&reg, &fresh, PUSH_APP).await.0, StatusCode::OK);
    let retired = issuer.mint(json!({}), "retired").await;
    let (status, answer) = token_by_basic(&reg, &retired, PUSH_APP).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer.to_string().contains("a key the issuer does not publish"), "{answer}");
    assert_eq!(push(&reg, &basic, "acme/app/web").await.0, 401, "the first token's key is gone too");

    // The audit log names the workload by its claims.
    let audit = std::fs::read_to_string(reg.setup.path().join("audit.jsonl")).expect("audit log");
    let logins: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|r| r["identity"] == "github:repo:acme/app:ref:refs/heads/main" && r["result"] == "ok")
        .collect();
    assert!(!logins.is_empty(), "{audit}");
    // Its token sent directly on 8 requests after a token was issued for it: no login record
    // more (a token's use is audited once a minute); its pushes are, under its name.
    let direct = logins.iter().filter(|r| r["event"] == "login" && r.get("requested").is_none()).count();
    assert_eq!(direct, 0, "{logins:?}");
    assert!(logins.iter().any(|r| r["event"] == "push" && r["repository"] == "acme/app/api"), "{logins:?}");
    let claims = logins.iter().find_map(|r| r.pointer("/credential/claims"));
    let claims = claims.unwrap_or_else(|| panic!("no claims in {logins:?}"));
    assert_eq!(claims["repository"], "acme/app");
    assert_eq!(claims["run_id"], "6254118427");
    reg.stop().await;
}

/// The issuer's keys are fetched once per rotation however many tokens are issued, and
/// tokens naming made-up keys cannot make the registry fetch them more than a few times.
#[tokio::test]
async fn token_issuance_costs_one_key_fetch_per_rotation() {
    let Some(issuer) = TestIssuer::start("token_issuance_costs_one_key_fetch_per_rotation") else { return };
    let reg = registry(&issuer).await;
    let mut seen = Vec::new();
    for rotation in 0..3 {
        if rotation > 0 {
            issuer.rotate().await;
        }
        for i in 0..TOKENS {
            let token = issuer.mint(json!({ "run_id": format!("{rotation}-{i}") }), "current").await;
            let answer = if i % 2 == 0 {
                token_by_basic(&reg, &token, PUSH_APP).await
            } else {
                exchange(&reg, &token, PUSH_APP).await
            };
            assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
        }
        seen.push(issuer.fetches().await);
    }
    eprintln!("JWKS and discovery fetches after {TOKENS} tokens, then after each of 2 rotations: {seen:?}");
    assert_eq!(seen, [(1, 1), (2, 1), (3, 1)], "one JWKS fetch per key; the discovery document once");

    // 50 tokens naming a key the issuer never published, and 50 of the key the last rotation
    // took out: refused, with at most one fetch (the unknown key is then known to be absent).
    for key in ["stranger", "retired"] {
        for _ in 0..50 {
            let token = issuer.mint(json!({}), key).await;
            assert_eq!(token_by_basic(&reg, &token, PUSH_APP).await.0, StatusCode::UNAUTHORIZED);
        }
    }
    let (jwks, _) = issuer.fetches().await;
    eprintln!("JWKS fetches after 100 tokens of unpublished or retired keys: {}", jwks - 3);
    assert!(jwks - 3 <= 1, "{jwks}");
    reg.stop().await;
}
