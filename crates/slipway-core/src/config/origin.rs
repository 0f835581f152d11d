//! Where a configuration value came from, so errors and `slipway config show`
//! can point at it: a file position, a `.env` line, a process variable, a CLI
//! flag, or a built-in default.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A position in `deployment.yml` (1-based line and column).
    Yaml {
        path: Arc<PathBuf>,
        line: u64,
        column: u64,
    },
    /// A line of a `.env.<env>` file.
    EnvFile {
        path: Arc<PathBuf>,
        line: u64,
        column: u64,
        name: String,
    },
    /// A variable of the process environment.
    ProcessEnv { name: String },
    /// A `--set key=value` flag.
    CliFlag { flag: String },
    /// Slipway's own default.
    Default,
}

impl Origin {
    /// `file:line:column` for file origins, a short description otherwise.
    pub fn location(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Yaml { path, line, column } => {
                write!(f, "{}:{line}:{column}", path.display())
            }
            Origin::EnvFile {
                path, line, column, ..
            } => write!(f, "{}:{line}:{column}", path.display()),
            Origin::ProcessEnv { name } => write!(f, "environment variable {name}"),
            Origin::CliFlag { flag } => write!(f, "command-line flag {flag}"),
            Origin::Default => f.write_str("default"),
        }
    }
}
