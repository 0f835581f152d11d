//! The typed shape of `deployment.yml` after merging (shared section ⊕ the
//! environment's section ⊕ overrides). The JSON Schema that editors and
//! validation use is generated from these types, so they cannot drift.
//!
//! Every struct denies unknown keys; defaults are defined here, once.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::snapshot::format::{ArchiveFormat, Compression};

/// The settings of one environment once merged.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub app: App,
    #[serde(default)]
    pub health: Health,
    pub database: Database,
    #[serde(default)]
    pub deployment: Deployment,
    #[serde(default)]
    pub notifications: Notifications,
    /// The operator's commands before the deploy, before the switch (in the
    /// new container) and after the deploy.
    #[serde(default)]
    pub hooks: super::hooks::Hooks,
    /// Where automatic certificates come from (for `deployment.tls: auto`).
    #[serde(default)]
    pub acme: Acme,
    /// Which entry of `providers` this environment deploys with.
    #[serde(default = "default_provider")]
    pub provider: String,
    #[serde(default)]
    pub providers: Providers,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Lower-case name used for images, containers, networks and volumes.
    #[schemars(pattern(r"^[a-z][a-z0-9-]{0,40}$"))]
    pub name: String,
    /// The port the service listens on inside its container.
    #[serde(default = "default_app_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    pub build: Build,
    /// Non-secret environment variables for the service. Secrets go in
    /// `.env.<env>`, never here.
    #[serde(default)]
    pub env: BTreeMap<String, EnvScalar>,
    /// Variables the service needs from `.env.<env>` that are secret: they
    /// must be set, must not be placeholders, and are never printed.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The service runs background jobs that must never run twice at once:
    /// the old slot stops as soon as its drain ends.
    #[serde(default)]
    pub exclusive_jobs: bool,
}

/// A variable's value in `app.env`: YAML scalars (`8080`, `true`) are
/// accepted and passed on as text.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvScalar {
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Build context, relative to the repository root.
    #[serde(default = "default_context")]
    pub context: String,
    /// Dockerfile, relative to the repository root.
    pub dockerfile: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// A command run on the build host before the image build (e.g. to
    /// compile a binary into the context). Runs from the repository root.
    #[serde(default)]
    pub command: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default = "default_health_path")]
    #[schemars(pattern(r"^/"))]
    pub path: String,
    #[serde(default = "default_health_interval")]
    pub interval: DurationText,
    #[serde(default = "default_health_timeout")]
    pub timeout: DurationText,
    /// Consecutive passing checks needed before a slot counts as healthy.
    #[serde(default = "default_healthy_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: u32,
    /// How long a new slot may take to become healthy before the deploy fails.
    #[serde(default = "default_start_timeout")]
    pub start_timeout: DurationText,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// `container`: Slipway runs PostgreSQL in a container on the target host.
/// `external`: the database runs elsewhere; `DATABASE_URL` in `.env.<env>` points at it.
// Variant docs would turn the schema into `oneOf` consts; one enum list gives better errors.
pub enum DatabaseMode {
    Container,
    External,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub mode: DatabaseMode,
    /// PostgreSQL image with the required extensions (also used to run
    /// pg_dump next to an external database).
    pub image: String,
    /// A Dockerfile that builds `image` where it cannot be pulled.
    #[serde(default)]
    pub dockerfile: Option<String>,
    /// Database name (container mode).
    #[serde(default = "default_db_name")]
    pub name: String,
    /// Database role (container mode).
    #[serde(default = "default_db_user")]
    pub user: String,
    /// Extensions created and checked on provisioning.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Migrations directory (golang-migrate layout), relative to the repository root.
    pub migrations: String,
    #[serde(default)]
    pub snapshots: Snapshots,
    #[serde(default)]
    pub migration: MigrationSettings,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshots {
    /// Where snapshots are written on the target host.
    #[serde(default = "default_snapshot_dir")]
    pub dir: String,
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: u32,
    /// pg_dump compression: `auto` (zstd:1 on PostgreSQL 16 and later, gzip:1 before),
    /// `zstd[:1-22]`, `gzip[:1-9]`, `lz4[:1-12]` or `none`.
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub format: ArchiveFormat,
    /// Parallel pg_dump/pg_restore jobs for the directory format.
    #[serde(default = "default_snapshot_jobs")]
    #[schemars(range(min = 1, max = 32))]
    pub jobs: u32,
    /// When a deploy snapshots the database before migrating.
    #[serde(default)]
    pub when: SnapshotWhen,
}

/// `when_migrating` (default): only when the release has a migration to
/// apply (or whether it has cannot be read quickly).
/// `always`: before every deploy's migrate step.
// Variant docs would turn the schema into `oneOf` consts; one enum list gives better errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotWhen {
    #[default]
    WhenMigrating,
    Always,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationSettings {
    /// How long to wait for another migration runner to finish.
    #[serde(default = "default_lock_wait")]
    pub lock_wait: DurationText,
    /// PostgreSQL `statement_timeout` for migrations; unset means none.
    #[serde(default)]
    pub statement_timeout: Option<DurationText>,
    /// PostgreSQL `lock_timeout` for migrations; unset means none.
    #[serde(default)]
    pub lock_timeout: Option<DurationText>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The port the agent serves the public on.
    #[serde(default = "default_public_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub public_port: u16,
    /// Host name routed to this app, when several apps share a host (the
    /// same as a one-element `hostnames`).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Domain names served for this environment through the host's shared
    /// entry point on ports 80 and 443 (e.g. `[api.example.org]`).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// HTTPS for `hostnames`: `auto` (certificates from `acme.directory`,
    /// renewed by themselves), `off` (plain HTTP on port 80), or
    /// `{cert, key}`: your own PEM files (a wildcard certificate may cover
    /// several names).
    #[serde(default)]
    pub tls: Tls,
    /// Answer plain HTTP on port 80 with a 301 to HTTPS (ACME challenges
    /// are always answered first).
    #[serde(default = "default_true")]
    pub redirect_http: bool,
    /// `Strict-Transport-Security` max-age sent over HTTPS (e.g. `8760h`
    /// for a year); unset sends none. Opt in only once HTTPS works.
    #[serde(default)]
    pub hsts: Option<DurationText>,
    /// How long in-flight requests to the old slot may take to finish.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: DurationText,
    /// How long `slipway deploy` stays to show the host's analysis live
    /// before leaving it to the agent (which carries on for
    /// `analysis.window`, CLI or not).
    #[serde(default = "default_watch_window")]
    pub watch_window: DurationText,
    /// The post-deploy analysis the host's agent runs after every switch.
    #[serde(default)]
    pub analysis: Analysis,
    /// Maintenance mode: `slipway maintenance on|off` and `deploy --maintenance`.
    #[serde(default)]
    pub maintenance: MaintenanceSettings,
    /// Releases (images) kept for rollback.
    #[serde(default = "default_keep_releases")]
    #[schemars(range(min = 1, max = 50))]
    pub keep_releases: u32,
    /// The CI gate: `slipway deploy` refuses a commit that has not passed
    /// these checks on the forge (a dirty work tree never passes).
    #[serde(default)]
    pub require_ci: Option<RequireCi>,
}

/// `deployment.require_ci`: which of the forge's checks the deployed commit
/// must have passed before it is built.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireCi {
    /// The forge: `github` (its check-runs API).
    pub provider: CiProvider,
    /// `owner/name` on the forge; default: from the git remote `origin`.
    #[serde(default)]
    #[schemars(pattern(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"))]
    pub repository: Option<String>,
    /// Names of the check runs (for GitHub Actions: the job names) that must
    /// have concluded `success` (or `neutral`/`skipped`).
    #[schemars(length(min = 1))]
    pub checks: Vec<String>,
    /// How long a deploy waits for pending checks (and for a rate limit to
    /// reset) before it gives up.
    #[serde(default = "default_ci_wait")]
    pub wait: DurationText,
    /// How often pending checks are asked again.
    #[serde(default = "default_ci_poll_interval")]
    pub poll_interval: DurationText,
    /// The forge's API (GitHub Enterprise: `https://<host>/api/v3`).
    #[serde(default = "default_ci_api_url")]
    pub api_url: String,
}

/// The forge `deployment.require_ci` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CiProvider {
    Github,
}

fn default_ci_wait() -> DurationText {
    dur(10 * 60)
}
fn default_ci_poll_interval() -> DurationText {
    dur(10)
}
fn default_ci_api_url() -> String {
    "https://api.github.com".into()
}

/// `deployment.tls`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Tls {
    Mode(TlsMode),
    Custom(CustomCert),
}

impl Default for Tls {
    fn default() -> Self {
        Tls::Mode(TlsMode::Auto)
    }
}

/// `auto`: certificates from ACME. `off`: HTTP only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Auto,
    Off,
}

/// Your own certificate: PEM chain and private key, paths relative to the
/// repository root (keep the key out of git, mode 600).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomCert {
    pub cert: String,
    pub key: String,
}

/// The ACME (RFC 8555) certificate authority for `deployment.tls: auto`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// Contact for expiry notices from the CA.
    #[serde(default)]
    pub email: Option<String>,
    /// `letsencrypt`, `letsencrypt-staging`, or any directory URL.
    #[serde(default = "default_acme_directory")]
    pub directory: String,
    /// A PEM file of a root to trust for the directory's own HTTPS (test
    /// CAs such as pebble), relative to the repository root.
    #[serde(default)]
    pub ca_root: Option<String>,
}

impl Default for Acme {
    fn default() -> Self {
        Self {
            email: None,
            directory: default_acme_directory(),
            ca_root: None,
        }
    }
}

/// Let's Encrypt's production and staging directories.
pub const LETSENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const LETSENCRYPT_STAGING_DIRECTORY: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

impl Acme {
    /// The directory URL `directory` names.
    pub fn directory_url(&self) -> &str {
        match self.directory.as_str() {
            "letsencrypt" => LETSENCRYPT_DIRECTORY,
            "letsencrypt-staging" => LETSENCRYPT_STAGING_DIRECTORY,
            url => url,
        }
    }
}

impl Deployment {
    /// `hostnames` and `hostname`, lower-case, each once, in order.
    pub fn all_hostnames(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in self.hostname.iter().chain(&self.hostnames) {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            if !h.is_empty() && !out.contains(&h) {
                out.push(h);
            }
        }
        out
    }
}

/// `deployment.analysis`: how the agent judges a release after the switch
/// (rules like Argo Rollouts' and Flagger's analysis).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    /// How long the release is watched after the switch; `0s` turns the
    /// analysis off. Unset: 10m for `production`, 2m for other environments.
    #[serde(default)]
    pub window: Option<DurationText>,
    /// The sliding window the 5xx ratio and latency are judged over; a
    /// latency regression must also last this long.
    #[serde(default = "default_analysis_interval")]
    pub interval: DurationText,
    /// `rollback` (switch back to the warm previous release) or `alert`.
    #[serde(default)]
    pub on_failure: crate::analysis::OnFailure,
    /// The new release's health check failing this many times in a row fails it.
    #[serde(default = "default_analysis_health_failures")]
    #[schemars(range(min = 1, max = 100))]
    pub health_failures: u32,
    /// How often the agent probes the new release's health path.
    #[serde(default = "default_analysis_health_interval")]
    pub health_interval: DurationText,
    /// 5xx responses over all responses in `interval` above which it fails.
    #[serde(default = "default_max_error_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_ratio: f64,
    /// Requests a window needs to be judged; a whole analysis window with
    /// fewer is `inconclusive`, never `passed`.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// p95 above this multiple of the previous release's p95...
    #[serde(default = "default_p95_factor")]
    #[schemars(range(min = 1.0))]
    pub p95_factor: f64,
    /// ...and above this absolute floor is a latency regression.
    #[serde(default = "default_p95_floor")]
    pub p95_floor: DurationText,
}

impl Analysis {
    /// The window for `environment`: as configured, else 10 minutes for
    /// production and 2 for the others.
    pub fn window_for(&self, environment: &str) -> Duration {
        match &self.window {
            Some(w) => w.0,
            None if environment == "production" => Duration::from_secs(600),
            None => Duration::from_secs(120),
        }
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            window: None,
            interval: default_analysis_interval(),
            on_failure: crate::analysis::OnFailure::default(),
            health_failures: default_analysis_health_failures(),
            health_interval: default_analysis_health_interval(),
            max_error_ratio: default_max_error_ratio(),
            min_requests: default_min_requests(),
            p95_factor: default_p95_factor(),
            p95_floor: default_p95_floor(),
        }
    }
}

fn default_analysis_interval() -> DurationText {
    dur(10)
}
fn default_analysis_health_failures() -> u32 {
    3
}
fn default_analysis_health_interval() -> DurationText {
    dur(1)
}
fn default_max_error_ratio() -> f64 {
    0.05
}
fn default_min_requests() -> u64 {
    20
}
fn default_p95_factor() -> f64 {
    1.5
}
fn default_p95_floor() -> DurationText {
    DurationText(Duration::from_millis(50))
}

/// `deployment.maintenance`: how the public is answered while the app is in
/// maintenance, and how long a `deploy --maintenance` migration may take.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// `statement_timeout` and `lock_timeout` of a `deploy --maintenance`
    /// migration (in place of `database.migration.*`, sized for live
    /// traffic): long enough for the migration, short enough that one stuck
    /// statement cannot keep the site down for ever.
    #[serde(default = "default_maintenance_migration_timeout")]
    pub migration_timeout: DurationText,
    /// `Retry-After` sent with the maintenance page (1s to 24h).
    #[serde(default = "default_maintenance_retry_after")]
    pub retry_after: DurationText,
    /// Plain text shown on the page (at most 500 characters); unset shows a
    /// generic "down for maintenance" line.
    #[serde(default)]
    pub message: Option<String>,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self {
            migration_timeout: default_maintenance_migration_timeout(),
            retry_after: default_maintenance_retry_after(),
            message: None,
        }
    }
}

fn default_maintenance_migration_timeout() -> DurationText {
    dur(30 * 60)
}
fn default_maintenance_retry_after() -> DurationText {
    dur(60)
}

/// `notifications`: where deploy and analysis events go. Every event is
/// also a JSON line in the agent's log (and on the CLI's stderr with
/// `--log-format json`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default)]
    pub webhook: Option<Webhook>,
    #[serde(default)]
    pub ntfy: Option<Ntfy>,
}

/// The payload shape of `notifications.webhook`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The event as JSON, Standard Webhooks envelope.
    #[default]
    Standard,
    Slack,
    Discord,
    Mattermost,
    /// `body` with `{{title}}`, `{{message}}`, `{{kind}}`... placeholders.
    Custom,
}

/// A generic webhook (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`), or a Slack/Discord/Mattermost incoming webhook.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Usually `${WEBHOOK_URL}` from `.env.<env>`: webhook URLs carry tokens.
    pub url: String,
    /// `whsec_<base64>` signing secret, usually `${WEBHOOK_SECRET}` from
    /// `.env.<env>`; unset sends unsigned requests.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The JSON body for `format: custom`.
    #[serde(default)]
    pub body: Option<String>,
    /// One attempt's timeout.
    #[serde(default = "default_notify_timeout")]
    pub timeout: DurationText,
    /// Retries (with backoff, honouring `Retry-After`) stop after this long.
    #[serde(default = "default_notify_give_up")]
    pub give_up_after: DurationText,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ntfy {
    #[serde(default = "default_ntfy_server")]
    pub server: String,
    pub topic: String,
    /// Access token, usually `${NTFY_TOKEN}` from `.env.<env>`.
    #[serde(default)]
    pub token: Option<String>,
    /// Priority (1-5) of critical events (failures, switch-backs).
    #[serde(default)]
    #[schemars(range(min = 1, max = 5))]
    pub priority: Option<u8>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Opened when the notification is clicked (e.g. the service's URL).
    #[serde(default)]
    pub click: Option<String>,
    #[serde(default = "default_notify_timeout")]
    pub timeout: DurationText,
    #[serde(default = "default_notify_give_up")]
    pub give_up_after: DurationText,
}

fn default_notify_timeout() -> DurationText {
    dur(10)
}
fn default_notify_give_up() -> DurationText {
    dur(3600)
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    #[serde(default)]
    pub docker: Option<DockerProvider>,
    /// Reserved: Docker Swarm (not yet supported).
    #[serde(default)]
    pub swarm: Option<serde_json::Map<String, serde_json::Value>>,
    /// Reserved: AWS ECS/Fargate + RDS (not yet supported).
    #[serde(default)]
    pub aws: Option<serde_json::Map<String, serde_json::Value>>,
    /// Reserved: GCP Cloud Run + Cloud SQL (not yet supported).
    #[serde(default)]
    pub gcp: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerProvider {
    /// `unix:///var/run/docker.sock` (default: the local engine) or `ssh://user@host`.
    #[serde(default)]
    pub host: Option<String>,
    /// The host's shared entry point for environments with `hostnames`.
    #[serde(default)]
    pub entry_point: EntryPoint,
}

/// The ports of the host's shared entry point. One per engine: every app
/// and environment deployed there with hostnames must agree on them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryPoint {
    /// Names its containers (`<name>`, `<name>-edge`), network and volume.
    #[serde(default = "default_entry_point_name")]
    #[schemars(pattern(r"^[a-z][a-z0-9-]{0,40}$"))]
    pub name: String,
    #[serde(default = "default_http_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub http_port: u16,
    #[serde(default = "default_https_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub https_port: u16,
}

impl Default for EntryPoint {
    fn default() -> Self {
        Self {
            name: default_entry_point_name(),
            http_port: default_http_port(),
            https_port: default_https_port(),
        }
    }
}

/// The providers Slipway knows; only `docker` deploys today.
pub const KNOWN_PROVIDERS: &[&str] = &["docker", "swarm", "aws", "gcp"];
pub const SUPPORTED_PROVIDERS: &[&str] = &["docker"];

/// A duration written as a number and a unit: `500ms`, `30s`, `5m`, `1h`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "DurationSchema")]
pub struct DurationText(pub Duration);

/// Schema stand-in for [`DurationText`]: a string such as `30s`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct DurationSchema(#[schemars(pattern(r"^[0-9]+(ms|s|m|h)$"))] String);

impl TryFrom<String> for DurationText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        parse_duration(&text).map(DurationText)
    }
}

impl From<DurationText> for String {
    fn from(d: DurationText) -> String {
        format_duration(d.0)
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (write e.g. 30s, 500ms, 5m, 1h)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "`{text}` is not a duration (write e.g. 30s, 500ms, 5m, 1h)"
        )),
    }
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn dur(s: u64) -> DurationText {
    DurationText(Duration::from_secs(s))
}
fn default_provider() -> String {
    "docker".into()
}
fn default_app_port() -> u16 {
    8080
}
fn default_context() -> String {
    ".".into()
}
fn default_health_path() -> String {
    "/health".into()
}
fn default_health_interval() -> DurationText {
    DurationText(Duration::from_millis(500))
}
fn default_health_timeout() -> DurationText {
    dur(3)
}
fn default_healthy_threshold() -> u32 {
    2
}
fn default_start_timeout() -> DurationText {
    dur(60)
}
fn default_db_name() -> String {
    "app".into()
}
fn default_db_user() -> String {
    "app".into()
}
fn default_snapshot_dir() -> String {
    "/var/lib/slipway/snapshots".into()
}
fn default_retention_days() -> u32 {
    7
}
fn default_snapshot_jobs() -> u32 {
    crate::snapshot::DEFAULT_JOBS
}
fn default_lock_wait() -> DurationText {
    dur(60)
}
fn default_public_port() -> u16 {
    8080
}
fn default_drain_timeout() -> DurationText {
    dur(30)
}
fn default_watch_window() -> DurationText {
    dur(30)
}
fn default_keep_releases() -> u32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_acme_directory() -> String {
    "letsencrypt".into()
}
fn default_entry_point_name() -> String {
    "slipway-gateway".into()
}
fn default_http_port() -> u16 {
    80
}
fn default_https_port() -> u16 {
    443
}
fn default_ntfy_server() -> String {
    "https://ntfy.sh".into()
}

impl Default for Health {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            interval: default_health_interval(),
            timeout: default_health_timeout(),
            healthy_threshold: default_healthy_threshold(),
            start_timeout: default_start_timeout(),
        }
    }
}

impl Default for Snapshots {
    fn default() -> Self {
        Self {
            dir: default_snapshot_dir(),
            retention_days: default_retention_days(),
            when: SnapshotWhen::default(),
            compression: Compression::default(),
            format: ArchiveFormat::default(),
            jobs: default_snapshot_jobs(),
        }
    }
}

impl Default for MigrationSettings {
    fn default() -> Self {
        Self {
            lock_wait: default_lock_wait(),
            statement_timeout: None,
            lock_timeout: None,
        }
    }
}

impl Default for Deployment {
    fn default() -> Self {
        Self {
            public_port: default_public_port(),
            hostname: None,
            hostnames: Vec::new(),
            tls: Tls::default(),
            redirect_http: true,
            hsts: None,
            drain_timeout: default_drain_timeout(),
            watch_window: default_watch_window(),
            analysis: Analysis::default(),
            maintenance: MaintenanceSettings::default(),
            keep_releases: default_keep_releases(),
            require_ci: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
        ] {
            assert_eq!(parse_duration(text).unwrap(), d);
            assert_eq!(format_duration(d), text);
        }
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3 s").is_err());
    }

    #[test]
    fn hostnames_merge_the_single_name_and_acme_names_resolve() {
        let d = Deployment {
            hostname: Some("API.example.org.".into()),
            hostnames: vec!["api.example.org".into(), "www.example.org".into()],
            ..Deployment::default()
        };
        assert_eq!(
            d.all_hostnames(),
            vec!["api.example.org", "www.example.org"]
        );
        let mut acme = Acme::default();
        assert_eq!(acme.directory_url(), LETSENCRYPT_DIRECTORY);
        acme.directory = "letsencrypt-staging".into();
        assert_eq!(acme.directory_url(), LETSENCRYPT_STAGING_DIRECTORY);
        acme.directory = "https://127.0.0.1:14000/dir".into();
        assert_eq!(acme.directory_url(), "https://127.0.0.1:14000/dir");
        let tls: Tls = serde_json::from_str(r#"{"cert":"c.pem","key":"k.pem"}"#).expect("custom");
        assert!(matches!(tls, Tls::Custom(_)));
        let tls: Tls = serde_json::from_str(r#""off""#).expect("off");
        assert_eq!(tls, Tls::Mode(TlsMode::Off));
    }
}
