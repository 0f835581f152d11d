//! `slipway-agent serve` settings: flags, each with an environment variable
//! and a named default. Routes are not configured here: they come from the
//! ledger in the state dir (restored on start) and the admin API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:80";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9100";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/slipway-agent";
pub const DEFAULT_SOCKET: &str = "/run/slipway-agent/admin.sock";
pub const DEFAULT_RELEASE_HEADER: &str = "x-slipway-release";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLogMode {
    /// JSON lines on stdout.
    Stdout,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Public listener (SO_REUSEPORT).
    #[arg(long, env = "SLIPWAY_AGENT_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Internal listener for /metrics and /health.
    #[arg(long, env = "SLIPWAY_AGENT_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
    /// Directory of the ledger (mount a volume here).
    #[arg(long, env = "SLIPWAY_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Admin unix socket.
    #[arg(long, env = "SLIPWAY_AGENT_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Response header naming the release that served the request.
    #[arg(long, env = "SLIPWAY_AGENT_RELEASE_HEADER", default_value = DEFAULT_RELEASE_HEADER)]
    pub release_header: String,
    /// Largest request body relayed, in bytes (413 beyond).
    #[arg(long, env = "SLIPWAY_AGENT_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Time an upstream may take to answer with headers (504 beyond).
    #[arg(
        long,
        env = "SLIPWAY_AGENT_UPSTREAM_TIMEOUT_MS",
        default_value_t = 60_000
    )]
    pub upstream_timeout_ms: u64,
    /// Idle keep-alive bound of client connections (also bounds slow heads).
    #[arg(long, env = "SLIPWAY_AGENT_IDLE_TIMEOUT_MS", default_value_t = 75_000)]
    pub idle_timeout_ms: u64,
    /// On SIGTERM: time open connections get to finish.
    #[arg(
        long,
        env = "SLIPWAY_AGENT_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub shutdown_timeout_ms: u64,
    /// Deploy lock expiry after its last acquire/renew.
    #[arg(long, env = "SLIPWAY_AGENT_LOCK_EXPIRY_MS",
          default_value_t = slipway_core::admin::DEFAULT_LOCK_EXPIRY_SECS * 1000)]
    pub lock_expiry_ms: u64,
    /// Idle upstream connections kept per target.
    #[arg(long, env = "SLIPWAY_AGENT_POOL_IDLE_PER_HOST", default_value_t = 256)]
    pub pool_idle_per_host: usize,
    /// `X-Forwarded-Proto` sent upstream (`https` behind a TLS terminator;
    /// `keep`: the value the host's entry point sent, `http` or `https`).
    #[arg(long, env = "SLIPWAY_AGENT_FORWARDED_PROTO", default_value = "http")]
    pub forwarded_proto: String,
    #[arg(long, env = "SLIPWAY_AGENT_ACCESS_LOG", value_enum, default_value_t = AccessLogMode::Stdout)]
    pub access_log: AccessLogMode,
    /// Format of the agent's own log lines (stderr).
    #[arg(long, env = "SLIPWAY_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Proxy threads, each with its own listener and upstream pool
    /// (default: one per core; when taking over, one per handed-over listener).
    #[arg(long, env = "SLIPWAY_AGENT_WORKERS")]
    pub workers: Option<usize>,
    /// Replace the agent serving from the same state dir without a traffic
    /// gap: take its listening sockets, routes and ledger over
    /// `<state-dir>/handover.sock`, serve beside it, and own everything once
    /// it is stopped. Needs the same network namespace (on Docker:
    /// `--network container:<the container that publishes the port>`).
    #[arg(long, env = "SLIPWAY_AGENT_TAKE_OVER")]
    pub take_over: bool,
    /// HTTPS listener (SO_REUSEPORT, one per proxy thread). With it this
    /// agent is the host's entry point: `--listen` answers ACME challenges
    /// and redirects hosts with a certificate to HTTPS (per-host opt-out),
    /// and certificates are managed with the `cert_*` admin verbs.
    #[arg(long, env = "SLIPWAY_AGENT_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Port the HTTP → HTTPS redirects name (default: the --tls-listen
    /// port; set it when the HTTPS port is published under another number).
    #[arg(long, env = "SLIPWAY_AGENT_REDIRECT_HTTPS_PORT")]
    pub redirect_https_port: Option<u16>,
    /// ACME (RFC 8555) directory URL certificates are obtained from, e.g.
    /// https://acme-v02.api.letsencrypt.org/directory. Without it only
    /// custom certificates can be served.
    #[arg(long, env = "SLIPWAY_AGENT_ACME_DIRECTORY")]
    pub acme_directory: Option<String>,
    /// Contact address registered with the ACME account (expiry notices).
    #[arg(long, env = "SLIPWAY_AGENT_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// PEM file of a CA to trust for the ACME directory's own HTTPS (test
    /// CAs such as pebble); the system roots otherwise.
    #[arg(long, env = "SLIPWAY_AGENT_ACME_CA_ROOT")]
    pub acme_ca_root: Option<PathBuf>,
    /// The same root as PEM text (the CLI passes the operator's file this
    /// way, so an upgrade's successor gets it too); written to the state
    /// directory and used as --acme-ca-root.
    #[arg(
        long,
        env = "SLIPWAY_AGENT_ACME_CA_ROOT_PEM",
        conflicts_with = "acme_ca_root"
    )]
    pub acme_ca_root_pem: Option<String>,
    /// With --take-over: if the predecessor still serves after this long,
    /// give up (it serves alone again) and exit 1.
    #[arg(
        long,
        env = "SLIPWAY_AGENT_TAKE_OVER_TIMEOUT_MS",
        default_value_t = 120_000
    )]
    pub take_over_timeout_ms: u64,
    /// The first notification retry's ceiling (doubling up to 5 min, with
    /// full jitter). Hidden: for tests that need retries in milliseconds.
    #[arg(
        long,
        env = "SLIPWAY_AGENT_NOTIFY_RETRY_BASE_MS",
        default_value_t = 1000,
        hide = true
    )]
    pub notify_retry_base_ms: u64,
}
