//! `slipway-agent`: parse, run, map the outcome to an exit code; see the
//! library's docs for the exit-code table.

fn main() -> std::process::ExitCode {
    slipway_agent::main()
}
