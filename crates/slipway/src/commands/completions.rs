//! `slipway completions <shell>`: a completion script generated from the
//! clap definition, so it never drifts from the real flags.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::{CliError, Exit};

pub fn run(args: &CompletionsArgs) -> Result<(), CliError> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics when its writer fails, and
    // `slipway completions bash | head` closes the pipe early.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "slipway", &mut script);
    write_stdout(&script)
}

/// Writes `bytes` to stdout; a reader that went away early is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::new(
            Exit::Failed,
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}
