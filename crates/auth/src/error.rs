//! The crate's one error type.

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An htpasswd file that does not parse (line number from 1).
    #[error("htpasswd line {line}: {message}")]
    Htpasswd {
        /// The line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A token scope that does not parse.
    #[error("scope {scope}: {message}")]
    Scope {
        /// The scope as sent.
        scope: wharf_types::error::Input,
        /// What is wrong with it.
        message: &'static str,
    },
    /// A repository pattern that does not parse.
    #[error("repository pattern {pattern}: {message}")]
    Pattern {
        /// The pattern.
        pattern: wharf_types::error::Input,
        /// What is wrong with it.
        message: &'static str,
    },
    /// A token that is malformed, badly signed, expired, or for someone else.
    #[error("token refused: {0}")]
    Token(String),
    /// A key that cannot be read or used.
    #[error("key: {0}")]
    Key(String),
    /// A signature that does not verify, and why.
    #[error("signature: {0}")]
    Signature(String),
    /// A password that cannot be hashed (bcrypt refuses it).
    #[error("password: {0}")]
    Password(String),
    /// A robot account or personal access token that cannot be made as asked.
    #[error("credential: {0}")]
    Credential(String),
    /// A trust policy that does not check.
    #[error("{0}")]
    TrustPolicy(String),
}

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
