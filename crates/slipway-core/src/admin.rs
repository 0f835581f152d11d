//! The agent's admin API: the request and response types that travel over the
//! agent's unix socket, shared by the agent (which answers) and the CLI (which
//! asks through `docker exec <agent> slipway-agent ctl ...`).
//!
//! The wire format is newline-delimited JSON: one [`AdminRequest`] per line,
//! answered by one [`AdminResponse`] line. Requests are tagged by `verb`
//! (`{"verb":"deploy","app":"web",...}`), so the CLI can also build them
//! without `ctl`. The named defaults below double as `ctl`'s flag defaults, so
//! the CLI and the agent cannot disagree about what "default" means.

use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisReport, AnalysisSpec};
use crate::ledger::{AppLedger, Deployment, Lock};
use crate::maintenance::{Maintenance, MaintenanceOnArgs};
use crate::notify::{Channels, DeliveryResult, Event, NotifyStatus};

/// Health-check path used when a deploy does not name one.
pub const DEFAULT_HEALTH_PATH: &str = "/health";
/// Consecutive passing checks required before a switch.
pub const DEFAULT_HEALTH_PASSES: u32 = 2;
/// Milliseconds between two health-check attempts.
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 500;
/// Milliseconds one health-check attempt may take.
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 2_000;
/// Milliseconds after which a target that never reached its passes is refused.
pub const DEFAULT_HEALTH_DEADLINE_MS: u64 = 30_000;
/// Milliseconds in-flight requests to an old target may take to finish.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;
/// Milliseconds a paused app holds a new request before answering 503.
pub const DEFAULT_PAUSE_MAX_WAIT_MS: u64 = 30_000;
/// Requests a paused app holds at once; the next ones get 503 at once.
pub const DEFAULT_PAUSE_MAX_QUEUE: u32 = 1_000;
/// A deploy lock expires this many seconds after its last acquire/renew.
pub const DEFAULT_LOCK_EXPIRY_SECS: u64 = 30 * 60;

/// How the agent decides a target is fit for traffic. Serialised inside the
/// ledger too, so `rollback` checks the previous target the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// Path requested with `GET`; any 2xx passes.
    pub path: String,
    /// Passing answers in a row needed before the switch.
    pub passes: u32,
    /// Pause between attempts, in milliseconds.
    pub interval_ms: u64,
    /// Per-attempt timeout, in milliseconds.
    pub timeout_ms: u64,
    /// Give up after this long, in milliseconds, leaving the route unchanged.
    pub deadline_ms: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: DEFAULT_HEALTH_PATH.to_owned(),
            passes: DEFAULT_HEALTH_PASSES,
            interval_ms: DEFAULT_HEALTH_INTERVAL_MS,
            timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
            deadline_ms: DEFAULT_HEALTH_DEADLINE_MS,
        }
    }
}

/// `deploy`: health-check `target`, then send the app's new requests to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployArgs {
    /// Route name; one per app and environment (e.g. `togather-production`).
    pub app: String,
    /// `host:port` of the new upstream, as the agent's network sees it.
    pub target: String,
    /// Release id reported in the release response header and the metrics.
    pub release: String,
    /// Slot name (`blue`/`green`) for logs and metrics; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// Host names routed to this app. Empty keeps the previous list; an app
    /// with no host names is the default route while it is the only app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub health: HealthCheck,
    /// Drain bound for the target being replaced, in milliseconds.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Analyse the new target after the switch (see [`crate::analysis`]).
    /// Started by the switch itself, so it runs even if the caller is gone
    /// the moment after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

fn default_drain_timeout_ms() -> u64 {
    DEFAULT_DRAIN_TIMEOUT_MS
}

/// `rollback`: back to the previous target if it passes its health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackArgs {
    pub app: String,
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
}

/// `pause`: hold the app's new requests until `resume` or the bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseArgs {
    pub app: String,
    #[serde(default = "default_pause_wait")]
    pub max_wait_ms: u64,
    #[serde(default = "default_pause_queue")]
    pub max_queue: u32,
}

fn default_pause_wait() -> u64 {
    DEFAULT_PAUSE_MAX_WAIT_MS
}

fn default_pause_queue() -> u32 {
    DEFAULT_PAUSE_MAX_QUEUE
}

/// Verbs that only name an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppArgs {
    pub app: String,
}

/// `lock_acquire`: who wants the app's deploy lock, and for which deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAcquireArgs {
    pub app: String,
    pub locked_by: String,
    pub hostname: String,
    pub pid: u32,
    pub deployment_id: String,
}

/// `lock_renew` / `lock_release`: act on the lock the caller holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRefArgs {
    pub app: String,
    pub lock_id: String,
    /// `lock_release` only: release a lock someone else holds (operator
    /// override, `slipway lock release --force`).
    #[serde(default)]
    pub force: bool,
}

/// `history_record`: append a deployment; `status: "active"` also makes it
/// the current deployment and moves the former one to previous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecordArgs {
    pub app: String,
    pub deployment: Deployment,
}

/// `history_list`: the newest `limit` deployments, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryListArgs {
    pub app: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Where a hostname's certificate comes from.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CertSource {
    /// Obtained and renewed from the agent's ACME directory (`--acme-*`).
    Acme,
    /// The operator's own certificate chain and key, PEM (wildcards allowed).
    /// Sent on the admin socket's stdin, never as an argument.
    Custom { cert_pem: String, key_pem: String },
}

// The key is a secret: never printed, whatever prints the request.
impl std::fmt::Debug for CertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Acme => f.write_str("Acme"),
            Self::Custom { cert_pem, .. } => f
                .debug_struct("Custom")
                .field("cert_pem_bytes", &cert_pem.len())
                .field("key_pem", &"[redacted]")
                .finish(),
        }
    }
}

/// `cert_ensure`: make sure the agent serves a valid certificate for `host`
/// over TLS. For ACME it answers once the certificate is issued (or a
/// stored one is still valid), or fails with the CA's own reason; for a
/// custom certificate once it is checked (chain parses, key matches, `host`
/// covered, not expired) and installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertEnsureArgs {
    pub host: String,
    pub source: CertSource,
    /// How the entry point's plain-HTTP listener (port 80) answers this
    /// host: `true` (the default) redirects with 301 to HTTPS (ACME
    /// challenges are always answered first); `false` proxies plain HTTP to
    /// the route as well (the per-environment opt-out).
    #[serde(default = "default_redirect_http")]
    pub redirect_http: bool,
    /// HSTS, opt-in: `Strict-Transport-Security: max-age=N` on this host's
    /// HTTPS responses. `None` (the default) sends no HSTS header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts_max_age_secs: Option<u64>,
}

fn default_redirect_http() -> bool {
    true
}

/// Verbs that only name a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostArgs {
    pub host: String,
}

/// One hostname's certificate as the agent serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    pub host: String,
    /// `acme` or `custom`.
    pub source: String,
    /// The ACME directory URL (acme only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Issuer's distinguished name, of the certificate served now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Hex serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// When the agent will next try to renew (acme only), unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_renewal: Option<i64>,
    /// The last failure to obtain or renew, with the CA's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Unix seconds of `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<i64>,
    /// Whether the certificate served now has expired.
    #[serde(default)]
    pub expired: bool,
    /// Port-80 policy for this host (see [`CertEnsureArgs::redirect_http`]).
    #[serde(default = "default_redirect_http")]
    pub redirect_http: bool,
    /// HSTS max-age sent on this host's HTTPS responses, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts_max_age_secs: Option<u64>,
}

/// `notify_configure`: where the app's events go from now on. Carries
/// credentials: sent on stdin, never as an argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyConfigureArgs {
    pub app: String,
    pub channels: Channels,
}

/// `notify`: queue an event for the app's channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyArgs {
    pub app: String,
    pub event: Event,
}

/// `analysis_cancel`: end the app's running analysis as `cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisCancelArgs {
    pub app: String,
    /// Why, for the report (e.g. "deployment dep_… replaces the slot it
    /// would switch back to").
    pub reason: String,
}

/// `maintenance_off`: answer the app's requests from its release again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceOffArgs {
    pub app: String,
    /// Who lifts it, for the agent's log.
    #[serde(default)]
    pub by: String,
}

/// One request line on the admin socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum AdminRequest {
    Deploy(DeployArgs),
    Rollback(RollbackArgs),
    Pause(PauseArgs),
    Resume(AppArgs),
    /// Every app's route: active and draining targets, pause state.
    Routes,
    LockAcquire(LockAcquireArgs),
    LockRenew(LockRefArgs),
    LockRelease(LockRefArgs),
    LockStatus(AppArgs),
    HistoryRecord(HistoryRecordArgs),
    HistoryList(HistoryListArgs),
    /// The app's ledger in the deployment-state shape.
    State(AppArgs),
    /// The agent's version, uptime and ledger format.
    Version,
    /// Obtain (ACME) or install (custom) a host's certificate; see
    /// [`CertEnsureArgs`].
    CertEnsure(CertEnsureArgs),
    /// Stop serving a host's certificate (its files are kept for reuse).
    CertForget(HostArgs),
    /// Every host's certificate.
    Certs,
    /// The app's post-deploy analysis: the running one, else the last.
    AnalysisStatus(AppArgs),
    /// End the app's running analysis (the slot it would switch back to is
    /// about to be replaced); answers the report as it ended.
    AnalysisCancel(AnalysisCancelArgs),
    /// Set the app's notification channels.
    NotifyConfigure(NotifyConfigureArgs),
    /// Queue an event for delivery (the JSON line is logged at once).
    Notify(NotifyArgs),
    /// Send a test event to every channel now; one result per channel.
    NotifyTest(AppArgs),
    /// Channels, queue and recent deliveries.
    NotifyStatus(AppArgs),
    /// Answer every public request for the app with the maintenance page
    /// (or hold it briefly first); kept in the ledger until lifted.
    MaintenanceOn(MaintenanceOnArgs),
    /// Lift maintenance mode: requests reach the app again.
    MaintenanceOff(MaintenanceOffArgs),
    /// Remove the app's route and its ledger entry (the environment is
    /// destroyed); answers the routes left.
    RouteForget(AppArgs),
}

impl AdminRequest {
    /// Whether the verb changes the routes or the ledger. These are refused
    /// (`handing_over`) while an agent upgrade hands them over; the others
    /// are always answered.
    pub fn changes_state(&self) -> bool {
        match self {
            Self::Deploy(_)
            | Self::Rollback(_)
            | Self::Pause(_)
            | Self::Resume(_)
            | Self::LockAcquire(_)
            | Self::LockRenew(_)
            | Self::LockRelease(_)
            | Self::HistoryRecord(_)
            | Self::CertEnsure(_)
            | Self::CertForget(_)
            | Self::NotifyConfigure(_)
            | Self::Notify(_)
            | Self::AnalysisCancel(_)
            | Self::MaintenanceOn(_)
            | Self::MaintenanceOff(_)
            | Self::RouteForget(_) => true,
            Self::Certs
            | Self::Routes
            | Self::LockStatus(_)
            | Self::HistoryList(_)
            | Self::State(_)
            | Self::Version
            | Self::AnalysisStatus(_)
            | Self::NotifyTest(_)
            | Self::NotifyStatus(_) => false,
        }
    }
}

/// One response line on the admin socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AdminResponse {
    Ok { result: AdminResult },
    Error { error: AdminError },
}

/// What a successful verb answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdminResult {
    /// `deploy` and `rollback`.
    Switched(SwitchReport),
    /// `pause` and `resume`.
    Paused {
        app: String,
        paused: bool,
    },
    Routes {
        routes: Vec<RouteStatus>,
    },
    Lock(Box<LockReport>),
    History {
        deployments: Vec<Deployment>,
    },
    Recorded {
        deployment_id: String,
    },
    State {
        state: Box<AppLedger>,
    },
    Version(VersionInfo),
    /// `cert_ensure` (one entry), `cert_forget` and `certs`.
    Certs {
        certs: Vec<CertInfo>,
    },
    /// `analysis_status`: none when the app was never analysed.
    Analysis {
        report: Option<Box<AnalysisReport>>,
    },
    /// `notify_configure`.
    NotifyConfigured {
        app: String,
        channels: Vec<String>,
    },
    /// `notify`: queued for these channels (none configured: logged only).
    Queued {
        event_id: String,
        channels: Vec<String>,
    },
    /// `notify_test`.
    NotifyResults {
        results: Vec<DeliveryResult>,
    },
    NotifyStatus(Box<NotifyStatus>),
    /// `maintenance_on` / `maintenance_off`: the state now, and the one it
    /// replaced or lifted (none when it was off).
    Maintenance {
        app: String,
        maintenance: Option<Box<Maintenance>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Box<Maintenance>>,
    },
}

/// What happened in a switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchReport {
    pub app: String,
    pub target: String,
    pub release: String,
    /// The target that now drains, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,
    /// Health-check attempts made before the switch.
    pub health_attempts: u32,
    /// Unix time in nanoseconds at which new requests started going to
    /// `target` (and the old target's drain began).
    pub switched_at_unix_nanos: u64,
    /// Time from the request to the swap, health checks included.
    pub duration_ms: u64,
}

/// One app's route as the agent serves it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub app: String,
    pub hosts: Vec<String>,
    pub active: Option<TargetStatus>,
    pub previous: Option<TargetStatus>,
    pub draining: Vec<TargetStatus>,
    pub paused: bool,
    /// Requests held by the pause right now.
    #[serde(default)]
    pub held: u32,
    pub is_default: bool,
    /// Maintenance mode, while it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// One upstream and its live request count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub target: String,
    pub release: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    pub in_flight: u64,
}

/// Result of a lock verb: the lock now held (if any) and, after a takeover,
/// the stale lock that was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockReport {
    pub app: String,
    pub lock: Option<Lock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over: Option<Lock>,
    /// Human-readable warning (stale lock taken over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub agent_version: String,
    /// Which build of that version (`SLIPWAY_AGENT_BUILD` at compile time,
    /// else `dev`), so two builds of one version can be told apart.
    #[serde(default)]
    pub build: String,
    pub ledger_format_version: u32,
    pub uptime_secs: u64,
    pub pid: u32,
    /// Where the agent stands in an upgrade (absent from agents that
    /// predate upgrades: read as `serving`).
    #[serde(default)]
    pub role: AgentRole,
    /// The other agent of an upgrade in progress (its pid), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_pid: Option<u32>,
}

/// An agent's part in an upgrade. Both agents of an upgrade accept traffic
/// on the same listening sockets; neither changes the ledger until one of
/// them is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    /// The only agent: owns the ledger and the routes.
    #[default]
    Serving,
    /// Gave its listeners to a successor; serves beside it, ledger frozen,
    /// until it is stopped (upgrade done) or the successor goes (upgrade
    /// abandoned, it owns everything again).
    HandingOver,
    /// Took the listeners and the ledger from its predecessor; serves beside
    /// it, ledger frozen, until the predecessor is gone.
    TakingOver,
}

impl std::fmt::Display for AgentRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Serving => "serving",
            Self::HandingOver => "handing over",
            Self::TakingOver => "taking over",
        })
    }
}

/// Why a verb failed. `kind` is stable for programs; `message` is for people
/// and says what failed, why, and what to do next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminError {
    pub kind: AdminErrorKind,
    pub message: String,
    /// `health_check_failed` only: what the agent saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Box<HealthFailure>>,
    /// `lock_held` only: who holds the lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Box<Lock>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminErrorKind {
    /// The request line was not a valid request.
    BadRequest,
    /// The app (or its previous target) is unknown.
    NotFound,
    /// The target never passed its health check; the route is unchanged.
    HealthCheckFailed,
    /// Someone else holds the deploy lock.
    LockHeld,
    /// The lock id given is not the one held (released, expired, taken over).
    LockNotHeld,
    /// The ledger on disk was written by a newer agent.
    LedgerTooNew,
    /// An agent upgrade is in progress: the ledger is frozen for a few
    /// seconds. Retry.
    HandingOver,
    /// A certificate could not be obtained (the message carries the CA's
    /// reason and the fix) or a custom one is unusable.
    CertFailed,
    /// Anything else (I/O on the state dir...).
    Internal,
}

impl AdminErrorKind {
    /// Exit code `slipway-agent ctl` uses for this error; published in the
    /// agent's README so the CLI can branch on it.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::BadRequest => 2,
            Self::NotFound => 3,
            Self::HealthCheckFailed => 4,
            Self::LockHeld | Self::LockNotHeld => 5,
            Self::LedgerTooNew => 6,
            Self::HandingOver => 8,
            Self::CertFailed => 9,
            Self::Internal => 1,
        }
    }
}

/// What the agent saw while health-checking a target that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthFailure {
    pub target: String,
    pub path: String,
    pub attempts: u32,
    /// One entry per attempt, oldest first, last 20 kept: the status code or
    /// the connection error.
    pub seen: Vec<String>,
    /// The start of the last answer's body (up to 512 bytes, lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_body: Option<String>,
}

impl AdminResponse {
    pub fn ok(result: AdminResult) -> Self {
        Self::Ok { result }
    }

    pub fn error(kind: AdminErrorKind, message: impl Into<String>) -> Self {
        Self::Error {
            error: AdminError {
                kind,
                message: message.into(),
                health: None,
                holder: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_verb() {
        let line = r#"{"verb":"deploy","app":"web","target":"10.0.0.2:8080","release":"abc1234"}"#;
        let req: AdminRequest = serde_json::from_str(line).expect("parses");
        match req {
            AdminRequest::Deploy(args) => {
                assert_eq!(args.health, HealthCheck::default());
                assert_eq!(args.drain_timeout_ms, DEFAULT_DRAIN_TIMEOUT_MS);
            }
            other => panic!("unexpected {other:?}"),
        }
        let routes: AdminRequest = serde_json::from_str(r#"{"verb":"routes"}"#).expect("parses");
        assert_eq!(routes, AdminRequest::Routes);
    }

    #[test]
    fn cert_ensure_defaults_to_redirect_without_hsts() {
        let line = r#"{"verb":"cert_ensure","host":"a.example.org","source":{"type":"acme"}}"#;
        let req: AdminRequest = serde_json::from_str(line).expect("parses");
        let AdminRequest::CertEnsure(args) = req else {
            panic!("not cert_ensure: {req:?}");
        };
        assert!(args.redirect_http);
        assert_eq!(args.hsts_max_age_secs, None);
    }

    #[test]
    fn maintenance_verbs_parse_with_defaults_and_change_state() {
        let on: AdminRequest =
            serde_json::from_str(r#"{"verb":"maintenance_on","app":"web"}"#).expect("parses");
        let AdminRequest::MaintenanceOn(args) = &on else {
            panic!("not maintenance_on: {on:?}");
        };
        assert_eq!(args.mode, crate::maintenance::MaintenanceMode::Page);
        assert!(on.changes_state());
        let off: AdminRequest =
            serde_json::from_str(r#"{"verb":"maintenance_off","app":"web"}"#).expect("parses");
        assert!(off.changes_state());
    }

    #[test]
    fn responses_round_trip() {
        let resp = AdminResponse::error(AdminErrorKind::NotFound, "no app `x`");
        let text = serde_json::to_string(&resp).expect("serialises");
        assert!(text.starts_with(r#"{"status":"error""#), "{text}");
        let back: AdminResponse = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, resp);
    }
}
