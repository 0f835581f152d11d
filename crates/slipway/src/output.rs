//! Everything the CLI prints goes through [`Printer`]: results on stdout
//! (text, or JSON with `--json`), progress, warnings and errors on stderr.
//! Colour only on a terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

use slipway_core::config::{Problem, Severity};

use crate::cli::{GlobalArgs, LogFormat};
use crate::exit::CliError;

/// Whether slow steps show their live output: stderr is a terminal, or
/// `SLIPWAY_LIVE` is set (a CI log that wants it anyway).
pub fn live_output() -> bool {
    std::io::stderr().is_terminal()
        || std::env::var_os("SLIPWAY_LIVE").is_some_and(|v| !v.is_empty())
}

pub struct Printer {
    json: bool,
    color: bool,
    /// stderr is a terminal: slow steps show their live output there.
    live: bool,
    /// `--log-format json`: events are also printed as JSON lines.
    log_json: bool,
}

impl Printer {
    pub fn new(args: &GlobalArgs) -> Self {
        let live = live_output();
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stderr().is_terminal();
        Self {
            json: args.json,
            color,
            live,
            log_json: args.log_format == LogFormat::Json,
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// A line of the command's result (stdout).
    pub fn line(&self, text: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (e.g. `| head`) is not an error worth reporting.
        let _ = writeln!(out, "{}", text.as_ref());
    }

    /// The command's result as one JSON document (stdout).
    pub fn json_value(&self, value: &impl serde::Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.line(text),
            Err(e) => self.note(&format!("internal: cannot encode JSON: {e}")),
        }
    }

    /// Progress and notes for the operator (stderr), also in `--json` mode.
    pub fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// A line of a slow step's own output (a build's), indented under the
    /// step, on stderr; nothing when not [`live`](Self::live).
    pub fn live_line(&self, text: &str) {
        if self.live {
            let bar = self.paint("│", "2");
            self.note(&format!("    {bar} {text}"));
        }
    }

    /// A success line (stderr when the result goes to stdout as JSON).
    pub fn success(&self, text: &str) {
        let mark = self.paint("✓", "32");
        if self.json {
            self.note(&format!("{mark} {text}"));
        } else {
            self.line(format!("{mark} {text}"));
        }
    }

    /// A notification event as one JSON line on stderr, with
    /// `--log-format json` (the agent's log has the same line either way).
    pub fn event(&self, event: &slipway_core::notify::Event) {
        if self.log_json
            && let Ok(line) = serde_json::to_string(&serde_json::json!({ "event": event }))
        {
            self.note(&line);
        }
    }

    pub fn problem(&self, p: &Problem) {
        let (label, code) = match p.severity {
            Severity::Error => ("error", "31"),
            Severity::Warning => ("warning", "33"),
        };
        let mut text = format!("{}: {}: {}", p.origin, self.paint(label, code), p.message);
        if let Some(found) = &p.found {
            text.push_str(&format!("\n    found:    {found}"));
        }
        if let Some(expected) = &p.expected {
            text.push_str(&format!("\n    expected: {expected}"));
        }
        if let Some(hint) = &p.hint {
            text.push_str(&format!("\n    {}     {hint}", self.paint("hint:", "36")));
        }
        self.note(&text);
    }

    pub fn error(&self, e: &CliError) {
        let mut text = format!("{}: {}", self.paint("error", "31"), e.message);
        if let Some(hint) = &e.hint {
            text.push_str(&format!("\n  {} {hint}", self.paint("hint:", "36")));
        }
        self.note(&text);
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Logs (tracing) go to stderr; `-v` raises the level, `--log-format json`
/// makes them machine-readable. `RUST_LOG` wins when set.
pub fn init_logging(args: &GlobalArgs) {
    let level = match args.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(false).init(),
    }
}
