//! Maintenance mode through the host's agent: put on and lift (with their
//! `maintenance.on` / `maintenance.off` events), for `slipway maintenance`
//! and for `slipway deploy --maintenance`, which puts it on right before
//! its migration and lifts it once traffic is safe again: after the switch
//! to the new release, or after the undo put the old one back. A deploy
//! killed meanwhile leaves it on; `status` and the next deploy say so.

use std::time::Duration;

use serde_json::json;
use slipway_core::admin::{AdminRequest, AdminResult, MaintenanceOffArgs};
use slipway_core::ledger::AppLedger;
use slipway_core::maintenance::{Maintenance, MaintenanceMode, MaintenanceOnArgs};
use slipway_core::notify::{EventKind, Severity};

use super::context::{StepError, Target};
use super::events;
use crate::output::Printer;

/// How to answer while it is on.
#[derive(Clone, Debug)]
pub struct Request {
    pub mode: MaintenanceMode,
    pub retry_after: Duration,
    pub message: Option<String>,
    pub hold_max_wait: Duration,
    /// The deploy that puts it on, if any.
    pub deployment_id: Option<String>,
}

impl Request {
    /// The page as `deployment.maintenance` configures it.
    pub fn configured(t: &Target) -> Self {
        let m = &t.config.settings.deployment.maintenance;
        Self {
            mode: MaintenanceMode::Page,
            retry_after: m.retry_after.0,
            message: m.message.clone(),
            hold_max_wait: Duration::from_millis(
                slipway_core::maintenance::DEFAULT_HOLD_MAX_WAIT_MS,
            ),
            deployment_id: None,
        }
    }
}

/// The maintenance the agent keeps for this environment, if on.
pub fn current(ledger: Option<&AppLedger>) -> Option<&Maintenance> {
    ledger?.route.as_ref()?.maintenance.as_ref()
}

/// The command that lifts it, for messages.
pub fn lift_command(t: &Target) -> String {
    format!("slipway maintenance off {}", t.config.environment)
}

/// Put it on (or change how it answers); returns (now, before).
pub async fn on(
    t: &Target,
    printer: &Printer,
    r: &Request,
    about: &events::About,
) -> Result<(Maintenance, Option<Maintenance>), StepError> {
    let request = AdminRequest::MaintenanceOn(MaintenanceOnArgs {
        app: t.names.route(),
        mode: r.mode,
        retry_after_secs: r.retry_after.as_secs(),
        message: r.message.clone(),
        by: crate::identity::deployer(&t.config.root),
        deployment_id: r.deployment_id.clone(),
        hold_max_wait_ms: u64::try_from(r.hold_max_wait.as_millis()).unwrap_or(u64::MAX),
    });
    let (now, before) = match t.agent_call(request).await {
        Ok(AdminResult::Maintenance {
            maintenance: Some(now),
            before,
            ..
        }) => (*now, before.map(|b| *b)),
        Ok(other) => {
            return Err(StepError::new(format!(
                "unexpected agent answer to maintenance_on: {other:?}"
            )));
        }
        Err(e) => {
            return Err(StepError::new(format!(
                "could not put {} in maintenance mode: {e}",
                t.config.environment
            ))
            .hint(format!(
                "an agent older than maintenance mode refuses the verb: `slipway agent upgrade {}`; \
                 otherwise `docker logs {}` says why",
                t.config.environment,
                t.names.agent()
            )));
        }
    };
    if before.is_none() {
        let e = events::event(
            t,
            EventKind::MaintenanceOn,
            Severity::Warning,
            about,
            format!("{}: maintenance mode on", events::subject(t)),
            format!(
                "{} answers the public with the maintenance page ({})",
                t.config.environment,
                now.describe()
            ),
            json!({ "maintenance": now }),
        );
        events::raise(t, printer, e).await;
    }
    Ok((now, before))
}

/// Lift it; returns what was lifted (none: it was off).
pub async fn off(
    t: &Target,
    printer: &Printer,
    about: &events::About,
) -> Result<Option<Maintenance>, StepError> {
    let request = AdminRequest::MaintenanceOff(MaintenanceOffArgs {
        app: t.names.route(),
        by: crate::identity::deployer(&t.config.root),
    });
    let lifted = match t.agent_call(request).await {
        Ok(AdminResult::Maintenance { before, .. }) => before.map(|b| *b),
        Ok(other) => {
            return Err(StepError::new(format!(
                "unexpected agent answer to maintenance_off: {other:?}"
            )));
        }
        Err(e) => {
            return Err(StepError::new(format!(
                "could not lift maintenance mode of {}: {e}",
                t.config.environment
            ))
            .hint(format!(
                "the public still gets the maintenance page; retry with `{}`",
                lift_command(t)
            )));
        }
    };
    if let Some(m) = &lifted {
        let e = events::event(
            t,
            EventKind::MaintenanceOff,
            Severity::Info,
            about,
            format!("{}: maintenance mode off", events::subject(t)),
            format!(
                "{} serves its release again after {} in maintenance",
                t.config.environment,
                on_for(m)
            ),
            json!({ "lifted": m, "on_for_secs": on_for_secs(m) }),
        );
        events::raise(t, printer, e).await;
    }
    Ok(lifted)
}

fn on_for_secs(m: &Maintenance) -> i64 {
    (time::OffsetDateTime::now_utc() - m.since)
        .whole_seconds()
        .max(0)
}

/// How long it has been on, for people: `42s`, `5m 3s`, `2h 10m`.
pub fn on_for(m: &Maintenance) -> String {
    let s = on_for_secs(m);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// Whether a deploy left it on: it names a deployment whose lock is gone
/// or is not the deployment holding the lock now.
pub fn left_by_interrupted_deploy(ledger: &AppLedger) -> Option<&str> {
    let m = current(Some(ledger))?;
    let id = m.deployment_id.as_deref()?;
    let running = ledger
        .lock
        .as_ref()
        .is_some_and(|l| l.deployment_id == id && !super::lock::is_orphaned(l));
    (!running).then_some(id)
}

/// The status line(s) about it.
pub fn describe(t: &Target, ledger: &AppLedger) -> Vec<String> {
    let Some(m) = current(Some(ledger)) else {
        return Vec::new();
    };
    let mut lines = vec![format!(
        "ON for {}: the public gets 503 and the maintenance page ({})",
        on_for(m),
        m.describe()
    )];
    if let Some(msg) = &m.message {
        lines.push(format!("message: {msg}"));
    }
    if let Some(id) = left_by_interrupted_deploy(ledger) {
        lines.push(format!(
            "left on by deployment {id}, which did not finish; once the serving release is \
             right, lift it: {}",
            lift_command(t)
        ));
    } else {
        lines.push(format!("lift it with: {}", lift_command(t)));
    }
    lines
}

/// A deploy's part in maintenance mode.
#[derive(Debug, Default)]
pub struct InDeploy {
    /// This deploy put it on (or adopted one an interrupted deploy left)
    /// and lifts it once traffic is safe.
    pub owned: Option<std::time::Instant>,
    /// It was on before this deploy and stays on: the public port answers
    /// the page, so the deploy cannot confirm or watch through it.
    pub kept: bool,
    /// Left on by an interrupted deploy and taken over by this one (put on
    /// again in its name before the migrate step, whatever is pending).
    pub adopted: bool,
}

/// At the lock: a maintenance already on is either adopted (`deploy
/// --maintenance` over one an interrupted deploy left) or kept (one put on
/// by hand stays for the operator to lift). Says which.
pub fn at_lock(
    t: &Target,
    ledger: Option<&AppLedger>,
    wanted: bool,
    note: &dyn Fn(&str),
) -> InDeploy {
    let Some(m) = current(ledger) else {
        return InDeploy::default();
    };
    let left = ledger.and_then(left_by_interrupted_deploy);
    if wanted && left.is_some() {
        note(&format!(
            "maintenance mode is on, left by an interrupted deploy ({}); this deploy takes it \
             over and lifts it after its switch",
            m.describe()
        ));
        return InDeploy {
            adopted: true,
            ..InDeploy::default()
        };
    }
    note(&format!(
        "maintenance mode is on ({}); this deploy leaves it on, so it cannot confirm the release \
         through the public port. Lift it when ready: {}",
        m.describe(),
        lift_command(t)
    ));
    InDeploy {
        kept: true,
        ..InDeploy::default()
    }
}

/// `deploy --maintenance`, right before the migrate step: on, unless there
/// is nothing to migrate, nothing serving yet, or it is kept anyway.
/// Returns the step's detail.
pub async fn before_migrate(
    t: &Target,
    printer: &Printer,
    state: &mut InDeploy,
    deployment_id: &str,
    nothing_pending: bool,
    serving: bool,
    about: &events::About,
) -> Result<String, StepError> {
    if state.kept {
        return Ok("already on (kept: it was put on by hand)".into());
    }
    if !serving {
        return Ok("skipped: nothing serves yet, so nobody needs the page".into());
    }
    if nothing_pending && !state.adopted {
        return Ok("skipped: nothing to migrate, so no downtime is needed".into());
    }
    let r = Request {
        deployment_id: Some(deployment_id.to_owned()),
        ..Request::configured(t)
    };
    let (now, _) = on(t, printer, &r, about).await?;
    state.owned = Some(std::time::Instant::now());
    Ok(format!(
        "on: the public gets the maintenance page (Retry-After {}s) while the migration runs with \
         statement_timeout and lock_timeout {}",
        now.retry_after_secs,
        slipway_core::config::schema::format_duration(
            t.config.settings.deployment.maintenance.migration_timeout.0
        )
    ))
}

/// The configuration the maintenance migration runs with: the ordinary
/// timeouts (sized for live traffic) replaced by `migration_timeout`.
pub fn extended_timeouts(
    config: &slipway_core::config::ResolvedConfig,
) -> slipway_core::config::ResolvedConfig {
    let mut config = config.clone();
    let timeout = config
        .settings
        .deployment
        .maintenance
        .migration_timeout
        .clone();
    let migration = &mut config.settings.database.migration;
    migration.statement_timeout = Some(timeout.clone());
    migration.lock_timeout = Some(timeout);
    config
}

/// Lift the maintenance this deploy owns (after its switch, or after its
/// undo put traffic back on a healthy release). Returns how long it was
/// on, in seconds.
pub async fn lift_owned(
    t: &Target,
    printer: &Printer,
    state: &mut InDeploy,
    about: &events::About,
) -> Result<Option<f64>, StepError> {
    let Some(since) = state.owned else {
        return Ok(None);
    };
    off(t, printer, about).await?;
    state.owned = None;
    Ok(Some(since.elapsed().as_secs_f64()))
}

/// After a failed deploy's undo: lift it when traffic is safe (the old
/// release never stopped serving, or the undo switched back to it);
/// otherwise leave it on and say how to lift it. Returns what to add to
/// the failure's hint.
pub async fn after_failure(
    t: &Target,
    progress: &mut super::progress::Progress<'_>,
    state: &mut InDeploy,
    traffic_safe: bool,
    about: &events::About,
) -> Option<String> {
    state.owned?;
    let s = std::time::Instant::now();
    if !traffic_safe {
        progress.done(
            "maintenance",
            s,
            false,
            "left ON: no healthy release serves traffic",
        );
        return Some(format!(
            "maintenance mode stays on: the undo could not put traffic back on a healthy \
             release. Once one serves (`slipway rollback {env}`, or a fixed deploy), lift it: {}",
            lift_command(t),
            env = t.config.environment
        ));
    }
    match lift_owned(t, progress.printer(), state, about).await {
        Ok(secs) => {
            progress.done(
                "maintenance",
                s,
                true,
                format!(
                    "lifted after {:.1}s: the previous release serves again",
                    secs.unwrap_or_default()
                ),
            );
            None
        }
        Err(e) => {
            progress.done("maintenance", s, false, format!("FAILED to lift: {e}"));
            Some(format!(
                "maintenance mode is still on although the previous release serves; lift it: {}",
                lift_command(t)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        let at = |secs: i64| Maintenance {
            mode: MaintenanceMode::Page,
            retry_after_secs: 60,
            message: None,
            since: time::OffsetDateTime::now_utc() - time::Duration::seconds(secs),
            by: "a@b".into(),
            deployment_id: None,
            hold_max_wait_ms: 30_000,
        };
        assert_eq!(on_for(&at(42)), "42s");
        assert_eq!(on_for(&at(303)), "5m 3s");
        assert_eq!(on_for(&at(7_800)), "2h 10m");
    }

    #[test]
    fn maintenance_is_left_by_an_interrupted_deploy_unless_that_deploy_still_holds_the_lock() {
        let mut ledger = AppLedger::new("web");
        let now = time::OffsetDateTime::now_utc();
        let mut route = slipway_core::ledger::RouteRecord {
            hosts: vec![],
            active: None,
            previous: None,
            health: Default::default(),
            drain_timeout_ms: 1,
            maintenance: None,
        };
        ledger.route = Some(route.clone());
        assert_eq!(left_by_interrupted_deploy(&ledger), None, "off");
        route.maintenance = Some(Maintenance {
            mode: MaintenanceMode::Page,
            retry_after_secs: 60,
            message: None,
            since: now,
            by: "a@b".into(),
            deployment_id: Some("dep_a".into()),
            hold_max_wait_ms: 30_000,
        });
        ledger.route = Some(route.clone());
        assert_eq!(
            left_by_interrupted_deploy(&ledger),
            Some("dep_a"),
            "no lock"
        );
        let lock = |deployment: &str, pid: u32| slipway_core::ledger::Lock {
            lock_id: "lock_1".into(),
            locked_by: "a@b".into(),
            hostname: crate::owner::hostname(),
            pid,
            deployment_id: deployment.into(),
            locked_at: now,
            lock_expires_at: now,
        };
        ledger.lock = Some(lock("dep_a", std::process::id()));
        assert_eq!(left_by_interrupted_deploy(&ledger), None, "dep_a runs");
        ledger.lock = Some(lock("dep_a", 4_194_305));
        assert_eq!(
            left_by_interrupted_deploy(&ledger),
            Some("dep_a"),
            "its process is gone"
        );
        ledger.lock = Some(lock("dep_b", std::process::id()));
        assert_eq!(
            left_by_interrupted_deploy(&ledger),
            Some("dep_a"),
            "another deploy runs"
        );
        if let Some(m) = route.maintenance.as_mut() {
            m.deployment_id = None;
        }
        ledger.route = Some(route);
        assert_eq!(left_by_interrupted_deploy(&ledger), None, "put on by hand");
    }
}
