//! The client over TLS with a CA and a client certificate from a containers-style
//! `--cert-dir`, against a `wharf-server` with access control.

use std::sync::Arc;

use wharf_client::{ClientBuilder, Credentials, WasmLayout};
use wharf_types::{Reference, Registry};

#[path = "support/pki.rs"]
mod pki;

const CONFIG: &str = r#"
[tls]
cert = "server.crt"
key = "server.key"
client_ca = "ca.crt"
client_users = { alice = "alice" }

[auth]
htpasswd = "users.htpasswd"

[[access]]
repositories = ["team/**"]
users = { alice = ["pull", "push"] }
"#;

#[tokio::test]
async fn cert_dir_trust_client_certificates_and_credentials_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki::Pki::new(dir.path());
    let mut users = wharf_auth::Htpasswd::default();
    users.set("alice", "alice-pw", 4).expect("hash");
    std::fs::write(dir.path().join("users.htpasswd"), users.render()).expect("write");
    let file = wharf_server::config::FileConfig::parse(CONFIG).expect("config");
    let server = wharf_server::Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        wharf_server::Wharf::new(Arc::new(wharf_store::MemoryStore::new())),
    )
    .await
    .expect("bind")
    .with_tls(file.tls(dir.path()).expect("tls").expect("[tls]"))
    .with_access(file.access(dir.path(), None).expect("access").expect("[auth]"));
    let host = format!("localhost:{}", server.local_addr().port());
    let handle = server.spawn();

    // The containers layout: <certs.d>/<host>/ca.crt, client.cert, client.key.
    let certs_d = tempfile::tempdir().expect("tempdir");
    let host_dir = certs_d.path().join(&host);
    std::fs::create_dir(&host_dir).expect("mkdir");
    std::fs::copy(dir.path().join("ca.crt"), host_dir.join("ca.crt")).expect("copy");
    let (cert, key) = pki.client("alice");
    std::fs::write(host_dir.join("client.cert"), cert).expect("write");
    std::fs::write(host_dir.join("client.key"), key).expect("write");

    let reference: Reference = format!("{host}/team/hello:v1").parse().expect("reference");
    let wasm = bytes::Bytes::from_static(b"\0asm\x01\0\0\0");

    // Without the CA the server is not trusted.
    let untrusting = ClientBuilder::new().with_loopback_plain_http(false).build().expect("client");
    assert!(untrusting.ping(&Registry::from(&reference)).await.is_err());

    // The client certificate alone identifies alice (no password).
    let by_cert = ClientBuilder::new()
        .with_loopback_plain_http(false)
        .with_certs_d(certs_d.path())
        .build()
        .expect("client");
    by_cert
        .push_wasm(&reference, wasm.clone(), WasmLayout::WasmToOci, "hello.wasm")
        .await
        .expect("push by certificate");

    // The CA alone, with credentials (the token flow).
    let ca_only = tempfile::tempdir().expect("tempdir");
    std::fs::copy(dir.path().join("ca.crt"), ca_only.path().join("ca.crt")).expect("copy");
    let by_password = ClientBuilder::new()
        .with_loopback_plain_http(false)
        .with_cert_dir(&host, ca_only.path())
        .with_credentials(&host, Credentials::basic("alice", "alice-pw"))
        .build()
        .expect("client");
    let pulled = by_password.pull_wasm(&reference).await.expect("pull with credentials");
    assert_eq!(pulled.module, wasm);
    let anonymous = ClientBuilder::new()
        .with_loopback_plain_http(false)
        .with_ca_certificates(std::fs::read(dir.path().join("ca.crt")).expect("read"))
        .build()
        .expect("client");
    let denied = anonymous.pull_wasm(&reference).await.expect_err("anonymous is refused");
    assert!(
        denied.to_string().contains("401") || denied.to_string().to_lowercase().contains("unauthorized"),
        "{denied}"
    );
    handle.shutdown().await.expect("shutdown");
}
