//! The `wharf-server` binary.
//!
//! The registry itself arrives with the server issue; until then this binary says so and
//! exits with status 2, so no script mistakes it for a running registry.

fn main() -> std::process::ExitCode {
    eprintln!(
        "wharf-server {}: the reference registry is not built yet; it arrives with the \
         `wharf-server` issue (see README.md)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
