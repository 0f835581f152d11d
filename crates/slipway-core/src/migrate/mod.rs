//! The golang-migrate-compatible migration runner.
//!
//! ```no_run
//! # async fn demo() -> Result<(), slipway_core::migrate::MigrateError> {
//! use std::path::Path;
//! use slipway_core::migrate::{MigrationSet, Runner, RunnerOptions};
//! use slipway_core::secret::Secret;
//!
//! let set = MigrationSet::load(Path::new("migrations"))?;
//! let url = Secret::new("postgres://app:pw@127.0.0.1:5432/events");
//! let mut runner = Runner::connect(&url, RunnerOptions::default()).await?;
//! let report = runner.up(&set, None).await?;
//! # let _ = report; Ok(()) }
//! ```
//!
//! - [`source`]: the files (`NNNN_name.up.sql` / `.down.sql`) and their checks.
//! - [`runner`]: `status`, `up`, `down`, `force`.
//! - [`advisory_lock`]: one runner at a time, golang-migrate's lock key.
//! - [`schema_migrations`]: golang-migrate's table and Slipway's beside it.
//! - [`report`]: the serialisable results; [`error`]: what can go wrong.
//!
//! Progress is reported through `tracing` events (target
//! `slipway_core::migrate`); the library never prints.

pub mod advisory_lock;
pub mod connection;
pub mod error;
pub mod report;
pub mod runner;
pub mod schema_migrations;
pub mod source;
pub mod sql_text;

pub use error::{MigrateError, SqlFailure};
pub use report::{
    AppliedMigration, DownReport, ForceReport, MigrationStep, ModifiedMigration, PendingMigration,
    Status, UpReport,
};
pub use runner::{DEFAULT_LOCK_WAIT, Runner, RunnerOptions};
pub use schema_migrations::DbVersion;
pub use source::{
    Direction, Migration, MigrationFile, MigrationSet, NO_TRANSACTION_MARKER, TransactionMode,
};
