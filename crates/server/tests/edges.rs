//! What strangers send to the edges of an access-controlled registry (issue 29, findings
//! 7–16): failed logins from many sides, floods of anonymous page loads, hostile `next`
//! links, narrow tokens of administrators, external identities, forged `Host` headers and
//! client certificates nobody named.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use wharf_auth::{Audience, Claims, Scope};
use wharf_server::{Server, Wharf};

use crate::access::{PASSWORDS, Secure, Setup, client};

/// A client of `reg` whose connections come from `from` (any address of 127.0.0.0/8).
fn from(reg: &Secure, from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(reg.setup.pki.ca_pem.as_bytes()).expect("CA")])
        .resolve("localhost", "127.0.0.1:0".parse().expect("addr"))
        .local_address(from.parse::<IpAddr>().expect("ip"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Rewrites the users file with bcrypt `cost` (what `htpasswd -B` or `user add` write).
fn users_at_cost(setup: &Setup, cost: u32) {
    let mut users = wharf_auth::Htpasswd::default();
    for (user, password) in PASSWORDS {
        users.set(user, password, cost).expect("hash");
    }
    std::fs::write(setup.path().join("users.htpasswd"), users.render()).expect("write");
}

/// The `percent`th percentile (nearest rank).
fn percentile(samples: &mut [Duration], percent: usize) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) * percent).div_ceil(100)]
}

#[tokio::test]
async fn failing_in_a_users_name_slows_them_down_but_never_locks_them_out_from_elsewhere() {
    let reg = Secure::start("").await;
    let attacker = from(&reg, "127.0.0.7");
    let login = |client: &reqwest::Client, password: &str| {
        client.get(reg.url("/v2/")).basic_auth("admin", Some(password)).send()
    };
    for _ in 0..5 {
        assert_eq!(login(&attacker, "guess").await.expect("send").status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(login(&attacker, "guess").await.expect("send").status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        login(&attacker, "admin-pw").await.expect("send").status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the failing address is refused for admin, even with the right password"
    );
    // The right password from an address that has not been failing: answered (after a
    // slow-down, never a refusal), on /v2/, the token endpoint and the web login.
    let admin = from(&reg, "127.0.0.8");
    let started = Instant::now();
    assert_eq!(login(&admin, "admin-pw").await.expect("send").status(), StatusCode::OK);
    assert!(started.elapsed() < wharf_auth::MAX_SLOW_DOWN + Duration::from_secs(2));
    let token = admin
        .get(reg.url("/token?service=wharf"))
        .basic_auth("admin", Some("admin-pw"))
        .send()
        .await
        .expect("send");
    assert_eq!(token.status(), StatusCode::OK);
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_attempts_cannot_pass_the_limit_together() {
    let reg = Secure::start("").await;
    let attempts: Vec<_> =
        (0..24).map(|_| reg.http.get(reg.url("/v2/")).basic_auth("bob", Some("guess")).send()).collect();
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("send").status())
        .collect();
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, refused), (5, 19), "{statuses:?}");
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_eight_clients_fail_logins_at_the_default_cost() {
    let setup = Setup::new("max_failed_logins_per_address = 100000\n");
    users_at_cost(&setup, wharf_auth::DEFAULT_COST);
    let reg = Secure::serve(setup).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for n in 0..8 {
        let (client, url, stop) = (reg.http.clone(), reg.url("/v2/"), Arc::clone(&stop));
        attackers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                // A fresh name each time: no limit is reached, every attempt is hashed.
                let r = client.get(&url).basic_auth(format!("u{n}-{i}"), Some("guess")).send().await;
                assert_eq!(r.expect("send").status(), StatusCode::UNAUTHORIZED);
            }
            i
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = client(&reg.setup.pki.ca_pem, None, false);
    let mut samples = Vec::new();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let started = Instant::now();
        let r = health.get(reg.url("/healthz")).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        samples.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut attempts = 0;
    for a in attackers {
        attempts += a.await.expect("joins");
    }
    let p50 = percentile(&mut samples, 50);
    let p99 = percentile(&mut samples, 99);
    eprintln!(
        "/healthz during {attempts} failed logins: p50 {p50:?}, p99 {p99:?}, {} samples",
        samples.len()
    );
    assert!(attempts >= 8, "the logins ran");
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    reg.stop().await;
}

#[tokio::test]
async fn unknown_users_cost_what_the_files_users_cost() {
    // `htpasswd -B` writes cost 5.
    let setup = Setup::new("max_failed_logins = 1000\nmax_failed_logins_per_address = 100000\n");
    users_at_cost(&setup, 5);
    let reg = Secure::serve(setup).await;
    let time = |user: String| {
        let r = reg.http.get(reg.url("/v2/")).basic_auth(user, Some("guess")).send();
        async move {
            let started = Instant::now();
            assert_eq!(r.await.expect("send").status(), StatusCode::UNAUTHORIZED);
            started.elapsed()
        }
    };
    let _ = time("warm-up".into()).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..15 {
        known.push(time("alice".into()).await);
        unknown.push(time(format!("nobody-{i}")).await);
    }
    let (known, unknown) = (percentile(&mut known, 50), percentile(&mut unknown, 50));
    eprintln!("median failed login: known user {known:?}, unknown user {unknown:?}");
    assert!(unknown < known * 2 + Duration::from_millis(3), "known {known:?}, unknown {unknown:?}");
    assert!(known < unknown * 2 + Duration::from_millis(3), "known {known:?}, unknown {unknown:?}");
    reg.stop().await;
}

/// The cookies a response sets, by name.
fn cookies(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (name, rest) = v.split_once('=')?;
            Some((name.to_owned(), rest.split(';').next().unwrap_or_default().to_owned()))
        })
        .collect()
}

fn csrf_of(html: &str) -> String {
    let needle = r#"name="csrf" value=""#;
    let at = html.find(needle).expect("a form with a CSRF token") + needle.len();
    html[at..].split('"').next().expect("a token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_visits_keep_nothing_and_log_no_one_out() {
    let reg = Secure::start("").await;
    let web = from(&reg, "127.0.0.1");
    // An anonymous visitor gets a CSRF nonce cookie, no session.
    let page = web.get(reg.url("/login")).send().await.expect("GET");
    let set = cookies(&page);
    assert!(set.iter().all(|(n, _)| n != "wharf_session"), "{set:?}");
    let nonce = set.iter().find(|(n, _)| n == "wharf_csrf").expect("a CSRF cookie").1.clone();
    let csrf = csrf_of(&page.text().await.expect("body"));
    let post = |cookie: String, form: Vec<(&'static str, String)>| {
        web.post(reg.url("/login")).header("cookie", cookie).form(&form).send()
    };
    // The login form: the token must match the nonce cookie.
    let forged = post(
        "wharf_csrf=".to_owned() + &"0".repeat(64),
        vec![("csrf", csrf.clone()), ("username", "alice".into()), ("password", "alice-pw".into())],
    )
    .await
    .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "another nonce");
    let ok = post(
        format!("wharf_csrf={nonce}"),
        vec![
            ("csrf", csrf.clone()),
            ("username", "alice".into()),
            ("password", "alice-pw".into()),
            ("next", "/\t/evil.example".into()),
        ],
    )
    .await
    .expect("POST");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()["location"], "/", "a tab in `next` is refused as browsers would read it");
    let session = cookies(&ok).into_iter().find(|(n, _)| n == "wharf_session").expect("a session").1;
    // 10,050 cookie-less page loads (finding 9 logged everyone out with these).
    let mut left = 10_050;
    while left > 0 {
        let n = left.min(50);
        left -= n;
        let batch = (0..n).map(|_| web.get(reg.url("/login")).send());
        for r in futures_util::future::join_all(batch).await {
            assert_eq!(r.expect("GET").status(), StatusCode::OK);
        }
    }
    let home =
        web.get(reg.url("/")).header("cookie", format!("wharf_session={session}")).send().await.expect("GET");
    let html = home.text().await.expect("body");
    assert!(html.contains("Signed in as <strong>alice</strong>"), "alice is still logged in");
    reg.stop().await;
}

async fn admin_token(reg: &Secure, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let body: serde_json::Value =
        reg.token(Some(("admin", "admin-pw")), &scopes).await.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn administration_needs_the_admin_scope_in_a_token_and_external_subjects_are_not_local_users() {
    let setup = Setup::new("");
    let corp = crate::access::external_issuer(&setup, "");
    let reg = Secure::serve(setup).await;
    let call = |method: reqwest::Method, path: &str, token: String| {
        let r = reg.http.request(method, reg.url(path)).bearer_auth(token);
        async move { r.send().await.expect("send") }
    };
    // An administrator's token asked for pulling one repository administers nothing.
    let narrow = admin_token(&reg, &["repository:public/app:pull"]).await;
    let gc = call(reqwest::Method::POST, "/v2/_wharf/gc?dry_run=true", narrow.clone()).await;
    assert_eq!(gc.status(), StatusCode::FORBIDDEN);
    let challenge = gc.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(
        challenge.contains("scope=\"registry:admin:*\"") && challenge.contains("insufficient_scope"),
        "{challenge}"
    );
    assert_eq!(call(reqwest::Method::GET, "/metrics", narrow.clone()).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(call(reqwest::Method::GET, "/v2/_wharf/quotas", narrow).await.status(), StatusCode::FORBIDDEN);
    // Asked for, and granted to administrators only.
    let wide = admin_token(&reg, &["registry:admin:*"]).await;
    assert_eq!(call(reqwest::Method::GET, "/metrics", wide.clone()).await.status(), StatusCode::OK);
    assert_eq!(call(reqwest::Method::GET, "/v2/_wharf/quotas", wide).await.status(), StatusCode::OK);
    let alice = reg.token(Some(("alice", "alice-pw")), &["registry:admin:*".into()]).await;
    let body: serde_json::Value = alice.json().await.expect("json");
    assert_eq!(body["scope"], serde_json::Value::Null, "{body}");
    let alices = body["token"].as_str().expect("token").to_owned();
    assert_eq!(call(reqwest::Method::GET, "/metrics", alices).await.status(), StatusCode::FORBIDDEN);
    // An external issuer's `sub` named like the local admin is not the local admin.
    let now = wharf_auth::now();
    let claims = Claims {
        iss: "https://auth.corp.example".into(),
        sub: "admin".into(),
        aud: Audience::One("wharf".into()),
        exp: now + 300,
        nbf: now - 1,
        iat: now,
        jti: "j".into(),
        access: vec![
            Scope::repository("public/app", &["pull"]),
            Scope::catalog(),
            Scope { kind: "registry".into(), name: "admin".into(), actions: vec!["*".into()] },
        ],
        wharf_use: None,
        wharf_fp: None,
        wharf_cred: None,
        wharf_wl: None,
        wharf_grants: Vec::new(),
    };
    let foreign = corp.sign(&claims).expect("sign");
    let gc = call(reqwest::Method::POST, "/v2/_wharf/gc?dry_run=true", foreign.clone()).await;
    assert_eq!(gc.status(), StatusCode::FORBIDDEN, "not an administrator");
    reg.seed("team/secret", "v1", "team").await;
    let catalog = call(reqwest::Method::GET, "/v2/_catalog", foreign).await;
    let listed = catalog.text().await.expect("body");
    assert!(!listed.contains("team/secret"), "no local user's listing: {listed}");
    reg.stop().await;
}

#[tokio::test]
async fn the_realm_never_comes_from_a_foreign_host_header() {
    let reg = Secure::start("").await;
    let challenge = |host: &str| {
        let r = reg.http.get(reg.url("/v2/")).header("host", host).send();
        async move { r.await.expect("send").headers()["www-authenticate"].to_str().expect("ascii").to_owned() }
    };
    let port = reg.base.rsplit(':').next().expect("port").to_owned();
    let evil = challenge("login-registry.evil.example").await;
    assert!(!evil.contains("evil"), "{evil}");
    assert!(
        evil.contains(&format!("realm=\"https://127.0.0.1:{port}/token\"")),
        "the address reached: {evil}"
    );
    let named = challenge(&format!("localhost:{port}")).await;
    assert!(named.contains(&format!("realm=\"https://localhost:{port}/token\"")), "{named}");
    reg.stop().await;

    // A public URL (or `[auth] realm`) decides.
    let setup = Setup::new("");
    let mut text = std::fs::read_to_string(setup.path().join("wharf.toml")).expect("read");
    text = format!("public_url = \"https://registry.example.com\"\n{text}");
    std::fs::write(setup.path().join("wharf.toml"), text).expect("write");
    let reg = Secure::serve(setup).await;
    let r = reg
        .http
        .get(reg.url("/v2/"))
        .header("host", "login-registry.evil.example")
        .send()
        .await
        .expect("send");
    let c = r.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(c.starts_with("Bearer realm=\"https://registry.example.com/token\""), "{c}");
    reg.stop().await;
}

#[tokio::test]
async fn an_open_registry_on_loopback_answers_only_loopback_names_and_cookies_follow_the_public_url() {
    let server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        Wharf::new(Arc::new(wharf_store::MemoryStore::new())),
    )
    .await
    .expect("bind")
    .with_public_url("https://registry.example.com".parse().expect("url"));
    let port = server.local_addr().port();
    let handle = server.spawn();
    let http = reqwest::Client::new();
    let get = |host: &str| {
        let r = http.get(format!("http://127.0.0.1:{port}/v2/")).header("host", host).send();
        async move { r.await.expect("send") }
    };
    // DNS rebinding: a page of rebind.evil.example whose name now points at 127.0.0.1.
    let rebound = get("rebind.evil.example").await;
    assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(rebound.text().await.expect("body").contains("DENIED"));
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "registry.example.com".to_owned()]
    {
        assert_eq!(get(&host).await.status(), StatusCode::OK, "{host}");
    }
    // Behind a TLS proxy (an https public URL), the CSRF cookie is Secure though TLS ends
    // before this process.
    let page = http.get(format!("http://127.0.0.1:{port}/")).send().await.expect("GET");
    let set: Vec<String> =
        page.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect();
    assert!(set.iter().any(|c| c.starts_with("wharf_csrf=") && c.contains("; Secure")), "{set:?}");
    handle.shutdown().await.expect("shutdown");
}

/// Finding 16: with quotas on, a mount from a repository the caller may not pull answers as if
/// the blob did not exist (an ordinary upload session), never a quota refusal that would tell
/// its existence and size; from a repository the caller may pull, the quota still refuses.
#[tokio::test]
async fn a_mount_checks_permission_before_the_quota_looks_at_the_blob() {
    let quota: wharf_server::lifecycle::quota::QuotaConfig =
        toml::from_str("repositories = [\"team/app\"]\nmax_bytes = \"10KB\"").expect("quota");
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(
        &wharf_server::lifecycle::GcConfig::default(),
        &[],
        &[quota],
    )
    .expect("lifecycle");
    let reg = Secure::serve_with(Setup::new(""), lifecycle).await;
    let big =
        |seed: u8| (0..20_000u32).map(|i| seed ^ u8::try_from(i % 251).expect("byte")).collect::<Vec<u8>>();
    let (visible, secret) = (big(1), big(2));
    let admin = Some(("admin", "admin-pw"));
    assert_eq!(reg.push_blob_as(admin, "team/src", &visible).await.status(), StatusCode::CREATED);
    assert_eq!(reg.push_blob_as(admin, "secret/vault", &secret).await.status(), StatusCode::CREATED);
    let mount = |digest: wharf_types::Digest, from: Option<&'static str>| {
        let mut path = format!("/v2/team/app/blobs/uploads/?mount={digest}");
        if let Some(from) = from {
            path = format!("{path}&from={from}");
        }
        reg.http.post(reg.url(&path)).basic_auth("alice", Some("alice-pw")).send()
    };
    // What alice may pull is counted against the quota.
    let refused = mount(wharf_types::Digest::sha256(&visible), Some("team/src")).await.expect("mount");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("body").contains("quota"));
    // What she may not: the same answer as a digest stored nowhere. Naming the source is
    // refused by authorisation (as distribution does) whether or not the blob is there;
    // without a source, an ordinary upload session.
    for digest in [wharf_types::Digest::sha256(&secret), wharf_types::Digest::sha256(b"stored nowhere")] {
        let r = mount(digest.clone(), Some("secret/vault")).await.expect("mount");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{digest}: pull on the source is needed");
        let body = r.text().await.expect("body");
        assert!(body.contains("DENIED") && !body.contains("quota"), "{body}");
        let r = mount(digest.clone(), None).await.expect("mount");
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{digest}: an ordinary upload session");
        assert_eq!(r.headers()["content-length"], "0");
    }
    reg.stop().await;
}
