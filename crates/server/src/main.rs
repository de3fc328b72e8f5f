//! `wharf-server`: the reference OCI registry.
//!
//! ```text
//! wharf-server [--listen 127.0.0.1:5000] [--storage fs:./wharf-data | memory | s3://bucket?endpoint=…&region=…]
//!              [--log-format text|json] [--wasm-validate true|false] [--config wharf.toml]
//! ```
//! Every flag also reads `WHARF_<FLAG>` from the environment. SIGTERM or Ctrl-C stops
//! accepting connections and lets in-flight requests finish.

use std::net::SocketAddr;

use clap::Parser;
use wharf_server::{Registry, Server, Storage, open_storage};

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
    /// Refuse manifests whose declared raw Wasm layer is not valid WebAssembly.
    #[arg(long, env = "WHARF_WASM_VALIDATE")]
    wasm_validate: Option<bool>,
    /// A TOML file with `listen`, `storage`, `log_format` and `wasm_validate` keys.
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
        "text" => tracing_subscriber::fmt().with_env_filter(filter).init(),
        other => return Err(format!("log_format `{other}`: expected text or json").into()),
    }
    let backend = open_storage(&storage).await?;
    let wasm_validate = args.wasm_validate.or(file.wasm_validate).unwrap_or(false);
    let server = Server::bind(listen, Registry::new(backend).with_wasm_validate(wasm_validate)).await?;
    tracing::info!(address = %server.local_addr(), storage = ?storage, "wharf-server listening");
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
