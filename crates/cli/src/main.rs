//! `wharf`: the command line for WebAssembly in OCI registries — push, pull, inspect, copy,
//! login, tags, referrers — on `wharf-client` and `wharf-wasm`.
//!
//! Exit status: 0 done, 1 failed, 2 usage (a bad argument or reference). Errors are one line a
//! person can act on; results go to stdout (`--json` for scripts), everything else to stderr.

mod cli;
mod commands;
mod failure;
mod inspect;
mod login;
mod session;
mod verify;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
