//! 20,000 idle sockets do not keep `GET /v2/` from answering. A test binary of its own, so
//! that its sockets (and the ephemeral ports they hold) never race the other tests, which
//! cargo runs in parallel within one binary but one binary at a time.

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "common/spawn.rs"]
mod spawn;
use spawn::spawn_on_free_port;

/// A generous bound for things that should take about a second.
const PATIENCE: Duration = Duration::from_secs(30);

/// The child side of `twenty_thousand_idle_sockets`: holds `WHARF_HOLD_COUNT` connections to
/// `WHARF_HOLD_ADDR` open until its standard input closes.
#[test]
#[ignore = "the child process of twenty_thousand_idle_sockets_do_not_stop_the_registry"]
fn hold_sockets_child() {
    let Ok(addr) = std::env::var("WHARF_HOLD_ADDR") else { return };
    let count: usize = std::env::var("WHARF_HOLD_COUNT").expect("count").parse().expect("number");
    wharf_server::raise_open_files_limit();
    let addr: SocketAddr = addr.parse().expect("addr");
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("connect: {e}");
                break;
            }
        }
    }
    println!("\nheld {}", held.len());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_idle_sockets_do_not_stop_the_registry() {
    // The server in a process of its own (its open-files limit raised to the hard limit), and
    // the sockets held by others, 10,000 each.
    let (mut server, addr) = spawn_on_free_port(
        Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["--listen", "127.0.0.1:0", "--storage", "memory"])
            .env("WHARF_LOG", "error")
            .stdout(Stdio::null()),
    );
    let http = reqwest::Client::builder().timeout(PATIENCE).build().expect("client");
    for _ in 0..400 {
        if http.get(format!("http://{addr}/v2/")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let exe = std::env::current_exe().expect("test binary");
    // 10,000 sockets per holder, or fewer (and more holders) where the open-files limit is lower.
    let files = wharf_server::raise_open_files_limit().unwrap_or(1024);
    let per = usize::try_from(files.saturating_sub(64)).unwrap_or(10_000).clamp(1, 10_000);
    let holders: Vec<std::process::Child> = (0..20_000usize.div_ceil(per))
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "hold_sockets_child", "--ignored", "--nocapture", "--test-threads=1"])
                .env("WHARF_HOLD_ADDR", addr.to_string())
                .env("WHARF_HOLD_COUNT", per.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a socket holder")
        })
        .collect();
    let mut held = 0;

    let mut holders: Vec<_> = holders
        .into_iter()
        .map(|mut child| {
            let mut out = String::new();
            let mut stdout = child.stdout.take().expect("stdout");
            // Read up to the "held N" line.
            let mut byte = [0u8; 1];
            while stdout.read(&mut byte).is_ok_and(|n| n == 1) {
                out.push(byte[0] as char);
                if out.ends_with('\n') && out.contains("held ") {
                    break;
                }
            }
            // libtest prints the test's name first, on the same line.
            held +=
                out.lines().find_map(|l| l.split("held ").nth(1)?.trim().parse::<usize>().ok()).unwrap_or(0);
            child
        })
        .collect();
    assert!(held >= 20_000, "the holders opened only {held} sockets");
    // The registry still answers, on new connections.
    let http =
        reqwest::Client::builder().timeout(PATIENCE).pool_max_idle_per_host(0).build().expect("client");
    for _ in 0..3 {
        let r = http
            .get(format!("http://{addr}/v2/"))
            .send()
            .await
            .expect("GET /v2/ with 20,000 idle sockets open");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    for child in &mut holders {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    let _ = server.kill();
    let _ = server.wait();
}
