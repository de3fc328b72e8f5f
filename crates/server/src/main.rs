//! `wharf-server`: the reference OCI registry.
//!
//! ```text
//! wharf-server [--listen 127.0.0.1:5000] [--storage fs:./wharf-data | memory | s3://bucket?endpoint=…&region=…]
//!              [--log-format text|json] [--wasm-validate] [--config wharf.toml]
//!              [--header-timeout 30s] [--body-idle-timeout 60s] [--keepalive-timeout 60s]
//!              [--max-connections 10000] [--drain-timeout 30s]
//! ```
//! Every flag also reads `WHARF_<FLAG>` from the environment. SIGTERM or Ctrl-C stops
//! accepting connections and lets in-flight requests finish, for the drain time at most.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use wharf_server::{Limits, Registry, Server, Storage, open_storage};

/// The Wharf reference OCI registry (distribution-spec v1.1, Wasm-aware).
///
/// Settings come from the flags, then the `WHARF_*` environment variables, then the
/// `--config` file, then the defaults.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "WHARF_LISTEN")]
    listen: Option<SocketAddr>,
    /// Storage: `fs:<dir>`, `memory`, or `s3://<bucket>[/<prefix>]?endpoint=<url>&region=<r>`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) [default: fs:./wharf-data].
    #[arg(long, env = "WHARF_STORAGE")]
    storage: Option<Storage>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "WHARF_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Refuse manifests whose declared raw Wasm layer is not valid WebAssembly
    /// (`--wasm-validate`, or `--wasm-validate=false` to turn a config file's setting off).
    #[arg(long, env = "WHARF_WASM_VALIDATE", num_args = 0..=1, default_missing_value = "true")]
    wasm_validate: Option<bool>,
    /// Time a client has to send a request's headers (`30s`, `500ms`, `2m`) [default: 30s].
    #[arg(long, env = "WHARF_HEADER_TIMEOUT", value_parser = parse_duration)]
    header_timeout: Option<Duration>,
    /// Time a request body may go without a byte, or a response without the client reading
    /// [default: 60s].
    #[arg(long, env = "WHARF_BODY_IDLE_TIMEOUT", value_parser = parse_duration)]
    body_idle_timeout: Option<Duration>,
    /// Time a connection may stay open between requests [default: 60s].
    #[arg(long, env = "WHARF_KEEPALIVE_TIMEOUT", value_parser = parse_duration)]
    keepalive_timeout: Option<Duration>,
    /// Open connections at most; at the limit idle ones are closed to make room, and new ones
    /// wait when all are busy [default: 10000, lowered to fit the open-files limit].
    #[arg(long, env = "WHARF_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// After SIGTERM, time in-flight requests get before their connections are closed
    /// [default: 30s].
    #[arg(long, env = "WHARF_DRAIN_TIMEOUT", value_parser = parse_duration)]
    drain_timeout: Option<Duration>,
    /// A TOML file with any of the settings above, by their long names with `_`
    /// (`listen`, `storage`, `log_format`, `wasm_validate`, `header_timeout`, …).
    #[arg(long, env = "WHARF_CONFIG")]
    config: Option<std::path::PathBuf>,
}

/// The `--config` file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    storage: Option<String>,
    log_format: Option<String>,
    wasm_validate: Option<bool>,
    header_timeout: Option<String>,
    body_idle_timeout: Option<String>,
    keepalive_timeout: Option<String>,
    max_connections: Option<usize>,
    drain_timeout: Option<String>,
}

/// `30s`, `500ms`, `2m`, `1h`, or a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{s}` is not a duration (try 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("`{other}` in `{s}` is not a unit of time (ms, s, m, h)")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d.is_zero() => Err(format!("`{s}`: a time-out must be longer than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wharf-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let file: FileConfig = match &args.config {
        Some(path) => {
            toml::from_str(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let listen = args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:5000".parse().expect("valid"));
    let storage = match (args.storage, file.storage) {
        (Some(s), _) => s,
        (None, Some(s)) => s.parse()?,
        (None, None) => "fs:./wharf-data".parse()?,
    };
    let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| "text".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match log_format.as_str() {
        "json" => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        // Colours only for a terminal.
        "text" => tracing_subscriber::fmt()
            .with_ansi(std::io::stdout().is_terminal())
            .with_env_filter(filter)
            .init(),
        other => return Err(format!("log_format `{other}`: expected text or json").into()),
    }
    // A flag (or its environment variable) wins over the config file's key.
    let duration =
        |flag: Option<Duration>, key: (&str, Option<String>), default: Duration| match (flag, key.1) {
            (Some(d), _) => Ok(d),
            (None, Some(s)) => parse_duration(&s).map_err(|e| format!("config key {}: {e}", key.0)),
            (None, None) => Ok::<_, String>(default),
        };
    let defaults = Limits::default();
    let mut limits = Limits::default();
    limits.header_timeout =
        duration(args.header_timeout, ("header_timeout", file.header_timeout), defaults.header_timeout)?;
    limits.body_idle_timeout = duration(
        args.body_idle_timeout,
        ("body_idle_timeout", file.body_idle_timeout),
        defaults.body_idle_timeout,
    )?;
    limits.keepalive_timeout = duration(
        args.keepalive_timeout,
        ("keepalive_timeout", file.keepalive_timeout),
        defaults.keepalive_timeout,
    )?;
    limits.drain_timeout =
        duration(args.drain_timeout, ("drain_timeout", file.drain_timeout), defaults.drain_timeout)?;
    limits.max_connections =
        args.max_connections.or(file.max_connections).unwrap_or(defaults.max_connections);
    let open_files = wharf_server::raise_open_files_limit();
    let backend =
        open_storage(&storage).await.map_err(|e| format!("opening the storage {storage:?}: {e}"))?;
    let wasm_validate = args.wasm_validate.or(file.wasm_validate).unwrap_or(false);
    let registry = Registry::new(backend).with_wasm_validate(wasm_validate);
    let server = Server::bind(listen, registry)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("{listen} is already in use (is another registry running?)")
            }
            _ => format!("cannot listen on {listen}: {e}"),
        })?
        .with_limits(limits);
    tracing::info!(
        address = %server.local_addr(), storage = ?storage, open_files, ?limits, "wharf-server listening"
    );
    if !listen.ip().is_loopback() {
        tracing::warn!(
            address = %listen,
            "listening beyond loopback without authentication: anyone who can reach this address can push, overwrite and delete"
        );
    }
    server.run_until(shutdown_signal()).await?;
    tracing::info!("wharf-server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        for bad in ["", "s", "-1s", "0", "0ms", "10 years", "1.2.3s", "inf", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
