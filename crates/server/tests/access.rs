//! Access control over real TLS: the issue's configuration verbatim, every caller × every
//! operation, refused writes that change nothing, failed-login limits, client certificates,
//! HTTP/2, and certificates and users reloaded while serving.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use wharf_auth::{Audience, Claims, Scope, SigningKey};
use wharf_server::config::FileConfig;
use wharf_server::{Server, ServerHandle, Wharf};
use wharf_types::Digest;

use crate::common::OCI_MANIFEST;
use crate::common::pki::Pki;

/// The configuration of issue 14, verbatim (also the interop suite's).
pub(crate) const ISSUE_CONFIG: &str = include_str!("data/auth/wharf.toml");

pub(crate) const PASSWORDS: [(&str, &str); 3] =
    [("alice", "alice-pw"), ("bob", "bob-pw"), ("admin", "admin-pw")];

/// A directory holding the issue's configuration, a CA and its server certificate under
/// `tls/`, and the three users.
pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) pki: Pki,
}

impl Setup {
    /// `auth_extra` is added to `[auth]`.
    pub(crate) fn new(auth_extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
        let pki = Pki::new(&dir.path().join("tls"));
        let mut users = wharf_auth::Htpasswd::default();
        for (user, password) in PASSWORDS {
            users.set(user, password, 4).expect("hash");
        }
        std::fs::write(dir.path().join("users.htpasswd"), users.render()).expect("write");
        let text = ISSUE_CONFIG.replace("[auth]\n", &format!("[auth]\n{auth_extra}"));
        std::fs::write(dir.path().join("wharf.toml"), text).expect("write");
        Self { dir, pki }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub(crate) struct Secure {
    pub(crate) setup: Setup,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    handle: Option<ServerHandle>,
}

pub(crate) fn client(ca_pem: &str, identity: Option<(String, String)>, h2: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA")])
        .resolve("localhost", "127.0.0.1:0".parse().expect("addr"));
    if let Some((cert, key)) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"));
    }
    if h2 {
        builder = builder.http2_prior_knowledge();
    }
    builder.build().expect("client")
}

impl Secure {
    pub(crate) async fn start(auth_extra: &str) -> Self {
        Self::serve(Setup::new(auth_extra)).await
    }

    pub(crate) async fn serve(setup: Setup) -> Self {
        Self::serve_with(setup, wharf_server::lifecycle::Lifecycle::default()).await
    }

    /// Serves `setup` with lifecycle rules (quotas, retention).
    pub(crate) async fn serve_with(setup: Setup, lifecycle: wharf_server::lifecycle::Lifecycle) -> Self {
        let file = FileConfig::read(&setup.path().join("wharf.toml")).expect("the issue's config parses");
        let data = setup.path().join("wharf-data");
        let store = wharf_store::FsStore::open(&data).await.expect("store");
        let tls = file.tls(setup.path()).expect("tls").expect("[tls]");
        let access = file.access(setup.path(), Some(&data)).expect("access").expect("[auth]");
        access.watch_rules(&setup.path().join("wharf.toml"), wharf_server::config::read_access_rules);
        // No password hash or key material in `Debug`.
        let debug = format!("{access:?}");
        assert!(
            !debug.contains("$2b$") && !debug.contains("PRIVATE") && debug.contains("Authenticator"),
            "{debug}"
        );
        let server = Server::bind(
            "127.0.0.1:0".parse().expect("addr"),
            Wharf::new(Arc::new(store)).with_lifecycle(lifecycle),
        )
        .await
        .expect("bind")
        .with_tls(tls)
        .with_access(access);
        let base = format!("https://localhost:{}", server.local_addr().port());
        let http = client(&setup.pki.ca_pem, None, false);
        Self { setup, base, http, handle: Some(server.spawn()) }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client for the web page: trusts the CA, follows no redirect.
    pub(crate) fn web_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.setup.pki.ca_pem.as_bytes()).expect("CA")])
            .resolve("localhost", "127.0.0.1:0".parse().expect("addr"))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub(crate) async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }

    /// The server's token signing key (created in the data directory).
    pub(crate) fn token_key(&self) -> SigningKey {
        let pem =
            std::fs::read_to_string(self.setup.path().join("wharf-data/auth/token.key")).expect("key file");
        SigningKey::from_pem(&pem).expect("key")
    }

    pub(crate) async fn token(&self, who: Option<(&str, &str)>, scopes: &[String]) -> reqwest::Response {
        let mut query: Vec<(&str, &str)> = vec![("service", "wharf")];
        for s in scopes {
            query.push(("scope", s));
        }
        let mut request = self.http.get(self.url("/token")).query(&query);
        if let Some((u, p)) = who {
            request = request.basic_auth(u, Some(p));
        }
        request.send().await.expect("send")
    }

    /// Pushes an image `repo:tag` as admin; returns the manifest's digest and its config blob.
    pub(crate) async fn seed(&self, repo: &str, tag: &str, note: &str) -> (Digest, Digest) {
        let config = format!("{{\"note\":\"{note}\"}}");
        let config_digest = self.push_blob_as(Some(("admin", "admin-pw")), repo, config.as_bytes()).await;
        assert_eq!(config_digest.status(), StatusCode::CREATED);
        let config_digest = Digest::sha256(config.as_bytes());
        let manifest = manifest_json(&config_digest, config.len(), note);
        let r = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .basic_auth("admin", Some("admin-pw"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED, "seeding {repo}:{tag}");
        (Digest::sha256(manifest.as_bytes()), config_digest)
    }

    pub(crate) async fn push_blob_as(
        &self,
        who: Option<(&str, &str)>,
        repo: &str,
        data: &[u8],
    ) -> reqwest::Response {
        let digest = Digest::sha256(data);
        let mut request = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
            .body(data.to_vec());
        if let Some((u, p)) = who {
            request = request.basic_auth(u, Some(p));
        }
        request.send().await.expect("send")
    }

    /// As admin: the status of a path (to see what a refused request left).
    pub(crate) async fn admin_status(&self, method: Method, path: &str) -> StatusCode {
        self.http
            .request(method, self.url(path))
            .basic_auth("admin", Some("admin-pw"))
            .send()
            .await
            .expect("send")
            .status()
    }
}

fn manifest_json(config: &Digest, size: usize, note: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{size}}},"layers":[],"annotations":{{"note":"{note}"}}}}"#
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Bob,
    Alice,
    Admin,
    /// A robot the admin made: pull and push on `team/app` only.
    Robot,
    /// A personal access token of alice's: pull on `team/**` only.
    PullToken,
    /// A CI workload's OIDC token (GitHub-shaped, from the test issuer) whose claims a rule
    /// maps to pull and push on `team/app`.
    Workload,
    /// A valid OIDC token of the same issuer from another branch, which no rule admits.
    WorkloadOtherRef,
    WrongPassword,
    ExpiredToken,
    ForeignKeyToken,
    OtherServiceToken,
    AlgNoneToken,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    PullTeam,
    PullPublic,
    PushBlob,
    PushManifest,
    DeleteTag,
    Catalog,
    MountFromPrivate,
    Referrers,
    WharfRepositories,
    WharfArtifacts,
}

impl Op {
    const ALL: [Self; 10] = [
        Self::PullTeam,
        Self::PullPublic,
        Self::PushBlob,
        Self::PushManifest,
        Self::DeleteTag,
        Self::Catalog,
        Self::MountFromPrivate,
        Self::Referrers,
        Self::WharfRepositories,
        Self::WharfArtifacts,
    ];

    /// The scopes a client would ask a token for.
    fn scopes(self) -> Vec<String> {
        match self {
            Self::PullTeam | Self::Referrers | Self::WharfArtifacts => {
                vec!["repository:team/app:pull".into()]
            }
            Self::PullPublic => vec!["repository:public/app:pull".into()],
            Self::PushBlob | Self::PushManifest => vec!["repository:team/app:pull,push".into()],
            Self::DeleteTag => vec!["repository:team/app:delete".into()],
            Self::Catalog | Self::WharfRepositories => vec!["registry:catalog:*".into()],
            Self::MountFromPrivate => {
                vec!["repository:team/app:pull,push".into(), "repository:private/x:pull".into()]
            }
        }
    }
}

/// The expected status.
#[allow(clippy::match_same_arms)] // one row per fact of the table
fn expected(caller: Caller, op: Op) -> u16 {
    use Caller as C;
    use Op as O;
    match (caller, op) {
        (
            C::WrongPassword
            | C::WorkloadOtherRef
            | C::ExpiredToken
            | C::ForeignKeyToken
            | C::OtherServiceToken
            | C::AlgNoneToken,
            _,
        ) => 401,
        (_, O::PullPublic | O::Catalog | O::WharfRepositories) => 200,
        (C::Anonymous, _) => 401,
        (C::Bob | C::PullToken, O::PullTeam | O::Referrers | O::WharfArtifacts) => 200,
        (C::Bob | C::PullToken, _) => 403,
        (C::Robot | C::Workload, O::DeleteTag | O::MountFromPrivate) => 403,
        (C::Robot | C::Workload, O::PushBlob | O::PushManifest) => 201,
        (C::Robot | C::Workload, _) => 200,
        (C::Alice, O::MountFromPrivate) => 403,
        (C::Alice | C::Admin, O::PushBlob | O::PushManifest | O::MountFromPrivate) => 201,
        (C::Alice | C::Admin, O::DeleteTag) => 202,
        (C::Alice | C::Admin, _) => 200,
    }
}

/// What the listings show each caller.
fn listed(caller: Caller) -> Vec<&'static str> {
    match caller {
        Caller::Anonymous => vec!["public/app"],
        Caller::Bob | Caller::Alice | Caller::Robot | Caller::PullToken | Caller::Workload => {
            vec!["public/app", "team/app"]
        }
        _ => vec!["private/x", "public/app", "team/app"],
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Credentials sent on every request (Basic), or none.
    Direct,
    /// A token from `/token` for the operation's scopes, as docker, podman and oras do.
    Token,
}

fn forged(reg: &Secure, caller: Caller) -> String {
    let now = wharf_auth::now();
    let mut claims = Claims {
        iss: "wharf".into(),
        sub: "admin".into(),
        aud: Audience::One("wharf".into()),
        exp: now + 300,
        nbf: now - 1,
        iat: now,
        jti: "x".into(),
        access: Op::ALL
            .iter()
            .flat_map(|o| o.scopes())
            .map(|s| {
                let mut scope = Scope::parse(&s).expect("scope");
                scope.actions = vec!["pull".into(), "push".into(), "delete".into(), "*".into()];
                scope
            })
            .collect(),
        wharf_use: None,
        wharf_fp: None,
        wharf_cred: None,
        wharf_wl: None,
        wharf_grants: Vec::new(),
    };
    let key = reg.token_key();
    match caller {
        Caller::ExpiredToken => {
            claims.exp = now - 120;
            claims.iat = now - 600;
            claims.nbf = now - 600;
            key.sign(&claims).expect("sign")
        }
        Caller::ForeignKeyToken => {
            SigningKey::generate(wharf_auth::Algorithm::ES256).expect("key").sign(&claims).expect("sign")
        }
        Caller::OtherServiceToken => {
            claims.aud = Audience::One("another-registry".into());
            key.sign(&claims).expect("sign")
        }
        Caller::AlgNoneToken => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!(
                "{}.{}.",
                b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(serde_json::to_vec(&claims).expect("json"))
            )
        }
        _ => unreachable!(),
    }
}

fn password(caller: Caller, fixture: &Fixture) -> Option<(&str, &str)> {
    match caller {
        Caller::Robot => Some(("robot$team-ci", &fixture.robot)),
        Caller::PullToken => Some(("alice", &fixture.pull_token)),
        Caller::Workload => Some(("oidc", fixture.workload.as_ref()?.0.as_str())),
        Caller::WorkloadOtherRef => Some(("oidc", fixture.workload.as_ref()?.1.as_str())),
        Caller::Bob => Some(("bob", "bob-pw")),
        Caller::Alice => Some(("alice", "alice-pw")),
        Caller::Admin => Some(("admin", "admin-pw")),
        Caller::WrongPassword => Some(("alice", "not-her-password")),
        _ => None,
    }
}

/// Runs one cell: returns the status and the body.
async fn cell(
    reg: &Secure,
    caller: Caller,
    mode: Mode,
    op: Op,
    fixture: &Fixture,
    tag: &str,
) -> (u16, String) {
    let (path, method, body): (String, Method, Vec<u8>) = match op {
        Op::PullTeam => ("/v2/team/app/manifests/v1".into(), Method::GET, vec![]),
        Op::PullPublic => ("/v2/public/app/manifests/v1".into(), Method::GET, vec![]),
        Op::PushBlob => {
            let data = format!("blob pushed by {caller:?} {mode:?}").into_bytes();
            (format!("/v2/team/app/blobs/uploads/?digest={}", Digest::sha256(&data)), Method::POST, data)
        }
        Op::PushManifest => {
            let m = manifest_json(&fixture.config, fixture.config_size, &format!("{caller:?} {mode:?}"));
            (format!("/v2/team/app/manifests/{tag}"), Method::PUT, m.into_bytes())
        }
        Op::DeleteTag => ("/v2/team/app/manifests/victim".into(), Method::DELETE, vec![]),
        Op::Catalog => ("/v2/_catalog".into(), Method::GET, vec![]),
        Op::MountFromPrivate => (
            format!("/v2/team/app/blobs/uploads/?mount={}&from=private/x", fixture.secret),
            Method::POST,
            vec![],
        ),
        Op::Referrers => (format!("/v2/team/app/referrers/{}", fixture.team), Method::GET, vec![]),
        Op::WharfRepositories => ("/v2/_wharf/repositories".into(), Method::GET, vec![]),
        Op::WharfArtifacts => ("/v2/team/app/_wharf/artifacts".into(), Method::GET, vec![]),
    };
    let mut request = reg.http.request(method, reg.url(&path)).body(body);
    if op == Op::PushManifest {
        request = request.header("Content-Type", OCI_MANIFEST);
    }
    request = match (caller, mode) {
        (
            Caller::ExpiredToken | Caller::ForeignKeyToken | Caller::OtherServiceToken | Caller::AlgNoneToken,
            _,
        ) => request.bearer_auth(forged(reg, caller)),
        (_, Mode::Direct) => match password(caller, fixture) {
            Some((u, p)) => request.basic_auth(u, Some(p)),
            None => request,
        },
        (_, Mode::Token) => {
            let r = reg.token(password(caller, fixture), &op.scopes()).await;
            if matches!(caller, Caller::WrongPassword | Caller::WorkloadOtherRef) {
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "the token endpoint refuses a wrong password, and a token no rule admits"
                );
                return (401, String::new());
            }
            assert_eq!(r.status(), StatusCode::OK, "{caller:?} gets a token for {op:?}");
            let json: serde_json::Value = r.json().await.expect("json");
            assert_eq!(json["token"], json["access_token"]);
            request.bearer_auth(json["token"].as_str().expect("a token"))
        }
    };
    let r = request.send().await.expect("send");
    let status = r.status().as_u16();
    let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = r.text().await.expect("body");
    if status == 401 {
        let challenge = challenge.expect("a 401 carries a challenge");
        assert!(
            challenge.starts_with(&format!("Bearer realm=\"{}/token\",service=\"wharf\"", reg.base)),
            "{challenge}"
        );
        if op == Op::MountFromPrivate {
            assert!(
                challenge.contains("scope=\"repository:team/app:pull,push repository:private/x:pull\""),
                "{challenge}"
            );
        }
        assert!(text.contains("\"UNAUTHORIZED\""), "{text}");
    }
    if status == 403 {
        assert!(text.contains("\"DENIED\""), "{text}");
    }
    (status, text)
}

struct Fixture {
    config: Digest,
    config_size: usize,
    team: Digest,
    secret: Digest,
    /// The robot's secret.
    robot: String,
    /// Alice's personal access token.
    pull_token: String,
    /// OIDC tokens from the test issuer: one a rule admits, one no rule does (none when
    /// the issuer's Python libraries are missing).
    workload: Option<(String, String)>,
}

/// Makes a robot (as admin) or a personal access token (as alice) through the API; its
/// secret.
async fn credential(reg: &Secure, path: &str, who: (&str, &str), body: serde_json::Value) -> String {
    let r =
        reg.http.post(reg.url(path)).basic_auth(who.0, Some(who.1)).json(&body).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::CREATED, "{path}");
    r.json::<serde_json::Value>().await.expect("json")["secret"].as_str().expect("a secret").to_owned()
}

#[tokio::test]
async fn every_caller_and_operation_gets_exactly_its_status_and_refused_writes_change_nothing() {
    // The wrong password is tried 40 times: no failed-login limit here.
    let setup = Setup::new("max_failed_logins = 1000\n");
    // CI workloads sign in with OIDC tokens of a test issuer: `acme/team-app`'s main branch
    // pushes team/app.
    let issuer = crate::oidc::TestIssuer::start("the access matrix's workload callers");
    if let Some(issuer) = &issuer {
        let rules = "[[auth.oidc.rules]]\nclaims = { repository = \"acme/team-app\", ref = \"refs/heads/main\" }\nrepositories = [\"team/app\"]\nactions = [\"pull\", \"push\"]\n";
        issuer.trusted_by(&setup, rules);
    }
    let reg = Secure::serve(setup).await;
    let workload = match &issuer {
        Some(issuer) => {
            let claims = |r: &str| serde_json::json!({ "repository": "acme/team-app", "ref": r, "exp": wharf_auth::now() + 3600 });
            Some((
                issuer.mint(claims("refs/heads/main"), "current").await,
                issuer.mint(claims("refs/heads/dev"), "current").await,
            ))
        }
        None => None,
    };
    let (team, config) = reg.seed("team/app", "v1", "team").await;
    reg.seed("public/app", "v1", "public").await;
    let (_, secret) = reg.seed("private/x", "v1", "secret").await;
    let robot = credential(
        &reg,
        "/v2/_wharf/robots",
        ("admin", "admin-pw"),
        serde_json::json!({ "name": "team-ci", "grants": [{ "repositories": ["team/app"], "actions": ["pull", "push"] }] }),
    )
    .await;
    let pull_token = credential(
        &reg,
        "/v2/_wharf/tokens",
        ("alice", "alice-pw"),
        serde_json::json!({ "name": "pull", "grants": [{ "repositories": ["team/**"], "actions": ["pull"] }] }),
    )
    .await;
    let fixture = Fixture {
        config,
        config_size: "{\"note\":\"team\"}".len(),
        team,
        secret,
        robot,
        pull_token,
        workload,
    };
    let mut callers = vec![
        Caller::Anonymous,
        Caller::Bob,
        Caller::Alice,
        Caller::Admin,
        Caller::Robot,
        Caller::PullToken,
        Caller::WrongPassword,
        Caller::ExpiredToken,
        Caller::ForeignKeyToken,
        Caller::OtherServiceToken,
        Caller::AlgNoneToken,
    ];
    if fixture.workload.is_some() {
        callers.extend([Caller::Workload, Caller::WorkloadOtherRef]);
    }
    let mut cells = 0;
    for mode in [Mode::Direct, Mode::Token] {
        for &caller in &callers {
            for op in Op::ALL {
                // A tag to delete, fresh for each cell.
                if op == Op::DeleteTag {
                    reg.seed("team/app", "victim", "victim").await;
                }
                let tag = format!("t-{caller:?}-{mode:?}").to_lowercase();
                let (status, body) = cell(&reg, caller, mode, op, &fixture, &tag).await;
                assert_eq!(status, expected(caller, op), "{caller:?} {mode:?} {op:?}: {body}");
                cells += 1;
                if status == 200 && matches!(op, Op::Catalog | Op::WharfRepositories) {
                    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
                    let names: Vec<&str> = json["repositories"]
                        .as_array()
                        .expect("a list")
                        .iter()
                        .map(|r| r.as_str().or_else(|| r["name"].as_str()).expect("a name"))
                        .collect();
                    assert_eq!(names, listed(caller), "{caller:?} {mode:?} {op:?}");
                }
                // What a refused write left: nothing.
                if status == 401 || status == 403 {
                    match op {
                        Op::PushBlob => {
                            let data = format!("blob pushed by {caller:?} {mode:?}");
                            let path = format!("/v2/team/app/blobs/{}", Digest::sha256(data.as_bytes()));
                            assert_eq!(reg.admin_status(Method::HEAD, &path).await, StatusCode::NOT_FOUND);
                        }
                        Op::PushManifest => {
                            let path = format!("/v2/team/app/manifests/{tag}");
                            assert_eq!(reg.admin_status(Method::HEAD, &path).await, StatusCode::NOT_FOUND);
                        }
                        Op::DeleteTag => {
                            let path = "/v2/team/app/manifests/victim";
                            assert_eq!(reg.admin_status(Method::HEAD, path).await, StatusCode::OK);
                        }
                        Op::MountFromPrivate => {
                            let path = format!("/v2/team/app/blobs/{}", fixture.secret);
                            assert_eq!(reg.admin_status(Method::HEAD, &path).await, StatusCode::NOT_FOUND);
                        }
                        _ => {}
                    }
                }
                // The admin's mount linked the blob: unlink it for the next caller.
                if op == Op::MountFromPrivate && status == 201 {
                    let path = format!("/v2/team/app/blobs/{}", fixture.secret);
                    assert_eq!(reg.admin_status(Method::DELETE, &path).await, StatusCode::ACCEPTED);
                }
            }
        }
    }
    assert_eq!(cells, 2 * callers.len() * 10);
    assert!(callers.len() == 13 || issuer.is_none(), "the workloads are callers whenever the issuer runs");
    // No repository appeared from a refused push.
    let catalog: serde_json::Value = reg
        .http
        .get(reg.url("/v2/_catalog"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(catalog["repositories"], serde_json::json!(["private/x", "public/app", "team/app"]));
    reg.stop().await;
}

/// `/v2/_wharf/search` lists only the repositories the caller may pull.
#[tokio::test]
async fn search_shows_only_what_the_caller_may_pull() {
    let reg = Secure::start("").await;
    let module: &[u8] = &[0, 97, 115, 109, 1, 0, 0, 0];
    for repo in ["private/x", "public/app", "team/app"] {
        let artifact = wharf_wasm::ArtifactBuilder::new(module.to_vec()).wasm_to_oci().expect("build");
        for blob in artifact.blobs() {
            let r = reg.push_blob_as(Some(("admin", "admin-pw")), repo, &blob.data).await;
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        let r = reg
            .http
            .put(reg.url(&format!("/v2/{repo}/manifests/wasm")))
            .basic_auth("admin", Some("admin-pw"))
            .header("Content-Type", OCI_MANIFEST)
            .body(artifact.manifest.bytes().clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    for (who, expected) in [
        (None, vec!["public/app"]),
        (Some(("alice", "alice-pw")), vec!["public/app", "team/app"]),
        (Some(("admin", "admin-pw")), vec!["private/x", "public/app", "team/app"]),
    ] {
        let mut request = reg.http.get(reg.url("/v2/_wharf/search?layout=F1"));
        if let Some((u, p)) = who {
            request = request.basic_auth(u, Some(p));
        }
        let json: serde_json::Value = request.send().await.expect("send").json().await.expect("json");
        let names: Vec<&str> = json["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["repository"].as_str())
            .collect();
        assert_eq!(names, expected, "{who:?}");
    }
    reg.stop().await;
}

#[tokio::test]
async fn a_mount_without_from_only_takes_blobs_the_caller_may_pull() {
    let reg = Secure::start("").await;
    let (_, secret) = reg.seed("private/x", "v1", "secret").await;
    let (_, public) = reg.seed("public/app", "v1", "public").await;
    for (digest, linked) in [(&secret, false), (&public, true)] {
        let r = reg
            .http
            .post(reg.url(&format!("/v2/team/app/blobs/uploads/?mount={digest}")))
            .basic_auth("alice", Some("alice-pw"))
            .send()
            .await
            .expect("send");
        // Not mounted: an ordinary upload session, as the spec says.
        assert_eq!(r.status(), if linked { StatusCode::CREATED } else { StatusCode::ACCEPTED }, "{digest}");
        let head = reg.admin_status(Method::HEAD, &format!("/v2/team/app/blobs/{digest}")).await;
        assert_eq!(head == StatusCode::OK, linked, "{digest}");
    }
    reg.stop().await;
}

#[tokio::test]
async fn metrics_need_admin_and_tokens_refresh() {
    let reg = Secure::start("").await;
    let metrics = |who: Option<(&'static str, &'static str)>| {
        let mut r = reg.http.get(reg.url("/metrics"));
        if let Some((u, p)) = who {
            r = r.basic_auth(u, Some(p));
        }
        async move { r.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(metrics(None).await, 401);
    assert_eq!(metrics(Some(("alice", "alice-pw"))).await, 403);
    assert_eq!(metrics(Some(("admin", "admin-pw"))).await, 200);
    assert_eq!(reg.http.get(reg.url("/healthz")).send().await.expect("send").status(), StatusCode::OK);

    // The OAuth2 form: a password grant with a refresh token, then a refresh grant.
    let form = |pairs: Vec<(&str, String)>| {
        let r = reg.http.post(reg.url("/token")).form(&pairs);
        async move { r.send().await.expect("send") }
    };
    let r = form(vec![
        ("grant_type", "password".into()),
        ("service", "wharf".into()),
        ("client_id", "test".into()),
        ("access_type", "offline".into()),
        ("username", "alice".into()),
        ("password", "alice-pw".into()),
        ("scope", "repository:team/app:pull,push repository:private/x:pull".into()),
    ])
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let json: serde_json::Value = r.json().await.expect("json");
    assert_eq!(json["scope"], "repository:team/app:pull,push");
    assert!(json["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert!(json["issued_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    let refresh = json["refresh_token"].as_str().expect("a refresh token").to_owned();
    let r = form(vec![
        ("grant_type", "refresh_token".into()),
        ("service", "wharf".into()),
        ("refresh_token", refresh.clone()),
        ("scope", "repository:team/app:pull".into()),
    ])
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<serde_json::Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let r = reg.http.get(reg.url("/v2/team/app/tags/list")).bearer_auth(&token).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "allowed (the repository has no tags yet)");
    // A pull token used to push: 403 with a challenge naming the scope (RFC 6750's
    // insufficient_scope), so clients holding one token at a time fetch a new one.
    let r =
        reg.http.post(reg.url("/v2/team/app/blobs/uploads/")).bearer_auth(&token).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let challenge = r.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(
        challenge.contains("scope=\"repository:team/app:pull,push\"")
            && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    // A refresh token is no access token; a wrong grant or service is refused.
    let r = reg.http.get(reg.url("/v2/team/app/tags/list")).bearer_auth(&refresh).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = form(vec![("grant_type", "client_credentials".into())]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = reg.token(None, &["repository:public/app:pull".into()]).await;
    assert_eq!(r.status(), StatusCode::OK, "anonymous tokens");
    let r = reg.http.get(reg.url("/token?service=elsewhere")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    reg.stop().await;
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_with_retry_after() {
    let reg = Secure::start("").await;
    let get = |user: &'static str, password: &'static str| {
        let r = reg.http.get(reg.url("/v2/")).basic_auth(user, Some(password));
        async move { r.send().await.expect("send") }
    };
    for _ in 0..5 {
        assert_eq!(get("bob", "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let r = get("bob", "bob-pw").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "blocked even with the right password");
    let retry: u64 = r.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(r.text().await.expect("body").contains("TOOMANYREQUESTS"));
    // Another user from the same address is not blocked (the address limit is higher).
    assert_eq!(get("alice", "alice-pw").await.status(), StatusCode::OK);
    // The token endpoint is limited too.
    let r = reg.token(Some(("bob", "bob-pw")), &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    reg.stop().await;
}

#[tokio::test]
async fn client_certificates_identify_users_and_http2_is_negotiated() {
    let setup = Setup::new("");
    let text = ISSUE_CONFIG.replace(
        "key = \"tls/server.key\"\n",
        "key = \"tls/server.key\"\nclient_ca = \"tls/ca.crt\"\nclient_users = { alice = \"alice\" }\n",
    );
    std::fs::write(setup.path().join("wharf.toml"), text).expect("write");
    let file = FileConfig::read(&setup.path().join("wharf.toml")).expect("parses");
    let store = wharf_store::MemoryStore::new();
    let server = Server::bind("127.0.0.1:0".parse().expect("addr"), Wharf::new(Arc::new(store)))
        .await
        .expect("bind")
        .with_tls(file.tls(setup.path()).expect("tls").expect("[tls]"))
        .with_access(file.access(setup.path(), None).expect("access").expect("[auth]"));
    let base = format!("https://localhost:{}", server.local_addr().port());
    let handle = server.spawn();
    let with_cert = client(&setup.pki.ca_pem, Some(setup.pki.client("alice")), false);
    let without = client(&setup.pki.ca_pem, None, false);
    let r = with_cert.get(format!("{base}/v2/team/app/tags/list")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "alice by her certificate may pull (nothing there yet)");
    let r = with_cert.post(format!("{base}/v2/private/x/blobs/uploads/")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "alice by her certificate may not push to private/x");
    let r = without.get(format!("{base}/v2/team/app/tags/list")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A certificate of the right CA whose name the allow-list does not hold stands for no one.
    let unnamed = client(&setup.pki.ca_pem, Some(setup.pki.client("admin")), false);
    let r = unnamed.get(format!("{base}/v2/team/app/tags/list")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "CN=admin is not in [tls] client_users");
    // A certificate from another CA fails the handshake.
    let other = Pki::new(tempfile::tempdir().expect("tempdir").path());
    let stranger = client(&setup.pki.ca_pem, Some(other.client("admin")), false);
    assert!(stranger.get(format!("{base}/v2/")).send().await.is_err());
    // With `client_auth = "required"`, no certificate, no handshake.
    let text = std::fs::read_to_string(setup.path().join("wharf.toml")).expect("read");
    let required =
        FileConfig::parse(&text.replace("client_ca = ", "client_auth = \"required\"\nclient_ca = "))
            .expect("parses");
    let strict = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Wharf::new(Arc::new(wharf_store::MemoryStore::new())),
    )
    .await
    .expect("bind")
    .with_tls(required.tls(setup.path()).expect("tls").expect("[tls]"))
    .with_access(required.access(setup.path(), None).expect("access").expect("[auth]"));
    let strict_base = format!("https://localhost:{}", strict.local_addr().port());
    let strict = strict.spawn();
    assert!(without.get(format!("{strict_base}/healthz")).send().await.is_err(), "no certificate: refused");
    let r = with_cert.get(format!("{strict_base}/v2/team/app/tags/list")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "alice by her certificate");
    strict.shutdown().await.expect("shutdown");
    assert!(
        FileConfig::parse("[tls]\ncert = \"a\"\nkey = \"b\"\nclient_auth = \"required\"\n")
            .expect("parses")
            .tls(setup.path())
            .is_err()
    );
    // HTTP/2 by ALPN.
    let h2 = client(&setup.pki.ca_pem, None, true);
    let r = h2.get(format!("{base}/v2/")).basic_auth("bob", Some("bob-pw")).send().await.expect("send");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), StatusCode::OK);
    handle.shutdown().await.expect("shutdown");
}

async fn peer_subject(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> (String, tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("pem"))
        .expect("root");
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("handshake");
    let der = tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    let needle = b"generation-";
    let at = der.windows(needle.len()).position(|w| w == needle).expect("a generation in the subject");
    let subject = String::from_utf8_lossy(&der[at..=at + needle.len()]).into_owned();
    (subject, tls)
}

#[tokio::test]
async fn certificates_and_users_reload_without_dropping_connections() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // carol's logins fail until the reload: no failed-login limit here.
    let reg = Secure::start("max_failed_logins = 1000\n").await;
    let tls_dir = reg.setup.path().join("tls");
    reg.setup.pki.server("server", "generation-1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", reg.base.rsplit(':').next().expect("port")).parse().expect("addr");
    let (subject, mut old) = peer_subject(addr, &reg.setup.pki.ca_pem).await;
    assert_eq!(subject, "generation-1");
    // Renew the certificate; the watcher swaps it within seconds.
    reg.setup.pki.server("server", "generation-2");
    let mut renewed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if peer_subject(addr, &reg.setup.pki.ca_pem).await.0 == "generation-2" {
            renewed = true;
            break;
        }
    }
    assert!(renewed, "the renewed certificate is served to new connections");
    // The connection made before still serves requests.
    old.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("write");
    let mut buf = vec![0; 1024];
    let n = old.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let _ = tls_dir;

    // A user added to the htpasswd file can log in a moment later; a removed one cannot.
    let mut users = wharf_auth::Htpasswd::parse(
        &std::fs::read_to_string(reg.setup.path().join("users.htpasswd")).expect("read"),
    )
    .expect("parse");
    users.set("carol", "carol-pw", 4).expect("hash");
    users.remove("bob");
    wharf_server::auth::write_private(&reg.setup.path().join("users.htpasswd"), users.render().as_bytes())
        .expect("write");
    let mut reloaded = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r =
            reg.http.get(reg.url("/v2/")).basic_auth("carol", Some("carol-pw")).send().await.expect("send");
        if r.status() == StatusCode::OK {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "carol can log in after the reload");
    let r = reg.http.get(reg.url("/v2/")).basic_auth("bob", Some("bob-pw")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "bob was removed");
    // The access rules are read again when the config file changes: bob may push now.
    let push_as_carol = || {
        let r = reg.http.post(reg.url("/v2/team/app/blobs/uploads/")).basic_auth("carol", Some("carol-pw"));
        async move { r.send().await.expect("send").status() }
    };
    assert_eq!(push_as_carol().await, StatusCode::FORBIDDEN);
    let config = std::fs::read_to_string(reg.setup.path().join("wharf.toml")).expect("read");
    let config = config.replace(
        "users = { alice = [\"pull\", \"push\", \"delete\"] }",
        "users = { alice = [\"pull\", \"push\", \"delete\"], carol = [\"push\"] }",
    );
    std::fs::write(reg.setup.path().join("wharf.toml"), config).expect("write");
    let mut granted = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if push_as_carol().await == StatusCode::ACCEPTED {
            granted = true;
            break;
        }
    }
    assert!(granted, "the new rule is in force after the config file changed");
    // A broken config keeps the rules in force.
    std::fs::write(reg.setup.path().join("wharf.toml"), "[[access]]\nrepositories = [\"BAD PATTERN\"]\n")
        .expect("write");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(push_as_carol().await, StatusCode::ACCEPTED);
    // A broken file keeps the users in force.
    std::fs::write(reg.setup.path().join("users.htpasswd"), "carol:$apr1$weak$hash\n").expect("write");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = reg.http.get(reg.url("/v2/")).basic_auth("carol", Some("carol-pw")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    reg.stop().await;
}

/// The binary with the issue's file verbatim (plus an audit log), run from another directory:
/// `user add`, SIGHUP, logins, pushes, a tag move, a refused push and a delete; no secret in
/// the log, every write in the audit log.
#[tokio::test]
async fn the_binary_serves_the_issue_config_keeps_secrets_out_of_logs_and_audits_writes() {
    use std::io::Write as _;
    let setup = Setup::new("audit_log = \"audit.jsonl\"\n");
    let config = setup.path().join("wharf.toml");
    let bin = env!("CARGO_BIN_EXE_wharf-server");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    // `user add` reads the password from stdin and writes a bcrypt entry.
    let mut add = std::process::Command::new(bin)
        .args(["--config", config.to_str().expect("utf-8"), "user", "add", "carol"])
        .current_dir(elsewhere.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    add.stdin.take().expect("stdin").write_all(b"carol-pw\n").expect("write");
    let out = add.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let users = std::fs::read_to_string(setup.path().join("users.htpasswd")).expect("read");
    assert!(users.lines().any(|l| l.starts_with("carol:$2")), "{users}");

    let log = setup.path().join("server.log");
    let (mut child, addr) = crate::common::spawn_on_free_port(
        std::process::Command::new(bin)
            .args([
                "--config",
                config.to_str().expect("utf-8"),
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .current_dir(elsewhere.path())
            .env("WHARF_LOG", "info")
            .stdout(std::fs::File::create(&log).expect("log")),
    );
    let port = addr.port();
    let base = format!("https://localhost:{port}");
    let http = client(&setup.pki.ca_pem, None, false);
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the server starts with the issue's configuration");
    assert!(setup.path().join("wharf-data").is_dir(), "storage is relative to the config file");

    // carol (added before the start) logs in.
    let r = http.get(format!("{base}/v2/")).basic_auth("carol", Some("carol-pw")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    // alice: a token, a push, a tag moved, a delete.
    let token = {
        let r = http
            .get(format!("{base}/token?service=wharf&scope=repository:team/app:pull,push,delete"))
            .basic_auth("alice", Some("alice-pw"))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
    };
    let config_blob = b"{}";
    let config_digest = Digest::sha256(config_blob);
    let r = http
        .post(format!("{base}/v2/team/app/blobs/uploads/?digest={config_digest}"))
        .bearer_auth(&token)
        .body(config_blob.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut digests = Vec::new();
    for note in ["first", "second"] {
        let m = manifest_json(&config_digest, 2, note);
        let r = http
            .put(format!("{base}/v2/team/app/manifests/latest"))
            .bearer_auth(&token)
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::CREATED);
        digests.push(Digest::sha256(m.as_bytes()));
    }
    let r = http
        .put(format!("{base}/v2/team/app/manifests/by-bob"))
        .basic_auth("bob", Some("bob-pw"))
        .header("Content-Type", OCI_MANIFEST)
        .body(manifest_json(&config_digest, 2, "bob"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http
        .delete(format!("{base}/v2/team/app/manifests/{}", digests[0]))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http
        .get(format!("{base}/v2/"))
        .basic_auth("alice", Some("wrong-secret-pw"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // SIGHUP reads htpasswd again at once.
    let mut users = wharf_auth::Htpasswd::parse(
        &std::fs::read_to_string(setup.path().join("users.htpasswd")).expect("read"),
    )
    .expect("parse");
    users.set("dave", "dave-pw", 4).expect("hash");
    std::fs::write(setup.path().join("users.htpasswd"), users.render()).expect("write");
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let mut dave = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r =
            http.get(format!("{base}/v2/")).basic_auth("dave", Some("dave-pw")).send().await.expect("send");
        if r.status() == StatusCode::OK {
            dave = true;
            break;
        }
    }
    assert!(dave, "dave logs in after SIGHUP");

    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    assert!(child.wait().expect("wait").success());

    let logged = std::fs::read_to_string(&log).expect("log");
    for secret in [
        "alice-pw",
        "bob-pw",
        "carol-pw",
        "dave-pw",
        "wrong-secret-pw",
        token.as_str(),
        "Basic ",
        "Bearer ey",
    ] {
        assert!(!logged.contains(secret), "the log shows `{secret}`");
    }
    assert!(logged.contains("\"user\":\"alice\""), "the access log names the user");
    let audit: Vec<serde_json::Value> = std::fs::read_to_string(setup.path().join("audit.jsonl"))
        .expect("the audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let find = |event: &str, result: &str, identity: &str| {
        audit
            .iter()
            .find(|r| r["event"] == event && r["result"] == result && r["identity"] == identity)
            .unwrap_or_else(|| panic!("no {event}/{result} by {identity} in {audit:#?}"))
    };
    assert_eq!(find("login", "ok", "alice")["client"], "127.0.0.1");
    assert_eq!(find("login", "ok", "carol")["grant"], "basic", "a Basic login on a registry route");
    assert!(find("login", "refused", "alice")["reason"].as_str().is_some_and(|r| r.contains("invalid")));
    let push = find("push", "ok", "alice");
    assert_eq!(push["repository"], "team/app");
    let tag = audit.iter().rfind(|r| r["event"] == "tag").expect("a tag event");
    assert_eq!(tag["tag"], "latest");
    assert_eq!(tag["digest"], digests[1].as_str());
    assert_eq!(tag["previous"], digests[0].as_str());
    assert_eq!(find("push", "refused", "bob")["status"], 403);
    assert_eq!(find("delete", "ok", "alice")["reference"], digests[0].as_str());
    for record in &audit {
        assert!(record["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(!record.to_string().contains("-pw"), "{record}");
    }
}

/// Trusts an external issuer `https://auth.corp.example` (with `extra` keys in its section):
/// returns its signing key.
pub(crate) fn external_issuer(setup: &Setup, extra: &str) -> SigningKey {
    let corp = SigningKey::generate(wharf_auth::Algorithm::EdDSA).expect("key");
    let jwks = serde_json::json!({ "keys": [corp.verifying_key().to_jwk()] });
    std::fs::write(setup.path().join("corp-jwks.json"), jwks.to_string()).expect("write");
    let text = std::fs::read_to_string(setup.path().join("wharf.toml")).expect("read");
    let text = format!(
        "{text}\n[auth.external]\nissuer = \"https://auth.corp.example\"\n{extra}keys = \"corp-jwks.json\"\n"
    );
    std::fs::write(setup.path().join("wharf.toml"), text).expect("write");
    corp
}

#[tokio::test]
async fn tokens_of_an_external_issuer_are_trusted_by_key_issuer_and_audience() {
    let setup = Setup::new("");
    let corp = external_issuer(&setup, "audience = \"registry.corp.example\"\n");
    let reg = Secure::serve(setup).await;
    let now = wharf_auth::now();
    let claims = |iss: &str, aud: &str| Claims {
        iss: iss.into(),
        sub: "ci-robot".into(),
        aud: Audience::Many(vec![aud.into(), "other".into()]),
        exp: now + 300,
        nbf: now - 1,
        iat: now,
        jti: "j".into(),
        access: vec![Scope::repository("team/app", &["pull"])],
        wharf_use: None,
        wharf_fp: None,
        wharf_cred: None,
        wharf_wl: None,
        wharf_grants: Vec::new(),
    };
    let get = |token: String| {
        let r = reg.http.get(reg.url("/v2/team/app/tags/list")).bearer_auth(token);
        async move { r.send().await.expect("send").status() }
    };
    // Allowed by the token (nothing there yet: 404 from the registry, not 401).
    let good = corp.sign(&claims("https://auth.corp.example", "registry.corp.example")).expect("sign");
    assert_eq!(get(good.clone()).await, StatusCode::NOT_FOUND);
    // Another issuer name, another audience, another key: refused.
    assert_eq!(
        get(corp.sign(&claims("https://evil.example", "registry.corp.example")).expect("sign")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(corp.sign(&claims("https://auth.corp.example", "wharf")).expect("sign")).await,
        StatusCode::UNAUTHORIZED
    );
    let stranger = SigningKey::generate(wharf_auth::Algorithm::EdDSA).expect("key");
    assert_eq!(
        get(stranger.sign(&claims("https://auth.corp.example", "registry.corp.example")).expect("sign"))
            .await,
        StatusCode::UNAUTHORIZED
    );
    // The token grants pull only: a push asks for other credentials (401, its issuer's scope).
    let r =
        reg.http.post(reg.url("/v2/team/app/blobs/uploads/")).bearer_auth(&good).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Wharf's own tokens still work beside them.
    let own = reg.token(Some(("alice", "alice-pw")), &["repository:team/app:pull".into()]).await;
    let own =
        own.json::<serde_json::Value>().await.expect("json")["token"].as_str().expect("token").to_owned();
    assert_eq!(get(own).await, StatusCode::NOT_FOUND);
    reg.stop().await;
}

/// The value and whole header of the cookie `name` that a response sets.
pub(crate) fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    let prefix = format!("{name}=");
    let header = response.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.starts_with(&prefix).then(|| v.to_owned())
    })?;
    let value = header[prefix.len()..].split(';').next().unwrap_or_default().to_owned();
    Some((value, header))
}

/// The `wharf_session` cookie a response sets, with its attributes.
pub(crate) fn session_cookie(response: &reqwest::Response) -> Option<(String, String)> {
    set_cookie(response, "wharf_session")
}

/// The CSRF token of the first form of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a form with a CSRF token")
        + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().expect("a token").to_owned()
}

#[tokio::test]
async fn the_web_page_logs_in_with_secure_cookies_refuses_forged_forms_and_shows_what_each_may_see() {
    let reg = Secure::start("").await;
    reg.seed("team/app", "v1", "team").await;
    reg.seed("public/pub", "v1", "public").await;
    let web = reg.web_client();
    // `cookie` is a whole Cookie header (`wharf_session=…` or `wharf_csrf=…`).
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = web.get(reg.url(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie.to_owned());
        }
        request.send()
    };
    // An anonymous visitor: no server-side session, only a signed CSRF nonce cookie
    // (HttpOnly, SameSite=Strict, Secure under TLS), a strict CSP, and only what anonymous
    // may pull.
    let home = get("/", None).await.expect("GET /");
    assert_eq!(home.status(), StatusCode::OK);
    let csp = home.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(session_cookie(&home).is_none(), "an anonymous visit starts no session");
    let (nonce, header) = set_cookie(&home, "wharf_csrf").expect("a CSRF cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(header.contains(attribute), "{header}");
    }
    let anonymous = format!("wharf_csrf={nonce}");
    let html = home.text().await.expect("body");
    assert!(html.contains("public/pub") && !html.contains("team/app"), "{html}");
    assert_eq!(
        get("/repositories/team/app", Some(&anonymous)).await.expect("GET").status(),
        StatusCode::NOT_FOUND
    );
    // The login form: a wrong token is refused, a wrong password too, then alice logs in.
    let login = get("/login", Some(&anonymous)).await.expect("GET");
    assert!(set_cookie(&login, "wharf_csrf").is_none(), "a visitor with a nonce keeps it");
    let csrf = csrf_of(&login.text().await.expect("body"));
    let post = |path: &str, cookie: &str, form: &[(&str, &str)]| {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.replace('%', "%25").replace('&', "%26").replace(' ', "+").replace('/', "%2F")
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        web.post(reg.url(path))
            .header("cookie", cookie.to_owned())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let forged = post(
        "/login",
        &anonymous,
        &[("csrf", "0".repeat(64).as_str()), ("username", "alice"), ("password", "alice-pw")],
    );
    let forged = forged.await.expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&forged).is_none(), "a refused login starts no session");
    // The right token with another nonce (a cookie an attacker planted or chose) is refused too.
    let other = post(
        "/login",
        &format!("wharf_csrf={}", "1".repeat(nonce.len())),
        &[("csrf", &csrf), ("username", "alice"), ("password", "alice-pw")],
    )
    .await
    .expect("POST");
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let wrong = post("/login", &anonymous, &[("csrf", &csrf), ("username", "alice"), ("password", "nope")])
        .await
        .expect("POST");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = post(
        "/login",
        &anonymous,
        &[("csrf", &csrf), ("username", "alice"), ("password", "alice-pw"), ("next", "//evil.example/")],
    )
    .await
    .expect("POST");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/", "a login never sends the visitor to another site");
    let (alice, header) = session_cookie(&ok).expect("a new session");
    assert!(header.contains("Secure") && header.contains("HttpOnly"), "{header}");
    let alice = format!("wharf_session={alice}");
    let html = get("/", Some(&alice)).await.expect("GET").text().await.expect("body");
    assert!(html.contains("Signed in as <strong>alice</strong>") && html.contains("team/app"), "{html}");
    let page = get("/repositories/team/app/-/artifacts/v1", Some(&alice))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(page.contains("Delete the tag v1"), "alice may delete in team/");
    // A delete needs the session's token; then it goes.
    let csrf = csrf_of(&page);
    let refused = post("/repositories/team/app/-/delete", &alice, &[("target", "v1")]).await.expect("POST");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(reg.admin_status(Method::GET, "/v2/team/app/manifests/v1").await, StatusCode::OK);
    let deleted = post("/repositories/team/app/-/delete", &alice, &[("csrf", &csrf), ("target", "v1")])
        .await
        .expect("POST");
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(reg.admin_status(Method::GET, "/v2/team/app/manifests/v1").await, StatusCode::NOT_FOUND);
    // Logout ends the session.
    let out = post("/logout", &alice, &[("csrf", &csrf)]).await.expect("POST");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let html = get("/", Some(&alice)).await.expect("GET").text().await.expect("body");
    assert!(!html.contains("Signed in as") && !html.contains("team/app"), "{html}");
    reg.stop().await;
}
