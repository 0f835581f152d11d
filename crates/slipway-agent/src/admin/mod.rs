//! The admin API: a unix socket inside the container (never a network
//! port), newline-delimited JSON in the types of `slipway_core::admin`.
//!
//! - [`socket`]: listening, framing, permissions.
//! - [`handlers`]: one line per verb, straight to the router or the ledger.

pub mod handlers;
pub mod socket;
