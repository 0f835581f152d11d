//! The `slipway` binary: parse the command line, run the command, map the
//! outcome to an exit code (the table lives in [`exit`]). Nothing else.

mod cli;
mod commands;
mod exit;
mod forge;
mod identity;
mod output;
mod owner;
mod pipeline;
mod providers;
mod tasks;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let printer = output::Printer::new(&args.global);
    output::init_logging(&args.global);
    match commands::run(args, &printer) {
        Ok(()) => exit::Exit::Success.into(),
        Err(error) => {
            printer.error(&error);
            error.exit.into()
        }
    }
}
