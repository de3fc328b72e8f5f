//! The `wharf-server` binary started on a port the system picks (shared with the test binaries
//! of their own through `#[path]`).

use std::process::{Child, Command, Stdio};

/// Spawns `command`, the binary with a `--listen` (or config `listen`) on port 0, and returns it
/// with the address it bound, read from its stderr (the rest of which goes on to the test's).
/// Never a port picked beforehand: another test may take it before the binary binds it, and
/// the test would then talk to that other server.
pub(crate) fn spawn_on_free_port(command: &mut Command) -> (Child, std::net::SocketAddr) {
    use std::io::BufRead as _;
    let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn wharf-server");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut before = Vec::new();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => match line.strip_prefix("wharf-server: listening on ") {
                Some(addr) => break addr.parse().expect("an address"),
                None => before.push(line),
            },
            _ => panic!("wharf-server exited before listening: {}", before.join("\n")),
        }
    };
    for line in &before {
        eprintln!("{line}");
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    (child, addr)
}
