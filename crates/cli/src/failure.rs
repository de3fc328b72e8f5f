//! Why a command failed, as one line a person can act on, and its exit status.

use std::fmt;

use wharf_client::Error;

/// A failed command: a usage mistake (exit 2) or a failure (exit 1).
#[derive(Debug)]
pub(crate) enum Failure {
    /// A bad argument: the command could not start.
    Usage(String),
    /// The command started and failed.
    Failed(String),
}

/// What the commands return.
pub(crate) type Result<T = ()> = std::result::Result<T, Failure>;

impl Failure {
    /// The process exit status.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Failed(_) => 1,
        }
    }

    /// A failure of something the registry at `host` answered or the connection to it, with
    /// the way out when there is one.
    pub(crate) fn registry(error: &Error, host: &str) -> Self {
        use std::fmt::Write as _;
        let mut text = error.to_string();
        if error.is_unauthorized() {
            let _ = write!(text, " (log in with `wharf login {host}`, or check the user name and password)");
        } else if error.is_denied() {
            text.push_str(
                " (the credentials were accepted but may not do this here: ask the registry's \
                 administrator, or log in as a user who may)",
            );
        } else if let Error::NotWasm { reference, .. } = error {
            let _ = write!(text, " (`wharf inspect {reference}` shows why)");
        }
        Self::Failed(text)
    }

    /// A failure about `reference`: [`registry`](Self::registry), naming the reference when
    /// it was not found.
    pub(crate) fn at(error: &Error, reference: &wharf_client::Reference) -> Self {
        let not_found = error.is_not_found();
        match Self::registry(error, reference.api_host()) {
            Self::Failed(text) if not_found => Self::Failed(format!("{reference} not found: {text}")),
            other => other,
        }
    }

    /// A file that could not be read or written.
    pub(crate) fn file(path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::Failed(format!("{}: {error}", path.display()))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(text) | Self::Failed(text) => f.write_str(text),
        }
    }
}
