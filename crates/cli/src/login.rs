//! `wharf login` and `wharf logout`: credentials checked against the registry, then kept
//! where docker, podman and skopeo read them (the auth file, or its credential helper).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use wharf_client::{Credentials, DockerConfig, Registry};

use crate::cli::{Login, Logout};
use crate::commands::print_json;
use crate::failure::{Failure, Result};
use crate::session::Session;

fn registry(host: &str) -> Result<Registry> {
    host.parse::<Registry>().map_err(|e| Failure::Usage(format!("{e} (a registry is HOST[:PORT])")))
}

/// `wharf login`.
pub(crate) async fn login(session: &Session<'_>, args: &Login) -> Result {
    let registry = registry(&args.host)?;
    let host = registry.to_string();
    let username = match &args.username {
        Some(user) => user.clone(),
        None if args.password_stdin => {
            return Err(Failure::Usage("--password-stdin needs --username".into()));
        }
        None => prompt("Username: ")?.trim().to_owned(),
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::Failed(format!("stdin: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        read_secret("Password: ")?
    };
    if username.is_empty() || password.is_empty() {
        return Err(Failure::Usage("a user name and a password are needed".into()));
    }
    let credentials = Credentials::basic(username, password);
    // The credentials are tried before they are kept (`GET /v2/`, answering the challenge).
    let client = session
        .builder(&[registry.api_host()])?
        .with_credentials(registry.api_host(), credentials.clone())
        .build()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    client.ping(&registry).await.map_err(|e| Failure::registry(&e, &host))?;
    let path = session.auth_file()?;
    DockerConfig::store(&path, &host, &credentials).map_err(|e| Failure::Failed(e.to_string()))?;
    session.step(format!("credentials for {host} stored in {}", path.display()));
    if session.json() {
        print_json(&serde_json::json!({ "host": host, "authFile": path.display().to_string() }));
    } else {
        println!("Login Succeeded!");
    }
    Ok(())
}

/// `wharf logout`.
pub(crate) fn logout(session: &Session<'_>, args: &Logout) -> Result {
    let host = registry(&args.host)?.to_string();
    let path = session.auth_file()?;
    if DockerConfig::erase(&path, &host).map_err(|e| Failure::Failed(e.to_string()))? {
        if session.json() {
            print_json(&serde_json::json!({ "host": host, "authFile": path.display().to_string() }));
        }
        session.info(format!("Removed login credentials for {host}"));
        Ok(())
    } else {
        Err(Failure::Failed(format!("not logged in to {host} (nothing stored in {})", path.display())))
    }
}

fn prompt(label: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "stdin is not a terminal: give {} on the command line",
            if label.starts_with('U') { "--username" } else { "the password with --password-stdin" }
        )));
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| Failure::Failed(format!("stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads a line from the terminal without echoing it.
fn read_secret(label: &str) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return prompt(label);
    }
    let saved = tcgetattr(&stdin).map_err(|e| Failure::Failed(format!("terminal: {e}")))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).map_err(|e| Failure::Failed(format!("terminal: {e}")))?;
    let line = prompt(label);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    line
}
