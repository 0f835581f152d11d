//! HTTPS for the host's shared entry point: certificates per host name,
//! obtained from an ACME directory or given by the operator, served by SNI
//! and renewed without a gap.
//!
//! - [`map`]: the copy-on-write certificate map handshakes read (exact name,
//!   then `*.parent`), and the ACME challenge answers in flight.
//! - [`handshake`]: the rustls server configuration and handshake counts.
//! - [`certificate`]: PEM → served key, facts, custom-certificate checks.
//! - [`acme`]: issuance (HTTP-01, then TLS-ALPN-01).
//! - [`renew`]: when to renew, how to back off (pure).
//! - [`store`]: files on the state volume (0600, atomic, per directory URL).
//! - [`manager`]: the admin verbs, loading at start, renewal tasks.

pub mod acme;
pub mod certificate;
pub mod handshake;
pub mod manager;
pub mod map;
pub mod renew;
pub mod store;

pub use manager::Tls;
