//! Exit codes, one table, published in the README:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the operation ran and failed (e.g. a deploy failed and was rolled back) |
//! | 2 | bad input: usage, configuration, or a file that would be overwritten |
//! | 3 | conflict: another deploy holds the lock, or confirmation was refused |
//! | 4 | unavailable: the engine, database or host could not be reached |
//!
//! clap itself exits with 2 on usage errors, which matches the table.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    BadInput = 2,
    Conflict = 3,
    Unavailable = 4,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// An error the operator sees: what failed, why, and what to do next.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub exit: Exit,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            exit,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Exit::BadInput, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
