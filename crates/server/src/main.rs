//! `wharf-server`: the reference OCI registry.
//!
//! ```text
//! wharf-server [--listen 127.0.0.1:5000] [--storage fs:./wharf-data | memory | s3://bucket?endpoint=…&region=…]
//!              [--log-format text|json] [--wasm-validate] [--config wharf.toml]
//!              [--header-timeout 30s] [--body-idle-timeout 60s] [--keepalive-timeout 60s]
//!              [--max-connections 10000] [--drain-timeout 30s]
//!              [--tls-cert server.crt --tls-key server.key [--tls-client-ca ca.crt]]
//!              [--htpasswd users.htpasswd]
//! wharf-server user add|remove|list [NAME] [--htpasswd FILE] [--password-stdin]
//! wharf-server gc [--dry-run] [--grace DURATION] [--config FILE | --storage SPEC]
//! wharf-server scrub [--no-quarantine] [--config FILE | --storage SPEC]
//! ```
//! Every flag also reads `WHARF_<FLAG>` from the environment. SIGTERM or Ctrl-C stops
//! accepting connections and lets in-flight requests finish, for the drain time at most;
//! SIGHUP reads the TLS and htpasswd files again (they are also watched for changes).

/// mimalloc rather than the C library's allocator: a request allocates and frees a few dozen
/// small blocks and hyper's 8 KiB read buffer, for which glibc's `malloc` merges its free
/// lists (`malloc_consolidate`) on every request; HEAD rows gain about 5 % (0.97-1.29×, see
/// `docs/PERFORMANCE.md`). Built without transparent huge pages (`no_thp`): with them the idle
/// RSS rose from 14 to 24 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use wharf_server::config::{FileConfig, parse_duration, parse_grace, parse_interval};
use wharf_server::{Limits, Server, StorageSpec, Wharf};

/// The Wharf reference OCI registry (distribution-spec v1.1, Wasm-aware).
///
/// Settings come from the flags, then the `WHARF_*` environment variables, then the
/// `--config` file, then the defaults.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on [default: 127.0.0.1:5000]; port 0 picks a free port and prints
    /// `wharf-server: listening on <address>` on stderr.
    #[arg(long, env = "WHARF_LISTEN")]
    listen: Option<SocketAddr>,
    /// Storage: `fs:<dir>`, `memory`, or `s3://<bucket>[/<prefix>]?endpoint=<url>&region=<r>`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; `&redirect=true` sends
    /// blob downloads to presigned URLs on the engine) [default: fs:./wharf-data].
    #[arg(long, env = "WHARF_STORAGE", global = true)]
    storage: Option<StorageSpec>,
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
    /// The interval in which a request body must bring, and a response must take,
    /// --min-transfer-rate × its length in bytes; a stall this long always fails [default: 60s].
    #[arg(long, env = "WHARF_BODY_IDLE_TIMEOUT", value_parser = parse_duration)]
    body_idle_timeout: Option<Duration>,
    /// Time a connection may stay open between requests [default: 60s].
    #[arg(long, env = "WHARF_KEEPALIVE_TIMEOUT", value_parser = parse_duration)]
    keepalive_timeout: Option<Duration>,
    /// Open connections at most; at the limit idle ones are closed to make room, and new ones
    /// wait when all are busy [default: 10000, lowered to fit the open-files limit].
    #[arg(long, env = "WHARF_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Open connections of one client address (an IPv6 address by its /64) at most, never more
    /// than half of --max-connections; 0: only that half [default: 256].
    #[arg(long, env = "WHARF_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Bytes per second a request body must bring and a response must take, on average over
    /// each --body-idle-timeout of waiting (`1KiB`, `0` turns it off) [default: 1KiB].
    #[arg(long, env = "WHARF_MIN_TRANSFER_RATE", value_parser = wharf_server::config::parse_size)]
    min_transfer_rate: Option<u64>,
    /// After SIGTERM, time in-flight requests get before their connections are closed
    /// [default: 30s].
    #[arg(long, env = "WHARF_DRAIN_TIMEOUT", value_parser = parse_duration)]
    drain_timeout: Option<Duration>,
    /// How often to collect garbage (`1h`, `off`) [default: 1h on fs and S3, off on memory].
    /// Config: `[gc] interval`.
    #[arg(long, env = "WHARF_GC_INTERVAL")]
    gc_interval: Option<String>,
    /// TLS certificate chain (PEM); with `--tls-key`, the server speaks HTTPS (HTTP/2 and
    /// HTTP/1.1). Config: `[tls] cert`.
    #[arg(long, env = "WHARF_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM). Config: `[tls] key`.
    #[arg(long, env = "WHARF_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// CA certificates for client certificates (mutual TLS). Config: `[tls] client_ca`.
    #[arg(long, env = "WHARF_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// `CN=USER`: a client certificate whose subject's common name is CN stands for USER
    /// (repeatable; certificates not named stand for no one). Config: `[tls] client_users`.
    #[arg(long, env = "WHARF_TLS_CLIENT_USER", value_delimiter = ',', requires = "tls_client_ca")]
    tls_client_user: Vec<String>,
    /// The URL clients reach the registry at (`https://registry.example.com`; behind a TLS
    /// proxy, the proxy's): the token realm, `Secure` cookies, and the name a registry on
    /// loopback answers to besides localhost. Config: `public_url`.
    #[arg(long, env = "WHARF_PUBLIC_URL")]
    public_url: Option<String>,
    /// htpasswd file of bcrypt entries: turns access control on. Config: `[auth] htpasswd`.
    #[arg(long, env = "WHARF_HTPASSWD", global = true)]
    htpasswd: Option<std::path::PathBuf>,
    /// A TOML file with any of the settings above, by their long names with `_`
    /// (`listen`, `storage`, `log_format`, `wasm_validate`, `header_timeout`, …), and the
    /// `[tls]`, `[auth]` and `[[access]]` sections; paths in it are relative to it.
    #[arg(long, env = "WHARF_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Manage the users of the htpasswd file.
    #[command(subcommand)]
    User(UserCommand),
    /// Collect garbage once, beside live servers on the same storage or alone, and print the
    /// JSON report (exit 1 when another collection holds the lease).
    Gc {
        /// List what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep what is younger than this (`1h`, `0`) [default: `[gc] grace`, else 1h].
        #[arg(long, value_parser = parse_grace)]
        grace: Option<Duration>,
    },
    /// Re-hash every blob and check every record; print the JSON report; exit 1 on damage.
    /// Corrupt blobs are moved to the storage's quarantine.
    Scrub {
        /// Report corrupt blobs without moving them.
        #[arg(long)]
        no_quarantine: bool,
    },
    /// The webhooks of the config file (`[[webhook]]`).
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Robot accounts, in the storage (every server over it sees a change on its next
    /// request). Robots made here are bounded by their grants only.
    #[command(subcommand)]
    Robot(RobotCommand),
}

#[derive(Debug, clap::Subcommand)]
enum RobotCommand {
    /// Make a robot; print it as JSON with its secret, shown this once (sign in as
    /// `robot$<name>` with the secret as the password).
    Add {
        /// Its name: lowercase letters, digits, `.`, `_`, `-`.
        name: String,
        /// A repository pattern it may act on (`ci/app`, `team/**`); repeat for more.
        #[arg(long = "repository", required = true)]
        repositories: Vec<String>,
        /// What it may do there: some of pull, push, delete.
        #[arg(long, value_delimiter = ',', default_value = "pull", value_parser = parse_action)]
        actions: Vec<wharf_auth::Action>,
        /// How long it lives (`90d`, `12h`) or `never`.
        #[arg(long, default_value = "90d")]
        expires: String,
    },
    /// List the robots as JSON, with their last use.
    List,
    /// Disable a robot: refused from its next request on.
    Disable {
        /// The robot's name.
        name: String,
    },
    /// Enable a disabled robot.
    Enable {
        /// The robot's name.
        name: String,
    },
    /// Delete a robot.
    Remove {
        /// The robot's name.
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum WebhookCommand {
    /// Send a test event (`webhook.test`) to a webhook now, signed as every delivery; print
    /// the receiver's answer as JSON; exit 1 when it did not answer 2xx.
    Test {
        /// The webhook's name.
        name: String,
    },
    /// Put a webhook's parked events back in line for the running servers to send (all, or
    /// one by its id).
    Resend {
        /// The webhook's name.
        name: String,
        /// Only this event.
        #[arg(long)]
        event: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Add a user, or set a user's password (bcrypt); the password is read from a prompt,
    /// or from the first line of stdin when it is not a terminal.
    Add {
        /// The user name.
        name: String,
        /// Read the password from stdin even on a terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        /// The user name.
        name: String,
    },
    /// List the users.
    List,
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
    let mut args = Args::parse();
    let mut file = match &args.config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    // Paths in the file are relative to it; those of flags to the working directory.
    let base = args
        .config
        .as_ref()
        .and_then(|p| p.parent())
        .map_or_else(|| std::path::PathBuf::from("."), std::path::Path::to_path_buf);
    let cwd = std::env::current_dir()?;
    if let Some(htpasswd) = &args.htpasswd {
        file.auth.get_or_insert_with(Default::default).htpasswd = Some(cwd.join(htpasswd));
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let mut tls = wharf_server::config::TlsConfig::default();
        tls.cert = cwd.join(cert);
        tls.key = cwd.join(key);
        tls.client_ca = args.tls_client_ca.as_ref().map(|p| cwd.join(p));
        file.tls = Some(tls);
    }
    if !args.tls_client_user.is_empty() {
        let tls = file.tls.as_mut().ok_or("--tls-client-user needs TLS")?;
        for pair in &args.tls_client_user {
            let (cn, user) = pair
                .split_once('=')
                .ok_or_else(|| format!("--tls-client-user `{pair}`: expected CN=USER"))?;
            tls.client_users.insert(cn.to_owned(), user.to_owned());
        }
    }
    if let Some(url) = args.public_url.take() {
        file.public_url = Some(url);
    }
    if let Some(Command::User(command)) = &args.command {
        return user_command(command, &file, &base);
    }
    let webhooks = file.webhooks(&base).map_err(|e| format!("config: {e}"))?;
    if let Some(Command::Webhook(WebhookCommand::Test { name })) = &args.command {
        let sent = webhooks.test(name).await?;
        println!("{}", serde_json::to_string_pretty(&sent)?);
        return match &sent.error {
            None => Ok(()),
            Some(e) => Err(format!("webhook `{name}`: {e}").into()),
        };
    }
    let listen = args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:5000".parse().expect("valid"));
    let storage = match (args.storage, file.storage.take()) {
        (Some(s), _) => s,
        // A directory in the config file is relative to the file.
        (None, Some(s)) => match s.parse()? {
            StorageSpec::Fs(dir) if dir.is_relative() => StorageSpec::Fs(base.join(dir)),
            other => other,
        },
        (None, None) => "fs:./wharf-data".parse()?,
    };
    let gc_config = file.gc.take().unwrap_or_default();
    let lifecycle = wharf_server::lifecycle::Lifecycle::from_config(&gc_config, &file.retention, &file.quota)
        .map_err(|e| format!("config: {e}"))?
        .with_cache_budgets(file.cache_budgets().map_err(|e| format!("config: {e}"))?);
    if let Some(Command::Robot(command)) = &args.command {
        return robot_command(command, &storage).await;
    }
    if let Some(command @ (Command::Gc { .. } | Command::Scrub { .. } | Command::Webhook(_))) = &args.command
    {
        // Retention spares what `[[versioning]]` makes immutable, in a one-off run too.
        let versioning = file.versioning().map_err(|e| format!("config: {e}"))?;
        let registry = |backend| {
            Wharf::new(backend).with_lifecycle(lifecycle).with_versioning(versioning).with_webhooks(webhooks)
        };
        return maintenance(command, &storage, registry).await;
    }
    let log_format = args.log_format.or(file.log_format.take()).unwrap_or_else(|| "text".to_owned());
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
    limits.header_timeout = duration(
        args.header_timeout,
        ("header_timeout", file.header_timeout.take()),
        defaults.header_timeout,
    )?;
    limits.body_idle_timeout = duration(
        args.body_idle_timeout,
        ("body_idle_timeout", file.body_idle_timeout.take()),
        defaults.body_idle_timeout,
    )?;
    limits.keepalive_timeout = duration(
        args.keepalive_timeout,
        ("keepalive_timeout", file.keepalive_timeout.take()),
        defaults.keepalive_timeout,
    )?;
    limits.drain_timeout =
        duration(args.drain_timeout, ("drain_timeout", file.drain_timeout.take()), defaults.drain_timeout)?;
    limits.max_connections =
        args.max_connections.or(file.max_connections).unwrap_or(defaults.max_connections);
    limits.max_connections_per_address = args
        .max_connections_per_address
        .or(file.max_connections_per_address)
        .unwrap_or(defaults.max_connections_per_address);
    limits.min_transfer_rate =
        args.min_transfer_rate.or(file.min_transfer_rate.map(|s| s.0)).unwrap_or(defaults.min_transfer_rate);
    let open_files = wharf_server::raise_open_files_limit();
    let tls = file.tls(&base)?;
    let data_dir = match &storage {
        StorageSpec::Fs(dir) => Some(cwd.join(dir)),
        _ => None,
    };
    let access = file.access(&base, data_dir.as_deref())?;
    let backend = storage.open().await.map_err(|e| format!("opening the storage {storage}: {e}"))?;
    let wasm_validate = args.wasm_validate.or(file.wasm_validate).unwrap_or(false);
    let policies = wharf_server::wasm_policy::WasmPolicies::from_config(&file.wasm_policy)
        .map_err(|e| format!("config [[wasm_policy]]: {e}"))?;
    let versioning = file.versioning().map_err(|e| format!("config: {e}"))?;
    let mirror = file.mirror(&base).map_err(|e| format!("config: {e}"))?;
    let trust = file.trust(&base).map_err(|e| format!("config: {e}"))?;
    let gc_every = match (&args.gc_interval, &gc_config.interval) {
        (Some(s), _) => parse_interval(s).map_err(|e| format!("--gc-interval: {e}"))?,
        (None, Some(s)) => parse_interval(s).map_err(|e| format!("config [gc] interval: {e}"))?,
        (None, None) if matches!(storage, StorageSpec::Memory) => None,
        (None, None) => Some(Duration::from_secs(3600)),
    };
    let scrub_every = match &gc_config.scrub_interval {
        Some(s) => parse_interval(s).map_err(|e| format!("config [gc] scrub_interval: {e}"))?,
        None => None,
    };
    let public_url = file.public_url().map_err(|e| format!("config: {e}"))?;
    let inspection = file.inspection.take().unwrap_or_default();
    let budget = inspection.budget().map_err(|e| format!("config: {e}"))?;
    let stale_for = match &file.serve_stale_for {
        Some(s) => parse_duration(s).map_err(|e| format!("config serve_stale_for: {e}"))?,
        None => wharf_server::STALE_FOR,
    };
    let registry = Wharf::new(backend)
        .with_stale_for(stale_for)
        .with_inspection(budget, inspection.concurrency)
        .with_wasm_validate(wasm_validate)
        .with_wasm_policies(policies)
        .with_versioning(versioning)
        .with_mirror(mirror)
        .with_trust(trust)
        .with_webhooks(webhooks)
        .with_lifecycle(lifecycle);
    let mut server = Server::bind(listen, registry)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("{listen} is already in use (is another registry running?)")
            }
            _ => format!("cannot listen on {listen}: {e}"),
        })?
        .with_limits(limits)
        .with_gc_every(gc_every)
        .with_scrub_every(scrub_every);
    if listen.port() == 0 {
        // The only way for whoever started us to learn the port the system picked.
        eprintln!("wharf-server: listening on {}", server.local_addr());
    }
    if let Some(tls) = &tls {
        server = server.with_tls(std::sync::Arc::clone(tls));
    }
    if let Some(url) = public_url.clone() {
        server = server.with_public_url(url);
    }
    if let Some(access) = &access {
        if let Some(path) = &args.config {
            access.watch_rules(path, wharf_server::config::read_access_rules);
        }
        server = server.with_access(std::sync::Arc::clone(access));
    }
    tracing::info!(
        address = %server.local_addr(),
        storage = ?storage,
        tls = tls.is_some(),
        access_control = access.is_some(),
        open_files,
        ?limits,
        "wharf-server listening"
    );
    if access.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(
            address = %listen,
            "OPEN REGISTRY: listening beyond loopback without authentication; anyone who can reach this address can push, overwrite and delete (configure [auth], see docs/OPERATING.md)"
        );
    }
    let realm_set = file.auth.as_ref().is_some_and(|a| a.realm.is_some()) || public_url.is_some();
    if access.is_some() && !realm_set && !listen.ip().is_loopback() {
        tracing::warn!(
            address = %listen,
            "no public_url (or [auth] realm): token challenges name the address each connection reached, or a loopback name; set --public-url to the name clients use"
        );
    }
    if access.is_some() && tls.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(address = %listen, "access control without TLS: passwords and tokens cross the network in clear");
    }
    server.run_until(shutdown_signal()).await?;
    tracing::info!("wharf-server stopped");
    Ok(())
}

/// `wharf-server user add|remove|list`.
fn user_command(
    command: &UserCommand,
    file: &FileConfig,
    base: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = file.auth.as_ref().and_then(|a| a.htpasswd.as_ref()).map(|p| base.join(p)).ok_or(
        "no htpasswd file: give --htpasswd FILE (or WHARF_HTPASSWD, or [auth] htpasswd in --config)",
    )?;
    let mut users = match std::fs::read_to_string(&path) {
        Ok(text) => wharf_auth::Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => wharf_auth::Htpasswd::default(),
        Err(e) => return Err(format!("{}: {e}", path.display()).into()),
    };
    match command {
        UserCommand::List => {
            for user in users.users() {
                println!("{user}");
            }
            return Ok(());
        }
        UserCommand::Remove { name } => {
            if !users.remove(name) {
                return Err(format!("no user `{name}` in {}", path.display()).into());
            }
            eprintln!("removed {name}");
        }
        UserCommand::Add { name, password_stdin } => {
            if !wharf_auth::valid_user(name) {
                return Err(
                    format!("`{name}` is not a user name (no `:`, spaces or control characters)").into()
                );
            }
            let password = read_password(*password_stdin)?;
            if password.is_empty() {
                return Err("the password is empty".into());
            }
            let new = users.set(name, &password, wharf_auth::DEFAULT_COST)?;
            eprintln!("{} {name}", if new { "added" } else { "changed the password of" });
        }
    }
    wharf_server::auth::write_private(&path, users.render().as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(())
}

/// A password from the first line of stdin, or from a prompt (twice, without echo).
fn read_password(from_stdin: bool) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::BufRead as _;
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let ask = |prompt: &str| -> Result<String, Box<dyn std::error::Error>> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        eprint!("{prompt}");
        let saved = tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        tcsetattr(&stdin, OptionalActions::Now, &saved)?;
        eprintln!();
        read?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = ask("Password: ")?;
    if ask("Again: ")? != first {
        return Err("the passwords differ".into());
    }
    Ok(first)
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

/// `gc`, `scrub` and `webhook resend`: one run over the storage, the JSON report on stdout,
/// logs on stderr.
async fn maintenance(
    command: &Command,
    storage: &StorageSpec,
    registry: impl FnOnce(std::sync::Arc<dyn wharf_store::Storage>) -> Wharf,
) -> Result<(), Box<dyn std::error::Error>> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WHARF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_env_filter(filter).init();
    let backend = storage.open().await.map_err(|e| format!("opening the storage {storage}: {e}"))?;
    let registry = registry(backend);
    let mut options = registry.lifecycle().options().clone();
    match command {
        Command::Gc { dry_run, grace } => {
            options = options.with_dry_run(*dry_run);
            if let Some(grace) = grace {
                options = options.with_grace(*grace);
            }
            let report = registry.collect_garbage(&options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Scrub { no_quarantine } => {
            let report = registry.scrub(!no_quarantine).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.damage.is_empty() {
                Ok(())
            } else {
                Err(format!("scrub found {} problems (listed above)", report.damage.len()).into())
            }
        }
        Command::Webhook(WebhookCommand::Resend { name, event }) => {
            let n = registry.resend_events(name, event.as_deref()).await?;
            println!("{}", serde_json::json!({ "webhook": name, "queued": n }));
            Ok(())
        }
        Command::User(_) | Command::Robot(_) | Command::Webhook(WebhookCommand::Test { .. }) => {
            unreachable!("handled before")
        }
    }
}

fn parse_action(s: &str) -> Result<wharf_auth::Action, String> {
    wharf_auth::Action::parse(s).ok_or_else(|| format!("`{s}`: expected pull, push or delete"))
}

/// `robot …`: over the storage's credential records, JSON on stdout.
async fn robot_command(
    command: &RobotCommand,
    storage: &StorageSpec,
) -> Result<(), Box<dyn std::error::Error>> {
    use wharf_auth::credential::Kind;
    let backend = storage.open().await.map_err(|e| format!("opening the storage {storage}: {e}"))?;
    let robots = wharf_server::auth::Credentials::new(backend);
    let view = |c: &wharf_auth::Credential| {
        serde_json::to_string_pretty(&wharf_server::auth::credentials::View::from(c))
    };
    match command {
        RobotCommand::Add { name, repositories, actions, expires } => {
            let repositories = wharf_auth::Pattern::parse_list(repositories)?;
            let grants = vec![wharf_auth::Grant { repositories, actions: wharf_auth::Actions::of(actions) }];
            let expires = match expires.as_str() {
                "never" => None,
                text => Some(
                    wharf_auth::now()
                        + parse_duration(text).map_err(|e| format!("--expires: {e}"))?.as_secs().max(1),
                ),
            };
            let (robot, secret) = robots.create(Kind::Robot, name, None, grants, expires).await?;
            let mut shown = serde_json::to_value(wharf_server::auth::credentials::View::from(&robot))?;
            shown["secret"] = serde_json::json!(secret.expose());
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        RobotCommand::List => {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "robots": robots.list(Kind::Robot, None).await? })
                )?
            );
        }
        RobotCommand::Disable { name } | RobotCommand::Enable { name } => {
            let robot = robots.robot(name).await?.ok_or_else(|| format!("no robot named `{name}`"))?;
            let changed =
                robots.set_disabled(&robot, matches!(command, RobotCommand::Disable { .. })).await?;
            println!("{}", view(&changed)?);
        }
        RobotCommand::Remove { name } => {
            let robot = robots.robot(name).await?.ok_or_else(|| format!("no robot named `{name}`"))?;
            robots.remove(&robot).await?;
            println!("{}", serde_json::json!({ "removed": name }));
        }
    }
    Ok(())
}
