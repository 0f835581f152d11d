//! Integration tests of events-server against real PostgreSQL 17 (PostGIS,
//! pgvector, pg_trgm) in throwaway containers from `slipway-testkit`, with the
//! migrations applied by Slipway's own runner. The service runs in-process
//! (`support::TestServer`) or as the built binary (`binary`).
//!
//! Needs a Docker Engine; the images are built locally on first use.

mod binary;
mod events;
mod health;
mod metrics;
mod schema;
mod search;
mod shutdown;
mod support;
