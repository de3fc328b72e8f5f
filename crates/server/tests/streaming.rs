//! Streaming holds: pushing (and pulling) a 1 GiB blob through a `wharf-server` process with
//! filesystem storage keeps the server's peak RSS (VmHWM) under 64 MiB.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::stream;
use reqwest::StatusCode;
use wharf_types::Digest;

#[path = "common/spawn.rs"]
mod spawn;
use spawn::spawn_on_free_port;

const MIB: usize = 1024 * 1024;
const CHUNKS: u64 = 1024;

fn chunk(i: u64) -> bytes::Bytes {
    wharf_store::testing::content(i, MIB)
}

fn vm_hwm_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).expect("kB") / 1024
}

#[tokio::test]
async fn a_gib_through_the_server_keeps_its_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = spawn_on_free_port(
        Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["--listen", "127.0.0.1:0", "--storage", &format!("fs:{}", dir.path().display())])
            .stdout(Stdio::null()),
    );
    let port = addr.port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/v2/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "server did not start");
    let idle = vm_hwm_mib(child.id());

    let mut digester = Digest::sha256(b"").digester();
    for i in 0..CHUNKS {
        digester.update(&chunk(i));
    }
    let digest = digester.finish();
    let body =
        reqwest::Body::wrap_stream(stream::iter((0..CHUNKS).map(|i| Ok::<_, std::io::Error>(chunk(i)))));
    let r = http.post(format!("{base}/v2/big/blobs/uploads/")).send().await.expect("start");
    let location = r.headers()["Location"].to_str().expect("text").to_owned();
    let r = http.patch(format!("{base}{location}")).body(body).send().await.expect("patch");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http.put(format!("{base}{location}?digest={digest}")).send().await.expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);

    let mut r = http.get(format!("{base}/v2/big/blobs/{digest}")).send().await.expect("get");
    let mut check = digest.digester();
    while let Some(bytes) = r.chunk().await.expect("chunk") {
        check.update(&bytes);
    }
    check.verify(&digest).expect("pulled bytes verify");

    let peak = vm_hwm_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("wharf-server peak RSS: {peak} MiB after pushing and pulling 1 GiB (idle {idle} MiB)");
    assert!(peak < 64, "server peak RSS {peak} MiB for a 1 GiB blob");
}
