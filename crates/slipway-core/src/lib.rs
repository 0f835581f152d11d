//! Slipway's shared model: everything both the CLI (`slipway`) and the host
//! agent (`slipway-agent`) need to agree on.
//!
//! - [`config`]: `deployment.yml` + `.env.<env>` loading, precedence and validation.
//! - [`secret`]: the [`secret::Secret`] type that never prints.
//! - [`migrate`]: the golang-migrate-compatible migration runner.
//! - [`snapshot`]: database snapshots (naming, retention, pg_dump/pg_restore).
//! - [`admin`]: request/response types of the agent's admin API.
//! - [`ledger`]: lock and deployment-history types kept by the agent.
//! - [`analysis`]: the post-deploy analysis' request, report and verdicts.
//! - [`notify`]: the event model and notification channels.
//! - [`maintenance`]: maintenance mode's state and its admin request.
//! - [`ci`]: the CI gate's decisions (check runs → verdict, forge rate limits).

pub mod admin;
pub mod analysis;
pub mod ci;
pub mod config;
pub mod ledger;
pub mod maintenance;
pub mod migrate;
pub mod notify;
pub mod rate;
pub mod secret;
pub mod snapshot;
