//! The `wharf-server` binary: configuration file, JSON access logs with request ids, SIGTERM.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::spawn_on_free_port;

#[tokio::test]
async fn config_file_json_logs_and_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("wharf.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nstorage = \"memory\"\nlog_format = \"json\"\n")
        .expect("write");
    let (mut child, addr) = spawn_on_free_port(
        Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["--config", config.to_str().expect("utf-8")])
            .env_remove("WHARF_LISTEN")
            .env_remove("WHARF_STORAGE")
            .env_remove("WHARF_LOG_FORMAT")
            .stdout(Stdio::piped()),
    );
    let port = addr.port();
    let http = reqwest::Client::new();
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .header("X-Request-Id", "test-42")
            .header("Authorization", "Bearer s3cr3t-token")
            .send()
            .await
        {
            answered = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = answered.expect("the server answers on the configured port");
    assert_eq!(r.headers()["x-request-id"], "test-42");
    // SIGTERM: a clean exit.
    let pid = i32::try_from(child.id()).expect("pid");
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    let mut logs = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut logs).expect("logs");
    let line = logs
        .lines()
        .find(|l| l.contains("test-42"))
        .unwrap_or_else(|| panic!("no access log line in {logs}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(json["fields"]["status"], 200);
    assert_eq!(json["fields"]["path"], "/v2/");
    assert!(!logs.contains("s3cr3t"), "a secret reached the log");

    // A config file with an unknown key is refused.
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nbogus = 1\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args(["--config", config.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
}

/// Text logs: a `%0a` in a path cannot forge a log line, no ANSI colours when the output is
/// not a terminal, durations rounded, the client address and user agent named; listening
/// beyond loopback without authentication is warned about.
#[tokio::test]
async fn text_logs_are_escaped_and_plain() {
    let (mut child, addr) = spawn_on_free_port(
        Command::new(env!("CARGO_BIN_EXE_wharf-server"))
            .args(["--listen", "0.0.0.0:0", "--storage", "memory", "--log-format", "text"])
            .arg("--wasm-validate") // a plain flag, no value needed
            .env_remove("WHARF_LOG")
            .env_remove("WHARF_CONFIG")
            .stdout(Stdio::piped()),
    );
    let port = addr.port();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("http://127.0.0.1:{port}/v2/")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the server answers");
    let forged = "/v2/a%0aINFO%20forged%20line%1b[31m/tags/list";
    let r = http
        .get(format!("http://127.0.0.1:{port}{forged}"))
        .header("User-Agent", "tester/1.0 (escaped)")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let r = http
        .get(format!("http://127.0.0.1:{port}/v2/forging%20status=200%20user=admin/tags/list"))
        .header("User-Agent", "x status=200 user=admin")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), reqwest::StatusCode::BAD_REQUEST);
    let pid = i32::try_from(child.id()).expect("pid");
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill").success());
    assert!(child.wait().expect("wait").success());
    let mut logs = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut logs).expect("logs");
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in a log that is not a terminal:\n{logs}");
    assert!(logs.contains("without authentication"), "no warning about an open listener:\n{logs}");
    assert!(!logs.lines().any(|l| l.starts_with("INFO forged")), "a forged log line:\n{logs}");
    let line = logs.lines().find(|l| l.contains("forged")).expect("the request's log line");
    assert!(line.contains(r#"repository="a\nINFO forged line\u{1b}[31m""#), "{line}");
    assert!(line.contains("client=127.0.0.1:"), "{line}");
    assert!(line.contains(r#"user_agent="tester/1.0 (escaped)""#), "{line}");
    // Finding 15 of issue 29: fields of the client's cannot forge fields of the server's.
    let forging = logs.lines().find(|l| l.contains("forging")).expect("the forging request's line");
    let fields = logfmt(forging);
    let values =
        |key: &str| fields.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!((values("status"), values("user")), (vec!["400"], vec!["-"]), "{forging}");
    assert_eq!(values("user_agent"), ["x status=200 user=admin"], "{forging}");
    assert_eq!(values("repository"), ["forging status=200 user=admin"], "{forging}");
    let ms = line.split("duration_ms=").nth(1).expect("duration").split(' ').next().expect("value");
    assert!(ms.split('.').nth(1).is_none_or(|d| d.len() <= 3), "duration {ms} not rounded to µs");
    ms.parse::<f64>().expect("a number of milliseconds");
}

/// The `key=value` fields of a text log line, as a reader that respects quotes parses them
/// (a quoted value is one value, with `\"` and `\\` inside it).
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while chars.peek().is_some() {
        let token: String = chars.by_ref().take_while(|c| *c != '=' && *c != ' ').collect();
        if chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            chars.next(); // the space after it
        } else {
            value = chars.by_ref().take_while(|c| *c != ' ').collect();
        }
        if !token.is_empty() {
            out.push((token, value));
        }
    }
    out
}
