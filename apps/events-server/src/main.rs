//! The `events-server` binary: reads arguments and the environment, runs the
//! service, and maps the outcome to an exit code. Everything else is in the
//! library.
//!
//! Exit codes: 0 clean shutdown; 1 runtime failure (cannot bind, server
//! error); 2 usage or configuration error (reported before any port is bound).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use events_server::config::{Config, ENV_VARS, LogFormat};
use events_server::version;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("--version" | "-V") => return print(&version::long_version()),
        Some("--help" | "-h") => return print(&help()),
        Some("selftest") => return selftest(&args[1..]),
        Some(other) => {
            eprintln!("error: unexpected argument `{other}`\n\n{}", help());
            return ExitCode::from(2);
        }
    }

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: configuration: {err}");
            eprintln!("hint: see `events-server --help` for the environment variables");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(events_server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "exiting");
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

/// `events-server selftest [PATH...]`: see `events_server::selftest`.
fn selftest(paths: &[String]) -> ExitCode {
    let port = match std::env::var("PORT") {
        Err(_) => 8080,
        Ok(text) => match text.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("selftest: error: PORT={text:?} is not a port");
                return ExitCode::from(2);
            }
        },
    };
    match events_server::selftest::run(port, paths) {
        Ok(lines) => {
            for line in lines {
                println!("selftest: {line}");
            }
            println!("selftest: ok ({})", version::long_version());
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("selftest: FAILED: {why}");
            ExitCode::from(1)
        }
    }
}

fn print(text: &str) -> ExitCode {
    // A closed pipe (`events-server --version | head -c1`) is not a failure.
    let _ = writeln!(std::io::stdout(), "{text}");
    ExitCode::SUCCESS
}

fn help() -> String {
    let mut text = format!(
        "{}\n\nUsage: events-server [--version | --help]\n       events-server selftest [PATH...]   GET each PATH (default /health /version) on\n                                          127.0.0.1:$PORT; exit 1 unless all answer 2xx\n\nEnvironment:\n",
        version::long_version()
    );
    for (name, default, meaning) in ENV_VARS {
        text.push_str(&format!("  {name:<34} {meaning} [{default}]\n"));
    }
    text
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a person at a terminal; container logs and
        // NO_COLOR (https://no-color.org) get plain text.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
