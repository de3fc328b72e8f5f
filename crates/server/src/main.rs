//! `wharf-server`: the reference OCI registry.
//!
//! ```text
//! wharf-server [--listen 127.0.0.1:5000] [--storage fs:./wharf-data | memory | s3://bucket?endpoint=…&region=…]
//!              [--log-format text|json]
//! ```
//! Every flag also reads `WHARF_<FLAG>` from the environment. SIGTERM or Ctrl-C stops
//! accepting connections and lets in-flight requests finish.

use std::net::SocketAddr;

use clap::Parser;
use wharf_server::{Registry, Server, Storage, open_storage};

/// The Wharf reference OCI registry (distribution-spec v1.1, Wasm-aware).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "WHARF_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Storage: `fs:<dir>`, `memory`, or `s3://<bucket>[/<prefix>]?endpoint=<url>&region=<r>`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "WHARF_STORAGE", default_value = "fs:./wharf-data")]
    storage: Storage,
    /// Log format.
    #[arg(long, env = "WHARF_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let storage = open_storage(&args.storage).await?;
    let server = Server::bind(args.listen, Registry::new(storage)).await?;
    tracing::info!(address = %server.local_addr(), storage = ?args.storage, "wharf-server listening");
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
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
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
