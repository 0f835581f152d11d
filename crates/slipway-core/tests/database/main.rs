//! Integration tests of the migration runner and snapshots against the real
//! PostgreSQL 17 image (PostGIS, pgvector, pg_trgm) on the real Docker
//! Engine, through slipway-testkit. No mocks.
//!
//! Run: `cargo test -p slipway-core --test database` (builds the image on
//! first use through scripts/images/build.sh).

mod formats;
mod migrate;
mod snapshot;
mod support;
