//! The route table and every change to it: deploy (health-gated switch),
//! rollback, pause/resume, maintenance mode (see [`crate::maintenance`]),
//! drain bookkeeping, and restore from the ledger.
//!
//! The whole table (per app: host names, active target, previous target,
//! draining targets, pause gate) sits behind ONE `ArcSwap`, so a request sees
//! either the table before a switch or the one after, never a mix. Changes
//! are serialised by `ops` and persisted to the ledger before they are
//! published, so what the agent serves is what a restart restores. Health
//! checks run before `ops` is taken: a slow check never blocks another app's
//! switch or the lock heartbeats.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use slipway_core::admin::{
    AdminError, AdminErrorKind, AdminResult, DeployArgs, HealthCheck, PauseArgs, RollbackArgs,
    RouteStatus, SwitchReport, TargetStatus,
};
use slipway_core::ledger::{RouteRecord, TargetRecord};
use tokio::sync::watch;

use crate::health::{self, HealthClient};
use crate::ledger::Ledger;
use crate::metrics::{AppMetrics, Metrics};
use crate::target::{InFlight, Target};

/// Gate holding an app's new requests while it is paused.
pub struct Pause {
    released: watch::Sender<bool>,
    queued: AtomicU32,
    max_queue: u32,
    max_wait: Duration,
    /// Set by a `hold` maintenance (lifted with it), not the pause verb.
    by_maintenance: bool,
}

impl Pause {
    fn new(max_queue: u32, max_wait: Duration) -> Self {
        Self {
            released: watch::Sender::new(false),
            queued: AtomicU32::new(0),
            max_queue,
            max_wait,
            by_maintenance: false,
        }
    }

    /// The gate of a `hold` maintenance: the pause verb's queue bound.
    pub fn for_maintenance(max_wait: Duration) -> Self {
        Self {
            by_maintenance: true,
            ..Self::new(slipway_core::admin::DEFAULT_PAUSE_MAX_QUEUE, max_wait)
        }
    }

    pub fn by_maintenance(&self) -> bool {
        self.by_maintenance
    }

    /// Wake the held requests (they read the table again).
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    /// Wait for `resume`; false when the queue is full or the wait bound
    /// passed (the request then gets 503 with Retry-After).
    async fn wait(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let mut rx = self.released.subscribe();
        let ok = tokio::time::timeout(self.max_wait, rx.wait_for(|released| *released))
            .await
            .is_ok_and(|r| r.is_ok());
        self.queued.fetch_sub(1, Ordering::SeqCst);
        ok
    }

    pub fn retry_after_secs(&self) -> u64 {
        self.max_wait.as_secs().clamp(1, 60)
    }
}

/// One app's route.
#[derive(Clone)]
pub struct AppRoute {
    pub name: Arc<str>,
    /// Lower-case host names (no port).
    pub hosts: Vec<String>,
    pub active: Option<Arc<Target>>,
    /// Where `rollback` goes.
    pub previous: Option<TargetRecord>,
    pub draining: Vec<Arc<Target>>,
    pub pause: Option<Arc<Pause>>,
    /// Maintenance mode: requests get the agent's maintenance answer.
    pub maintenance: Option<Arc<crate::maintenance::Active>>,
    pub health: HealthCheck,
    pub drain_timeout: Duration,
    pub metrics: Arc<AppMetrics>,
}

impl AppRoute {
    fn record(&self) -> RouteRecord {
        RouteRecord {
            hosts: self.hosts.clone(),
            active: self.active.as_ref().map(|t| t.record()),
            previous: self.previous.clone(),
            health: self.health.clone(),
            drain_timeout_ms: u64::try_from(self.drain_timeout.as_millis()).unwrap_or(u64::MAX),
            maintenance: self.maintenance.as_ref().map(|m| m.record.clone()),
        }
    }
}

/// Every app's route; replaced whole on each change.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Arc<AppRoute>>,
    /// The host's shared entry point: a request is routed by its host name
    /// only, never to a default route (an unknown name must not reach
    /// whichever app happens to be alone).
    hosts_only: bool,
}

impl RouteTable {
    pub fn routes(&self) -> &[Arc<AppRoute>] {
        &self.routes
    }

    fn get(&self, app: &str) -> Option<&Arc<AppRoute>> {
        self.routes.iter().find(|r| &*r.name == app)
    }

    /// The app for a request's host: an exact host-name match, else the
    /// default route: the only app, or the only app without host names.
    pub fn lookup(&self, host: Option<&str>) -> Option<&Arc<AppRoute>> {
        if let Some(host) = host {
            let found = self
                .routes
                .iter()
                .find(|r| r.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)));
            if found.is_some() {
                return found;
            }
        }
        if self.hosts_only {
            return None;
        }
        self.default_route()
    }

    fn default_route(&self) -> Option<&Arc<AppRoute>> {
        if let [only] = self.routes.as_slice() {
            return Some(only);
        }
        let mut hostless = self.routes.iter().filter(|r| r.hosts.is_empty());
        match (hostless.next(), hostless.next()) {
            (Some(r), None) => Some(r),
            _ => None,
        }
    }

    fn without(&self, app: &str) -> Self {
        Self {
            routes: self
                .routes
                .iter()
                .filter(|r| &*r.name != app)
                .cloned()
                .collect(),
            hosts_only: self.hosts_only,
        }
    }

    fn with(&self, route: AppRoute) -> Self {
        let mut routes: Vec<_> = self
            .routes
            .iter()
            .filter(|r| r.name != route.name)
            .cloned()
            .collect();
        routes.push(Arc::new(route));
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            routes,
            hosts_only: self.hosts_only,
        }
    }
}

/// What admission decided for one request.
pub enum Admission {
    Go(Arc<AppRoute>, InFlight),
    NoRoute,
    NoTarget(Arc<AppRoute>),
    PauseExceeded(Arc<AppRoute>, u64),
    /// Answered by the agent itself (see [`crate::maintenance`]).
    Maintenance(Arc<AppRoute>, Arc<crate::maintenance::Active>),
}

pub struct Router {
    table: ArcSwap<RouteTable>,
    ops: tokio::sync::Mutex<()>,
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    /// Where the analysis' events go.
    pub notifier: Arc<crate::notify::Notifier>,
    health: HealthClient,
}

fn admin_err(kind: AdminErrorKind, message: String) -> AdminError {
    AdminError {
        kind,
        message,
        health: None,
        holder: None,
    }
}

/// Build a target from a record, counting into its app/release/slot counters.
fn new_target(metrics: &Metrics, app: &str, rec: &TargetRecord) -> Result<Arc<Target>, AdminError> {
    let counters = metrics.counters(app, &rec.release, rec.slot.as_deref());
    Target::new(rec, counters)
        .map(Arc::new)
        .map_err(|e| admin_err(AdminErrorKind::BadRequest, e.to_string()))
}

impl Router {
    /// Rebuild the table from the ledger's saved routes (no health check:
    /// these targets were serving when the agent stopped).
    /// With `hosts_only` (the host's entry point) requests are routed by
    /// host name only.
    pub fn restore(
        ledger: Arc<Ledger>,
        metrics: Arc<Metrics>,
        notifier: Arc<crate::notify::Notifier>,
        hosts_only: bool,
    ) -> Result<Self, AdminError> {
        let mut table = RouteTable {
            hosts_only,
            ..RouteTable::default()
        };
        for (app, rec) in ledger.routes() {
            let active = match &rec.active {
                Some(t) => Some(new_target(&metrics, &app, t)?),
                None => None,
            };
            tracing::info!(app = %app, target = ?rec.active.as_ref().map(|t| &t.target),
                maintenance = rec.maintenance.is_some(), "route restored");
            let pause = rec
                .maintenance
                .as_ref()
                .and_then(crate::maintenance::hold_gate);
            let maintenance = rec
                .maintenance
                .map(|m| Arc::new(crate::maintenance::Active::new(m)));
            table = table.with(AppRoute {
                name: Arc::from(app.as_str()),
                hosts: rec.hosts,
                active,
                previous: rec.previous,
                draining: Vec::new(),
                pause,
                maintenance,
                health: rec.health,
                drain_timeout: Duration::from_millis(rec.drain_timeout_ms),
                metrics: metrics.app(&app),
            });
        }
        Ok(Self {
            table: ArcSwap::from_pointee(table),
            ops: tokio::sync::Mutex::new(()),
            ledger,
            metrics,
            notifier,
            health: HealthClient::default(),
        })
    }

    pub fn table(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Pick the target for a new request and count it in. Waits while the
    /// app is paused (bounded). Retries when the chosen target started
    /// draining between reading the table and counting in: the table read
    /// next already names its successor.
    pub async fn admit(&self, host: Option<&str>) -> Admission {
        for _ in 0..8 {
            let pause = {
                let table = self.table.load();
                let Some(route) = table.lookup(host) else {
                    return Admission::NoRoute;
                };
                match &route.pause {
                    Some(p) => (Arc::clone(route), Arc::clone(p)),
                    None => {
                        if let Some(m) = &route.maintenance {
                            return Admission::Maintenance(Arc::clone(route), Arc::clone(m));
                        }
                        let Some(target) = &route.active else {
                            return Admission::NoTarget(Arc::clone(route));
                        };
                        if let Some(guard) = target.try_begin() {
                            return Admission::Go(Arc::clone(route), guard);
                        }
                        continue;
                    }
                }
            };
            let (route, gate) = pause;
            if !gate.wait().await {
                // Held to the bound by a maintenance: its answer, not the
                // pause's.
                if let Some(m) = self
                    .table
                    .load()
                    .lookup(host)
                    .and_then(|r| r.maintenance.clone())
                {
                    return Admission::Maintenance(route, m);
                }
                return Admission::PauseExceeded(route, gate.retry_after_secs());
            }
        }
        match self.table.load().lookup(host) {
            Some(r) => Admission::NoTarget(Arc::clone(r)),
            None => Admission::NoRoute,
        }
    }

    pub async fn deploy(self: &Arc<Self>, a: DeployArgs) -> Result<AdminResult, AdminError> {
        let started = Instant::now();
        if a.app.trim().is_empty() {
            return Err(admin_err(
                AdminErrorKind::BadRequest,
                "app name is empty".into(),
            ));
        }
        if !a.health.path.starts_with('/') {
            return Err(admin_err(
                AdminErrorKind::BadRequest,
                format!("health path `{}` must start with `/`", a.health.path),
            ));
        }
        let rec = TargetRecord {
            target: a.target.clone(),
            release: a.release.clone(),
            slot: a.slot.clone(),
        };
        let target = new_target(&self.metrics, &a.app, &rec)?;
        let attempts = self.gate(&a.app, &target, &a.health).await?;
        let hosts: Vec<String> = a.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let change = Change {
            app: &a.app,
            target,
            hosts: (!hosts.is_empty()).then_some(hosts),
            health: Some(a.health),
            drain_timeout: Duration::from_millis(a.drain_timeout_ms),
            kind: ChangeKind::Deploy,
            attempts,
            started,
        };
        self.switch(change).await
    }

    pub async fn rollback(self: &Arc<Self>, a: RollbackArgs) -> Result<AdminResult, AdminError> {
        let started = Instant::now();
        let (prev, check) = {
            let table = self.table.load();
            let route = table.get(&a.app).ok_or_else(|| not_found(&a.app))?;
            let prev = route.previous.clone().ok_or_else(|| {
                admin_err(
                    AdminErrorKind::NotFound,
                    format!("app `{}` has no previous target to roll back to", a.app),
                )
            })?;
            (prev, route.health.clone())
        };
        let target = new_target(&self.metrics, &a.app, &prev)?;
        let attempts = self.gate(&a.app, &target, &check).await?;
        let change = Change {
            app: &a.app,
            target,
            hosts: None,
            health: None,
            drain_timeout: Duration::from_millis(a.drain_timeout_ms),
            kind: ChangeKind::Rollback,
            attempts,
            started,
        };
        self.switch(change).await
    }

    /// The post-deploy analysis' switch back: like `rollback` (the previous
    /// target must pass its health check; serialised with every other
    /// change by `ops`), but only while `from` is still the active target,
    /// and with the analysis' ledger bookkeeping (see
    /// [`Ledger::save_route_switched_back`]).
    pub async fn switch_back(
        self: &Arc<Self>,
        app: &str,
        from: &TargetRecord,
        deployment_id: &str,
        reason: &str,
    ) -> Result<SwitchReport, AdminError> {
        let started = Instant::now();
        let (prev, check, drain_timeout) = {
            let table = self.table.load();
            let route = table.get(app).ok_or_else(|| not_found(app))?;
            let prev = route.previous.clone().ok_or_else(|| {
                admin_err(
                    AdminErrorKind::NotFound,
                    format!("app `{app}` has no previous target to switch back to"),
                )
            })?;
            (prev, route.health.clone(), route.drain_timeout)
        };
        let target = new_target(&self.metrics, app, &prev)?;
        let attempts = self.gate(app, &target, &check).await?;
        let change = Change {
            app,
            target,
            hosts: None,
            health: None,
            drain_timeout,
            kind: ChangeKind::SwitchBack {
                from: from.clone(),
                deployment_id: deployment_id.to_owned(),
                reason: reason.to_owned(),
            },
            attempts,
            started,
        };
        match self.switch(change).await? {
            AdminResult::Switched(report) => Ok(report),
            _ => Err(admin_err(
                AdminErrorKind::Internal,
                "the switch answered something other than a switch report".into(),
            )),
        }
    }

    /// The app's route as published now.
    pub fn route(&self, app: &str) -> Option<Arc<AppRoute>> {
        self.table.load().get(app).cloned()
    }

    /// The health gate: Ok(attempts) or the answer explaining the refusal.
    async fn gate(
        &self,
        app: &str,
        target: &Target,
        check: &HealthCheck,
    ) -> Result<u32, AdminError> {
        health::check(&self.health, &target.addr, check)
            .await
            .map_err(|failure| {
                self.metrics.app(app).switch_failed();
                let message = format!(
                    "target `{}` for app `{app}` did not pass its health check `GET {}` \
                     ({} in a row needed) within {} ms; saw [{}]{}. The route is unchanged; \
                     check the new container's logs",
                    failure.target,
                    failure.path,
                    check.passes.max(1),
                    check.deadline_ms,
                    failure.seen.join(", "),
                    failure
                        .last_body
                        .as_deref()
                        .map(|b| format!(", last body: {b:?}"))
                        .unwrap_or_default()
                );
                AdminError {
                    kind: AdminErrorKind::HealthCheckFailed,
                    message,
                    health: Some(Box::new(failure)),
                    holder: None,
                }
            })
    }

    /// Persist, publish, then start draining the replaced target.
    async fn switch(self: &Arc<Self>, c: Change<'_>) -> Result<AdminResult, AdminError> {
        let _ops = self.ops.lock().await;
        let table = self.table.load_full();
        let old = table.get(c.app);
        let rollback = !matches!(c.kind, ChangeKind::Deploy);
        if let ChangeKind::SwitchBack { from, .. } = &c.kind {
            let active = old.and_then(|o| o.active.as_ref()).map(|t| t.record());
            if active.as_ref() != Some(from) {
                return Err(admin_err(
                    AdminErrorKind::Internal,
                    format!(
                        "app `{}` no longer serves release `{}` (a deploy or rollback replaced                          it), so the analysis does not switch back",
                        c.app, from.release
                    ),
                ));
            }
        }
        if rollback {
            // Someone switched while we health-checked: the "previous" we
            // checked may no longer be the previous.
            let still = old.and_then(|o| o.previous.as_ref()) == Some(&c.target.record());
            if !still {
                return Err(admin_err(
                    AdminErrorKind::Internal,
                    format!(
                        "app `{}` changed during the rollback's health check; run it again",
                        c.app
                    ),
                ));
            }
        }
        let hosts = c
            .hosts
            .or_else(|| old.map(|o| o.hosts.clone()))
            .unwrap_or_default();
        for other in table.routes().iter().filter(|r| &*r.name != c.app) {
            if let Some(h) = hosts.iter().find(|h| other.hosts.contains(h)) {
                return Err(admin_err(
                    AdminErrorKind::BadRequest,
                    format!("host `{h}` is already routed to app `{}`", other.name),
                ));
            }
        }
        let replaced = old.and_then(|o| o.active.clone());
        let mut draining = old.map(|o| o.draining.clone()).unwrap_or_default();
        draining.extend(replaced.iter().cloned());
        let route = AppRoute {
            name: Arc::from(c.app),
            hosts,
            active: Some(Arc::clone(&c.target)),
            previous: replaced.as_ref().map(|t| t.record()),
            draining,
            pause: old.and_then(|o| o.pause.clone()),
            // A switch under maintenance keeps it: it is lifted on its own.
            maintenance: old.and_then(|o| o.maintenance.clone()),
            health: c
                .health
                .or_else(|| old.map(|o| o.health.clone()))
                .unwrap_or_default(),
            drain_timeout: c.drain_timeout,
            metrics: self.metrics.app(c.app),
        };
        match &c.kind {
            ChangeKind::Deploy => self.ledger.save_route(c.app, route.record(), false)?,
            ChangeKind::Rollback => self.ledger.save_route(c.app, route.record(), true)?,
            ChangeKind::SwitchBack {
                deployment_id,
                reason,
                ..
            } => self.ledger.save_route_switched_back(
                c.app,
                route.record(),
                deployment_id,
                reason,
            )?,
        }
        let metrics = Arc::clone(&route.metrics);
        self.table.store(Arc::new(table.with(route)));
        let switched_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        // Only now, with the new table published, may the old target refuse
        // requests: a request that loses the race re-reads the new table.
        if let Some(old_target) = &replaced {
            old_target.begin_drain();
            tokio::spawn(crate::drain::run(
                Arc::clone(self),
                Arc::from(c.app),
                Arc::clone(old_target),
                c.drain_timeout,
            ));
        }
        metrics.switched(c.started.elapsed());
        tracing::info!(app = c.app, target = %c.target.addr, release = %c.target.release,
            rollback, "switched");
        Ok(AdminResult::Switched(SwitchReport {
            app: c.app.to_owned(),
            target: c.target.addr.clone(),
            release: c.target.release.to_string(),
            previous_target: replaced.as_ref().map(|t| t.addr.clone()),
            previous_release: replaced.as_ref().map(|t| t.release.to_string()),
            health_attempts: c.attempts,
            switched_at_unix_nanos: switched_at,
            duration_ms: u64::try_from(c.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }))
    }

    /// Drop a drained target from its app's draining list.
    pub async fn forget_draining(&self, app: &str, target: &Arc<Target>) {
        let _ops = self.ops.lock().await;
        let table = self.table.load_full();
        if let Some(route) = table.get(app) {
            let mut route = AppRoute::clone(route);
            route.draining.retain(|t| !Arc::ptr_eq(t, target));
            self.table.store(Arc::new(table.with(route)));
        }
    }

    /// "Now" by the ledger's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        (self.ledger.clock)()
    }

    /// Change one app's route: `f` edits a copy and returns its answer and
    /// a pause gate to release once the new table is published (held
    /// requests then re-read it). Persisted first, then published, like a
    /// switch; serialised with every other change.
    pub async fn update_route<R>(
        &self,
        app: &str,
        f: impl FnOnce(&mut AppRoute) -> Result<(R, Option<Arc<Pause>>), AdminError>,
    ) -> Result<R, AdminError> {
        let _ops = self.ops.lock().await;
        let table = self.table.load_full();
        let mut route = AppRoute::clone(table.get(app).ok_or_else(|| not_found(app))?);
        let (out, release) = f(&mut route)?;
        self.ledger.save_route(app, route.record(), false)?;
        self.table.store(Arc::new(table.with(route)));
        if let Some(gate) = release {
            gate.release();
        }
        Ok(out)
    }

    /// Removes an app's route and its ledger entry: its environment is
    /// gone. Its requests get "no route" from now on (on the host's entry
    /// point, the unknown-host answer). Idempotent.
    pub async fn forget(&self, app: &str) -> Result<AdminResult, AdminError> {
        let _ops = self.ops.lock().await;
        let table = self.table.load_full();
        self.ledger.forget_app(app)?;
        if table.get(app).is_some() {
            self.table.store(Arc::new(table.without(app)));
            tracing::info!(app = %app, "route forgotten");
        }
        self.routes()
    }

    pub async fn pause(&self, a: PauseArgs) -> Result<AdminResult, AdminError> {
        let _ops = self.ops.lock().await;
        let table = self.table.load_full();
        let mut route = AppRoute::clone(table.get(&a.app).ok_or_else(|| not_found(&a.app))?);
        if route.pause.is_none() {
            let wait = Duration::from_millis(a.max_wait_ms);
            route.pause = Some(Arc::new(Pause::new(a.max_queue, wait)));
            self.table.store(Arc::new(table.with(route)));
            tracing::info!(app = %a.app, "paused");
        }
        Ok(AdminResult::Paused {
            app: a.app,
            paused: true,
        })
    }

    pub async fn resume(&self, app: String) -> Result<AdminResult, AdminError> {
        let _ops = self.ops.lock().await;
        let table = self.table.load_full();
        let mut route = AppRoute::clone(table.get(&app).ok_or_else(|| not_found(&app))?);
        if let Some(gate) = route.pause.take() {
            // Publish the unpaused table before waking the held requests, so
            // they route instead of finding the gate again.
            self.table.store(Arc::new(table.with(route)));
            gate.released.send_replace(true);
            tracing::info!(app = %app, "resumed");
        }
        Ok(AdminResult::Paused { app, paused: false })
    }

    pub fn routes(&self) -> Result<AdminResult, AdminError> {
        let table = self.table.load();
        let is_default = (!table.hosts_only)
            .then(|| table.default_route())
            .flatten()
            .map(|r| Arc::clone(&r.name));
        let status = |t: &Arc<Target>| TargetStatus {
            target: t.addr.clone(),
            release: t.release.to_string(),
            slot: t.slot.as_deref().map(str::to_owned),
            in_flight: t.in_flight(),
        };
        let routes = table
            .routes()
            .iter()
            .map(|r| RouteStatus {
                app: r.name.to_string(),
                hosts: r.hosts.clone(),
                active: r.active.as_ref().map(status),
                previous: r.previous.as_ref().map(|p| TargetStatus {
                    target: p.target.clone(),
                    release: p.release.clone(),
                    slot: p.slot.clone(),
                    in_flight: 0,
                }),
                draining: r.draining.iter().map(status).collect(),
                paused: r.pause.is_some(),
                held: r
                    .pause
                    .as_ref()
                    .map(|p| p.queued.load(Ordering::SeqCst))
                    .unwrap_or(0),
                is_default: is_default.as_ref() == Some(&r.name),
                maintenance: r.maintenance.as_ref().map(|m| m.record.clone()),
            })
            .collect();
        Ok(AdminResult::Routes { routes })
    }
}

struct Change<'a> {
    app: &'a str,
    target: Arc<Target>,
    hosts: Option<Vec<String>>,
    health: Option<HealthCheck>,
    drain_timeout: Duration,
    kind: ChangeKind,
    attempts: u32,
    started: Instant,
}

/// Why the route changes, which decides the checks and the ledger's
/// bookkeeping.
enum ChangeKind {
    Deploy,
    /// The `rollback` verb: current and previous deployment swap.
    Rollback,
    /// The analysis going back from `from`, which failed.
    SwitchBack {
        from: TargetRecord,
        deployment_id: String,
        reason: String,
    },
}

fn not_found(app: &str) -> AdminError {
    admin_err(
        AdminErrorKind::NotFound,
        format!("no app `{app}` is routed by this agent; deploy it first"),
    )
}
