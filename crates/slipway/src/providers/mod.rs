//! Providers turn a plan into infrastructure. Only `docker` (one host, local
//! or over SSH) exists today; nothing outside this folder knows which
//! provider is in use beyond calling [`docker::Engine`].

pub mod docker;
