//! One-off migrate containers left behind by a command that was killed
//! while its migration ran (`kill -9` of a deploy or of `slipway migrate`).
//! The migration itself keeps running in its container, holding the
//! migration lock, until it ends; only the command that would have removed
//! the container is gone.
//!
//! Found by label (this app and environment, `slipway.task=migrate`), a
//! container is settled here only when its owner is known to be gone (a
//! process of this machine that no longer runs, or a container from a build
//! that recorded no owner). One still running is waited for, up to a bound
//! and with progress, or reported; then its outcome is read and it is
//! removed. A container of a live command, or of another machine, is left
//! alone (the latter with a note).

use std::time::{Duration, Instant};

use super::migrate::{MIGRATE_TASK, MigrateAction, interpret, progress_line};
use super::{TaskContext, TaskError};
use crate::exit::Exit;
use crate::providers::docker::ContainerInfo;
use crate::providers::docker::names::{
    LABEL_APP, LABEL_ENV, LABEL_MANAGED, LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_ROLE, LABEL_TASK,
};

/// What to do with a leftover migration that still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StillRunning {
    /// Wait for it to end, at most this long, then fail naming it (deploy,
    /// rollback: their own migration would wait for its lock anyway).
    Wait(Duration),
    /// Say so and leave it running (`status`).
    Report,
}

/// How often a wait says it is still waiting.
const TICK: Duration = Duration::from_secs(10);

/// Settles this environment's leftover migrate containers; every note
/// (found, waiting, still running, its outcome, removed) goes to `note` as
/// it happens. Fails only when a waited-for migration outlasts the bound,
/// or the engine fails.
pub async fn settle_leftover_migrations(
    ctx: &TaskContext<'_>,
    still_running: StillRunning,
    note: &dyn Fn(&str),
) -> Result<(), TaskError> {
    let labels = [
        format!("{LABEL_MANAGED}=true"),
        format!("{LABEL_APP}={}", ctx.names.app),
        format!("{LABEL_ENV}={}", ctx.names.env),
        format!("{LABEL_ROLE}=task"),
    ];
    let prefix = ctx.names.task("migrate-");
    let found = ctx.engine.containers_with_labels(&labels).await?;
    for c in found.into_iter().filter(|c| is_migrate(c, &prefix)) {
        let owner = Owner::of(&c);
        if !owner.is_gone() {
            if let Owner::Process { host, pid } = &owner
                && *host != crate::owner::hostname()
            {
                note(&format!(
                    "migrate container {} was started by pid {pid} on {host}; left alone \
                     (if that command is gone: `docker logs {0}`, then `docker rm -f {0}`)",
                    c.name
                ));
            }
            continue;
        }
        settle(ctx, &c, &owner, still_running, note).await?;
    }
    Ok(())
}

fn is_migrate(c: &ContainerInfo, prefix: &str) -> bool {
    match c.labels.get(LABEL_TASK) {
        Some(task) => task == MIGRATE_TASK,
        // Builds before the task label named them `<app>-<env>-task-migrate-*`.
        None => c.name.starts_with(prefix),
    }
}

/// Who started a migrate container.
enum Owner {
    Process {
        host: String,
        pid: u32,
    },
    /// A build that recorded no owner: no live command of the current build
    /// can own it.
    Unrecorded,
}

impl Owner {
    fn of(c: &ContainerInfo) -> Owner {
        let host = c.labels.get(LABEL_OWNER_HOST);
        let pid = c.labels.get(LABEL_OWNER_PID).and_then(|p| p.parse().ok());
        match (host, pid) {
            (Some(host), Some(pid)) => Owner::Process {
                host: host.clone(),
                pid,
            },
            _ => Owner::Unrecorded,
        }
    }

    fn is_gone(&self) -> bool {
        match self {
            Owner::Process { host, pid } => crate::owner::is_gone(host, *pid),
            Owner::Unrecorded => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Owner::Process { host, pid } => format!("interrupted command (pid {pid} on {host})"),
            Owner::Unrecorded => "interrupted command (of an earlier Slipway build)".into(),
        }
    }
}

async fn settle(
    ctx: &TaskContext<'_>,
    c: &ContainerInfo,
    owner: &Owner,
    still_running: StillRunning,
    note: &dyn Fn(&str),
) -> Result<(), TaskError> {
    let name = &c.name;
    let who = owner.describe();
    if c.running {
        match still_running {
            StillRunning::Report => {
                note(&format!(
                    "the migration of an {who} is still running in {name}; it holds the \
                     migration lock, so the next deploy waits for it. Follow it with \
                     `docker logs -f {name}`; the next command removes the container once it ends"
                ));
                return Ok(());
            }
            StillRunning::Wait(bound) => {
                note(&format!(
                    "the migration of an {who} is still running in {name} (it holds the \
                     migration lock); waiting up to {}s for it to end",
                    bound.as_secs()
                ));
                wait_for(ctx, name, bound, note).await.map_err(|waited| {
                    TaskError::new(
                        Exit::Conflict,
                        format!(
                            "the migration of an {who} is still running in {name} after waiting {}s; \
                             it holds the migration lock",
                            waited.as_secs()
                        ),
                    )
                    .hint(format!(
                        "follow it with `docker logs -f {name}` and run the command again when it \
                         ends (the container is then removed), or raise database.migration.lock_wait. \
                         To abandon it: `docker rm -f {name}` (a migration in a transaction rolls \
                         back; a `-- slipway:no-transaction` one leaves the database dirty, and \
                         `slipway migrate up {}` prints the recovery)",
                        ctx.config.environment
                    ))
                })?;
            }
        }
    }
    let outcome = outcome(ctx, name).await;
    ctx.engine.remove(name).await?;
    note(&format!(
        "removed the migrate container {name} of an {who}: {outcome}"
    ));
    Ok(())
}

/// Waits for `name` to stop, relaying its progress lines and saying every
/// [`TICK`] that it still waits. `Err(waited)` when `bound` passed first.
async fn wait_for(
    ctx: &TaskContext<'_>,
    name: &str,
    bound: Duration,
    note: &dyn Fn(&str),
) -> Result<(), Duration> {
    let started = Instant::now();
    let mut pending = String::new();
    // Only lines from now on: what ran before was the dead command's to show.
    let relay = ctx.engine.stream_logs(name, true, "0", |chunk| {
        pending.push_str(chunk);
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(progress) = progress_line(&line) {
                note(&format!("  {name}: {progress}"));
            }
        }
    });
    let stopped = ctx.engine.wait(name);
    let deadline = tokio::time::sleep(bound);
    tokio::pin!(relay, stopped, deadline);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let mut relaying = true;
    loop {
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = &mut relay, if relaying => relaying = false,
            _ = &mut deadline => return Err(started.elapsed()),
            _ = tick.tick() => note(&format!(
                "still waiting for {name}: {}s of at most {}s",
                started.elapsed().as_secs(),
                bound.as_secs()
            )),
        }
    }
}

/// What a stopped migrate container did, in words, from its exit code and
/// its report (the same reading the command that died would have done).
async fn outcome(ctx: &TaskContext<'_>, name: &str) -> String {
    let Some(info) = ctx.engine.inspect(name).await else {
        return "it was already gone".into();
    };
    if info.started_at.starts_with("0001-") {
        return "it was created but never started, so nothing ran".into();
    }
    let code = info.exit_code.unwrap_or(-1);
    let (stdout, stderr) = match ctx.engine.logs(name, None).await {
        Ok(logs) => logs,
        Err(e) => return format!("it exited with code {code}; its output is unreadable: {e}"),
    };
    describe(code, &stdout, &stderr, name)
}

/// The outcome of a finished `slipway migrate up` in words.
fn describe(code: i64, stdout: &str, stderr: &str, name: &str) -> String {
    match interpret(
        MigrateAction::Up { limit: None },
        code,
        stdout,
        stderr,
        name,
    ) {
        Ok(report) => {
            let applied = report
                .get("applied")
                .and_then(|a| a.as_array())
                .map_or(0, Vec::len);
            let to = report
                .get("to")
                .filter(|v| !v.is_null())
                .map_or("none".to_string(), ToString::to_string);
            format!("its migration finished ({applied} applied, database at version {to})")
        }
        Err(e) => format!(
            "its migration failed ({}); the next migrate reports where the database stands",
            e.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn container(name: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            image: String::new(),
            running: false,
            crashing: false,
            exit_code: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            id: String::new(),
            network_mode: String::new(),
            started_at: String::new(),
        }
    }

    #[test]
    fn migrate_containers_are_told_by_label_or_by_their_older_name() {
        let prefix = "app-prod-task-migrate-";
        assert!(is_migrate(
            &container("x", &[(LABEL_TASK, MIGRATE_TASK)]),
            prefix
        ));
        assert!(is_migrate(
            &container("app-prod-task-migrate-1a2b3c4d", &[]),
            prefix
        ));
        assert!(!is_migrate(
            &container("x", &[(LABEL_TASK, "other")]),
            prefix
        ));
        assert!(!is_migrate(&container("app-prod-task-other", &[]), prefix));
    }

    #[test]
    fn a_leftover_without_an_owner_is_settled_one_of_a_live_process_is_not() {
        assert!(Owner::of(&container("x", &[])).is_gone());
        let me = std::process::id().to_string();
        let host = crate::owner::hostname();
        let live = container("x", &[(LABEL_OWNER_HOST, &host), (LABEL_OWNER_PID, &me)]);
        assert!(!Owner::of(&live).is_gone());
        let elsewhere = container(
            "x",
            &[
                (LABEL_OWNER_HOST, "other.invalid"),
                (LABEL_OWNER_PID, "4194305"),
            ],
        );
        assert!(!Owner::of(&elsewhere).is_gone());
    }

    #[test]
    fn outcomes_read_as_the_dead_command_would_have_read_them() {
        let ok = describe(
            0,
            r#"{"from": 4, "to": 5, "applied": [{"version": 5}], "adopted": []}"#,
            "",
            "t",
        );
        assert_eq!(
            ok,
            "its migration finished (1 applied, database at version 5)"
        );
        let failed = describe(
            1,
            r#"{"error": {"message": "0005_x.up.sql failed: boom", "exit": 1}}"#,
            "",
            "t",
        );
        assert!(
            failed.contains("failed (0005_x.up.sql failed: boom)"),
            "{failed}"
        );
    }
}
