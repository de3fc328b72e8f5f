//! Debian's `docker-registry` (CNCF distribution 2.8.2) on a free loopback port, plain or with
//! htpasswd Basic auth, for the tests that check Wharf against it (the client's
//! `distribution` test, the interop suite's CLI flow). Shared by `#[path]`.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `docker-registry`; killed when dropped.
pub(crate) struct Distribution {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub(crate) host: String,
    /// Its log lines so far (an access-log line per request).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Distribution {
    /// How many requests its access log shows with `method` on a path ending in `path_end`.
    #[allow(dead_code)] // Counted by the interop suite's mirror flow only.
    pub(crate) fn requests(&self, method: &str, path_end: &str) -> usize {
        let method = format!("http.request.method={method} ");
        let uri = format!("{path_end}\"");
        let log = self.log.lock().expect("lock");
        log.iter()
            .filter(|l| l.contains("response completed") && l.contains(&method) && l.contains(&uri))
            .count()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The installed `docker-registry`; `None` (said on stderr) when missing, a failure then
/// under `WHARF_REQUIRE_ALL=1`.
pub(crate) fn binary() -> Option<&'static str> {
    let path = "/usr/bin/docker-registry";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("WHARF_REQUIRE_ALL").map_or(true, |v| v != "1"),
        "docker-registry is not installed and WHARF_REQUIRE_ALL=1 (.ci/run installs it)"
    );
    eprintln!(
        "SKIPPED distribution interop: docker-registry is not installed (apt-get install docker-registry)"
    );
    None
}

/// Starts one (with `user`/`password` in its htpasswd when given) and waits until it listens.
pub(crate) async fn start(htpasswd: Option<(&str, &str)>) -> Option<Distribution> {
    let bin = binary()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = match htpasswd {
        Some((user, password)) => {
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).expect("htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            )
        }
        None => String::new(),
    };
    let config = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n{auth}",
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).expect("config");
    // Port 0, and the port it bound read from its log: a port picked beforehand could be taken
    // by another test before the registry binds it.
    let mut child = Command::new(bin)
        .args(["serve", config_path.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker-registry");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let host = loop {
        let Some(Ok(line)) = lines.next() else { panic!("docker-registry exited before listening") };
        if let Some((_, rest)) = line.split_once("msg=\"listening on ") {
            break rest.split('"').next().expect("an address").to_owned();
        }
    };
    // The rest of its log is kept (and drained: a full pipe would block it).
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&log);
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| kept.lock().expect("lock").push(l)));
    let registry = Distribution { child, host, log, _dir: dir };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&registry.host).await.is_ok() {
            return Some(registry);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("docker-registry did not start");
}
