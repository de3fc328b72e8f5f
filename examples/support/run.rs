//! How every example starts and ends: `--help` prints the usage and exits 0; an error is one
//! readable line (with its causes, and a hint when nothing listens) and exit status 1, never
//! a `Debug` dump.

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;

/// What an example returns.
pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Runs `example` with the command-line arguments on a current-thread runtime.
pub(crate) fn main<F: Future<Output = Result>>(
    usage: &str,
    example: impl FnOnce(Vec<String>) -> F,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{usage}");
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    match runtime.block_on(example(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line (the client's errors already name their causes and
/// the way out: a refused connection, an unknown host, HTTPS against plain HTTP).
fn describe(e: &dyn Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
