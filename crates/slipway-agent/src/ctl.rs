//! `slipway-agent ctl`: the admin API's client. The CLI runs it through
//! `docker exec <agent> slipway-agent ctl <verb> ...`; it sends one request
//! on the admin socket and prints the JSON response on stdout (one line).
//!
//! Exit codes: 0 ok; 1 internal error in the agent; 2 bad request or usage;
//! 3 app not found; 4 health check failed (route unchanged); 5 lock held by
//! someone else or not held by the caller; 6 ledger written by a newer
//! agent; 7 agent unreachable (no socket, connection refused, no answer); 8 an
//! agent upgrade holds state changes for a moment (retry); 9 a certificate
//! could not be obtained or a custom one is unusable (the message has the
//! CA's reason and the fix).
//!
//! Private keys never travel as arguments (other users see those in `ps`):
//! `cert ensure --custom` reads files, `raw -` reads the request from stdin.

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use slipway_core::admin::{self, AdminRequest, AdminResponse};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::config::DEFAULT_SOCKET;

/// Exit code when the agent cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 7;

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Admin unix socket of the agent.
    #[arg(long, env = "SLIPWAY_AGENT_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Health-check a target, then switch the app's traffic to it.
    Deploy(DeployCmd),
    /// Switch back to the previous target if it passes its health check.
    Rollback {
        app: String,
        #[arg(long, default_value_t = admin::DEFAULT_DRAIN_TIMEOUT_MS)]
        drain_timeout_ms: u64,
    },
    /// Hold the app's new requests (bounded) until `resume`.
    Pause {
        app: String,
        #[arg(long, default_value_t = admin::DEFAULT_PAUSE_MAX_WAIT_MS)]
        max_wait_ms: u64,
        #[arg(long, default_value_t = admin::DEFAULT_PAUSE_MAX_QUEUE)]
        max_queue: u32,
    },
    /// Release the held requests.
    Resume { app: String },
    /// Every app's route.
    Routes,
    /// The deploy lock.
    #[command(subcommand)]
    Lock(LockCmd),
    /// Deployment history.
    #[command(subcommand)]
    History(HistoryCmd),
    /// The app's ledger (current/previous deployment, history, lock, route).
    State { app: String },
    /// Agent version, uptime, ledger format.
    Version,
    /// Certificates of the host's entry point (an agent with --tls-listen).
    #[command(subcommand)]
    Cert(CertCmd),
    /// Maintenance mode: the agent answers the app's requests itself.
    #[command(subcommand)]
    Maintenance(MaintenanceCmd),
    /// Send a raw JSON request line (for programs); `-` reads it from stdin
    /// (use that for anything holding a private key).
    Raw { json: String },
    /// Health-check a target as a switch would, from the agent's network,
    /// changing nothing (no admin socket needed): prints one JSON line,
    /// exit 0 when it passed, 4 when not. A deploy waits on it before
    /// running `hooks.pre_switch` in a new slot.
    Probe(ProbeCmd),
}

/// The health check's flags, as `deploy` and `probe` take them.
#[derive(Debug, Args)]
pub struct HealthFlags {
    #[arg(long, default_value = admin::DEFAULT_HEALTH_PATH)]
    pub health_path: String,
    #[arg(long, default_value_t = admin::DEFAULT_HEALTH_PASSES)]
    pub health_passes: u32,
    #[arg(long, default_value_t = admin::DEFAULT_HEALTH_INTERVAL_MS)]
    pub health_interval_ms: u64,
    #[arg(long, default_value_t = admin::DEFAULT_HEALTH_TIMEOUT_MS)]
    pub health_timeout_ms: u64,
    #[arg(long, default_value_t = admin::DEFAULT_HEALTH_DEADLINE_MS)]
    pub health_deadline_ms: u64,
}

impl HealthFlags {
    fn check(self) -> admin::HealthCheck {
        admin::HealthCheck {
            path: self.health_path,
            passes: self.health_passes,
            interval_ms: self.health_interval_ms,
            timeout_ms: self.health_timeout_ms,
            deadline_ms: self.health_deadline_ms,
        }
    }
}

#[derive(Debug, Args)]
pub struct ProbeCmd {
    /// `host:port` to check.
    pub target: String,
    #[command(flatten)]
    pub health: HealthFlags,
}

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Obtain (ACME, the default) or install (--cert-file/--key-file) the
    /// certificate of one host; answers once it is served.
    Ensure {
        host: String,
        /// PEM chain (leaf first) of a custom certificate.
        #[arg(long, requires = "key_file")]
        cert_file: Option<PathBuf>,
        /// PEM private key of the custom certificate.
        #[arg(long, requires = "cert_file")]
        key_file: Option<PathBuf>,
        /// Proxy plain HTTP for this host instead of redirecting it to HTTPS.
        #[arg(long)]
        no_redirect_http: bool,
        /// Send `Strict-Transport-Security: max-age=N` on its HTTPS responses.
        #[arg(long)]
        hsts_max_age_secs: Option<u64>,
    },
    /// Stop serving a host's certificate (its files are kept).
    Forget { host: String },
    /// Every host's certificate: issuer, expiry, next renewal, last error.
    List,
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceCmd {
    /// Answer every request with 503, Retry-After and the maintenance page
    /// (or, with --hold, hold requests up to --hold-max-wait-ms first).
    On {
        app: String,
        #[arg(long)]
        hold: bool,
        #[arg(long, default_value_t = slipway_core::maintenance::DEFAULT_RETRY_AFTER_SECS)]
        retry_after_secs: u64,
        #[arg(long)]
        message: Option<String>,
        #[arg(long, default_value = "")]
        by: String,
        #[arg(long)]
        deployment_id: Option<String>,
        #[arg(long, default_value_t = slipway_core::maintenance::DEFAULT_HOLD_MAX_WAIT_MS)]
        hold_max_wait_ms: u64,
    },
    /// Lift it: requests reach the app again.
    Off {
        app: String,
        #[arg(long, default_value = "")]
        by: String,
    },
}

#[derive(Debug, Args)]
pub struct DeployCmd {
    pub app: String,
    /// `host:port` of the new upstream.
    #[arg(long)]
    pub target: String,
    /// Release id (shown in the release header and metrics).
    #[arg(long)]
    pub release: String,
    /// Slot name (blue/green), for logs and metrics.
    #[arg(long)]
    pub slot: Option<String>,
    /// Host name routed to this app (repeatable).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    #[command(flatten)]
    pub health: HealthFlags,
    #[arg(long, default_value_t = admin::DEFAULT_DRAIN_TIMEOUT_MS)]
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum LockCmd {
    Acquire {
        app: String,
        #[arg(long)]
        locked_by: String,
        #[arg(long)]
        hostname: String,
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        deployment_id: String,
    },
    Renew {
        app: String,
        #[arg(long)]
        lock_id: String,
    },
    Release {
        app: String,
        /// Omit with --force to release whatever lock is held.
        #[arg(long, default_value = "")]
        lock_id: String,
        #[arg(long)]
        force: bool,
    },
    Status {
        app: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum HistoryCmd {
    /// Record a deployment given as JSON (`-` reads stdin).
    Record { app: String, deployment: String },
    List {
        app: String,
        #[arg(long)]
        limit: Option<usize>,
    },
}

impl Verb {
    fn into_request(self) -> Result<AdminRequest, String> {
        use admin::*;
        Ok(match self {
            Verb::Deploy(d) => AdminRequest::Deploy(DeployArgs {
                app: d.app,
                target: d.target,
                release: d.release,
                slot: d.slot,
                hosts: d.hosts,
                health: d.health.check(),
                drain_timeout_ms: d.drain_timeout_ms,
                analysis: None,
            }),
            Verb::Rollback {
                app,
                drain_timeout_ms,
            } => AdminRequest::Rollback(RollbackArgs {
                app,
                drain_timeout_ms,
            }),
            Verb::Pause {
                app,
                max_wait_ms,
                max_queue,
            } => AdminRequest::Pause(PauseArgs {
                app,
                max_wait_ms,
                max_queue,
            }),
            Verb::Resume { app } => AdminRequest::Resume(AppArgs { app }),
            Verb::Routes => AdminRequest::Routes,
            Verb::Lock(LockCmd::Acquire {
                app,
                locked_by,
                hostname,
                pid,
                deployment_id,
            }) => AdminRequest::LockAcquire(LockAcquireArgs {
                app,
                locked_by,
                hostname,
                pid,
                deployment_id,
            }),
            Verb::Lock(LockCmd::Renew { app, lock_id }) => AdminRequest::LockRenew(LockRefArgs {
                app,
                lock_id,
                force: false,
            }),
            Verb::Lock(LockCmd::Release {
                app,
                lock_id,
                force,
            }) => AdminRequest::LockRelease(LockRefArgs {
                app,
                lock_id,
                force,
            }),
            Verb::Lock(LockCmd::Status { app }) => AdminRequest::LockStatus(AppArgs { app }),
            Verb::History(HistoryCmd::Record { app, deployment }) => {
                let text = if deployment == "-" {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| format!("cannot read stdin: {e}"))?;
                    s
                } else {
                    deployment
                };
                let deployment = serde_json::from_str(&text).map_err(|e| {
                    format!("deployment is not valid JSON of a deployment record: {e}")
                })?;
                AdminRequest::HistoryRecord(HistoryRecordArgs { app, deployment })
            }
            Verb::History(HistoryCmd::List { app, limit }) => {
                AdminRequest::HistoryList(HistoryListArgs { app, limit })
            }
            Verb::State { app } => AdminRequest::State(AppArgs { app }),
            Verb::Version => AdminRequest::Version,
            Verb::Cert(CertCmd::Ensure {
                host,
                cert_file,
                key_file,
                no_redirect_http,
                hsts_max_age_secs,
            }) => {
                let source = match (cert_file, key_file) {
                    (Some(cert), Some(key)) => CertSource::Custom {
                        cert_pem: read_text(&cert)?,
                        key_pem: read_text(&key)?,
                    },
                    _ => CertSource::Acme,
                };
                AdminRequest::CertEnsure(CertEnsureArgs {
                    host,
                    source,
                    redirect_http: !no_redirect_http,
                    hsts_max_age_secs,
                })
            }
            Verb::Cert(CertCmd::Forget { host }) => AdminRequest::CertForget(HostArgs { host }),
            Verb::Cert(CertCmd::List) => AdminRequest::Certs,
            Verb::Maintenance(MaintenanceCmd::On {
                app,
                hold,
                retry_after_secs,
                message,
                by,
                deployment_id,
                hold_max_wait_ms,
            }) => AdminRequest::MaintenanceOn(slipway_core::maintenance::MaintenanceOnArgs {
                app,
                mode: if hold {
                    slipway_core::maintenance::MaintenanceMode::Hold
                } else {
                    slipway_core::maintenance::MaintenanceMode::Page
                },
                retry_after_secs,
                message,
                by,
                deployment_id,
                hold_max_wait_ms,
            }),
            Verb::Maintenance(MaintenanceCmd::Off { app, by }) => {
                AdminRequest::MaintenanceOff(MaintenanceOffArgs { app, by })
            }
            Verb::Raw { json } => {
                let text = if json == "-" {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| format!("cannot read stdin: {e}"))?;
                    s
                } else {
                    json
                };
                // serde's message may quote a value of the request: keep it
                // out, the request may hold a private key.
                serde_json::from_str(text.trim()).map_err(|e| {
                    format!(
                        "not a valid admin request (line {}, column {}: {:?}); see the agent's \
                         README for the verbs and their fields",
                        e.line(),
                        e.column(),
                        e.classify()
                    )
                })?
            }
            Verb::Probe(_) => return Err("`probe` is not an admin request".into()),
        })
    }
}

/// Run one ctl command; returns the process exit code.
pub fn run(args: CtlArgs) -> u8 {
    if let Verb::Probe(p) = args.verb {
        return probe(p);
    }
    let request = match args.verb.into_request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Some(runtime) = crate::small_runtime() else {
        return 1;
    };
    match runtime.block_on(send(&args.socket, &request)) {
        Ok((line, response)) => {
            println!("{line}");
            match response {
                AdminResponse::Ok { .. } => 0,
                AdminResponse::Error { error } => {
                    eprintln!("error: {}", error.message);
                    u8::try_from(error.kind.exit_code()).unwrap_or(1)
                }
            }
        }
        Err(e) => {
            eprintln!(
                "error: cannot reach the agent on `{}`: {e}. Is the agent running (and is this the \
                 agent's container)?",
                args.socket.display()
            );
            EXIT_UNREACHABLE
        }
    }
}

/// `ctl probe`: the switch's health check, alone.
fn probe(p: ProbeCmd) -> u8 {
    let Some(runtime) = crate::small_runtime() else {
        return 1;
    };
    let check = p.health.check();
    let client = crate::health::HealthClient::default();
    let outcome = runtime.block_on(crate::health::check(&client, &p.target, &check));
    let (line, code) = match outcome {
        Ok(attempts) => (serde_json::json!({ "ok": true, "attempts": attempts }), 0),
        Err(failure) => (serde_json::json!({ "ok": false, "failure": failure }), 4),
    };
    println!("{line}");
    code
}

/// Send one request, read one response line.
pub async fn send(
    socket: &std::path::Path,
    request: &AdminRequest,
) -> std::io::Result<(String, AdminResponse)> {
    let stream = tokio::net::UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the agent closed the connection without answering",
        ));
    }
    let response = serde_json::from_str(&answer)?;
    Ok((answer.trim_end().to_owned(), response))
}

/// A PEM file given to `cert ensure`, with a message naming it if unreadable.
fn read_text(path: &std::path::Path) -> Result<String, String> {
    fs_err::read_to_string(path).map_err(|e| format!("{e}; give a readable PEM file"))
}
