//! The operator's hooks (`hooks.*` in `deployment.yml`): `pre_deploy` and
//! `post_deploy` on this machine, `pre_switch` inside the new release's
//! container. Each is a deploy step with its duration; its output is shown
//! live, prefixed, and its last lines go into the error when it fails.
//!
//! The environment of a hook on this machine is the operator's own plus the
//! deploy's facts ([`host_env`]); nothing from `.env.<env>` is ever added
//! (Slipway reads that file, it never exports it). A hook in the container
//! runs with the release's own environment plus the same facts.
//!
//! A hook past `hooks.timeout` is killed: on this machine its whole process
//! group (it runs in one of its own), so a script's children go too; in the
//! container the deploy stops waiting and its undo removes the container,
//! which ends whatever the hook left running. Being in its own group, a hook
//! does not get the terminal's Ctrl-C; so from the first hook on, SIGINT or
//! SIGTERM to Slipway kills the running hook's group and then ends Slipway
//! (exit 130 or 143), as the signal would have (the next command repairs an
//! interrupted deploy).

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use slipway_core::config::hooks::{Hook, HookPoint};
use tokio::io::AsyncReadExt;

use super::context::{StepError, Target};
use super::progress::Progress;
use super::release::Release;
use crate::output::Printer;
use crate::providers::docker::names::Slot;

/// Lines of a hook's output kept for its error.
const TAIL_LINES: usize = 20;
/// How long output is still read after a hook's process ended (a child it
/// left in the background may hold the pipe open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What every hook is told about the deploy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub environment: String,
    pub app: String,
    pub release: String,
    pub version: String,
    pub commit: String,
    pub git_ref: String,
    pub previous_release: Option<String>,
    pub deployment_id: String,
    pub deployer: String,
    pub url: String,
    pub repo_root: String,
}

impl Facts {
    pub fn new(t: &Target, release: &Release, deployment_id: &str, previous: Option<&str>) -> Self {
        Self {
            environment: t.config.environment.clone(),
            app: t.config.settings.app.name.clone(),
            release: release.id.clone(),
            version: release.version.clone(),
            commit: release.commit.clone(),
            git_ref: release.git_ref.clone(),
            previous_release: previous.map(str::to_string),
            deployment_id: deployment_id.to_string(),
            deployer: release.deployer.clone(),
            url: public_url(t),
            repo_root: t.config.root.display().to_string(),
        }
    }
}

/// Where the public reaches the environment: its first hostname, else the
/// agent's port on the engine's host.
fn public_url(t: &Target) -> String {
    use slipway_core::config::schema::{Tls, TlsMode};
    let d = &t.config.settings.deployment;
    match d.all_hostnames().first() {
        Some(host) if d.tls == Tls::Mode(TlsMode::Off) => format!("http://{host}/"),
        Some(host) => format!("https://{host}/"),
        None => t.public_url("/"),
    }
}

/// How the deploy ended, for `post_deploy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `succeeded`, `failed` or `rolled_back`.
    pub status: &'static str,
    /// The slot the release was started in, if it got that far.
    pub slot: Option<String>,
    pub runtime_ms: u64,
    /// The failed step and why (`failed` and `rolled_back` only).
    pub failed_step: Option<String>,
    pub error: Option<String>,
}

/// Names of the variables [`host_env`] may set, for removal of stale
/// inherited ones and for the README's table (a test keeps them in step).
pub const HOST_VARS: &[&str] = &[
    "SLIPWAY_HOOK",
    "SLIPWAY_ENVIRONMENT",
    "SLIPWAY_APP",
    "SLIPWAY_RELEASE",
    "SLIPWAY_VERSION",
    "SLIPWAY_COMMIT",
    "SLIPWAY_REF",
    "SLIPWAY_PREVIOUS_RELEASE",
    "SLIPWAY_DEPLOYMENT_ID",
    "SLIPWAY_DEPLOYER",
    "SLIPWAY_URL",
    "SLIPWAY_REPO_ROOT",
    "SLIPWAY_DEPLOY_STATUS",
    "SLIPWAY_SLOT",
    "SLIPWAY_RUNTIME_MS",
    "SLIPWAY_FAILED_STEP",
    "SLIPWAY_ERROR",
];

/// The facts a hook on this machine gets, added to the operator's own
/// environment. `outcome` only for `post_deploy`.
pub fn host_env(
    f: &Facts,
    point: HookPoint,
    outcome: Option<&Outcome>,
) -> Vec<(&'static str, String)> {
    let mut env = shared_facts(f, point);
    env.extend([
        ("SLIPWAY_REF", f.git_ref.clone()),
        ("SLIPWAY_DEPLOYER", f.deployer.clone()),
        ("SLIPWAY_URL", f.url.clone()),
        ("SLIPWAY_REPO_ROOT", f.repo_root.clone()),
    ]);
    if let Some(o) = outcome {
        env.push(("SLIPWAY_DEPLOY_STATUS", o.status.to_string()));
        env.push(("SLIPWAY_SLOT", o.slot.clone().unwrap_or_default()));
        env.push(("SLIPWAY_RUNTIME_MS", o.runtime_ms.to_string()));
        if let Some(step) = &o.failed_step {
            env.push(("SLIPWAY_FAILED_STEP", step.clone()));
        }
        if let Some(e) = &o.error {
            env.push(("SLIPWAY_ERROR", e.clone()));
        }
    }
    env
}

/// The facts for `pre_switch`, as `NAME=value` for the exec (the
/// container has the release's own environment already).
pub fn container_env(f: &Facts, slot: Slot) -> Vec<String> {
    let mut env = shared_facts(f, HookPoint::PreSwitch);
    env.push(("SLIPWAY_SLOT", slot.to_string()));
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The facts every hook gets, wherever it runs.
fn shared_facts(f: &Facts, point: HookPoint) -> Vec<(&'static str, String)> {
    vec![
        ("SLIPWAY_HOOK", point.key().to_string()),
        ("SLIPWAY_ENVIRONMENT", f.environment.clone()),
        ("SLIPWAY_APP", f.app.clone()),
        ("SLIPWAY_RELEASE", f.release.clone()),
        ("SLIPWAY_VERSION", f.version.clone()),
        ("SLIPWAY_COMMIT", f.commit.clone()),
        (
            "SLIPWAY_PREVIOUS_RELEASE",
            f.previous_release.clone().unwrap_or_default(),
        ),
        ("SLIPWAY_DEPLOYMENT_ID", f.deployment_id.clone()),
    ]
}

/// How a hook's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i64),
    /// Killed by a signal (on this machine).
    Signalled(i32),
    TimedOut(Duration),
    CouldNotStart(String),
}

/// A hook's run: how it ended and its last lines of output.
#[derive(Clone, Debug)]
pub struct HookRun {
    pub ended: Ended,
    pub tail: Vec<String>,
}

/// `Ok(detail)` when the hook passed, else the step's error (pure: the
/// wording of every hook failure lives here).
pub fn judge(
    t_env: &str,
    point: HookPoint,
    hook: &Hook,
    run: &HookRun,
) -> Result<String, StepError> {
    let what = format!("the {} `{}`", point.step(), hook.display());
    let why = match &run.ended {
        Ended::Exited(0) => return Ok(format!("`{}` passed", hook.display())),
        Ended::Exited(code) => format!("exited with code {code}"),
        Ended::Signalled(sig) => format!("was killed by signal {sig}"),
        Ended::TimedOut(after) => format!(
            "did not finish within hooks.timeout ({}s) and was killed",
            after.as_secs()
        ),
        Ended::CouldNotStart(e) => format!("could not start: {e}"),
    };
    let mut message = format!("{what} {why}");
    if run.tail.is_empty() {
        message.push_str(" (it printed nothing)");
    } else {
        message.push_str("; its last lines:\n");
        message.push_str(
            &run.tail
                .iter()
                .map(|l| format!("      {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    let not_found = matches!(run.ended, Ended::Exited(126 | 127))
        || run
            .tail
            .iter()
            .any(|l| l.contains("executable file not found"));
    let hint = match point {
        HookPoint::PreDeploy => format!(
            "nothing was changed on the target; fix what the hook reports (run it by hand from the repository root: {}), then deploy again",
            hook.display()
        ),
        HookPoint::PreSwitch if not_found => format!(
            "the program is not in the release's image; for an image without a shell write the hook as a list, e.g. [\"/usr/local/bin/app\", \"selftest\"]. Traffic stayed on the current release; try it with `docker exec <container> ...` on a running release of {t_env}"
        ),
        HookPoint::PreSwitch => format!(
            "traffic stayed on the current release and the new container was removed; fix the release (or the hook) and deploy again. To try the hook by hand: `docker exec <a running container of {t_env}> {}`",
            hook.display()
        ),
        HookPoint::PostDeploy => format!(
            "fix the hook (run it by hand from the repository root: {}); it runs again after the next deploy",
            hook.display()
        ),
    };
    Err(StepError::new(message).hint(hint))
}

/// Collects output into lines: each printed live with a prefix, the last
/// [`TAIL_LINES`] kept.
struct Lines<'a> {
    printer: &'a Printer,
    prefix: String,
    partial: [Vec<u8>; 2],
    tail: VecDeque<String>,
}

impl<'a> Lines<'a> {
    fn new(printer: &'a Printer, point: HookPoint) -> Self {
        Self {
            printer,
            prefix: format!("    {} │ ", point.step().trim_end_matches(" hook")),
            partial: [Vec::new(), Vec::new()],
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }

    fn push(&mut self, stderr: bool, bytes: &[u8]) {
        let i = usize::from(stderr);
        self.partial[i].extend_from_slice(bytes);
        while let Some(n) = self.partial[i].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[i].drain(..=n).collect();
            self.line(&line[..n]);
        }
    }

    fn line(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes).trim_end().to_string();
        self.printer.note(&format!("{}{text}", self.prefix));
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(text);
    }

    fn finish(mut self) -> Vec<String> {
        for i in 0..2 {
            let rest = std::mem::take(&mut self.partial[i]);
            if !rest.is_empty() {
                self.line(&rest);
            }
        }
        self.tail.into()
    }
}

/// Spawns `cmd`, trying again briefly on ETXTBSY: a script written just
/// before (by a hook generator, or another thread of this process) can be
/// held open for writing by a child forked meanwhile, until that child's
/// exec closes it (the same race cargo retries on).
async fn spawn_retrying_busy(
    cmd: &mut tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            other => return other,
        }
    }
}

/// Runs a hook on this machine from the repository root, in a process
/// group of its own, with `env` added to the operator's environment.
pub async fn run_on_host(
    root: &Path,
    timeout: Duration,
    point: HookPoint,
    hook: &Hook,
    env: &[(&'static str, String)],
    printer: &Printer,
) -> HookRun {
    let mut argv = hook.argv();
    // A program with a `/` is relative to the repository root (as
    // `config validate` checked it), whatever the child's cwd semantics.
    if let Hook::Argv(_) = hook
        && argv[0].contains('/')
    {
        argv[0] = root.join(&argv[0]).display().to_string();
    }
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in HOST_VARS {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut lines = Lines::new(printer, point);
    let mut child = match spawn_retrying_busy(&mut cmd).await {
        Ok(c) => c,
        Err(e) => {
            return HookRun {
                ended: Ended::CouldNotStart(format!("{}: {e}", argv[0])),
                tail: Vec::new(),
            };
        }
    };
    let group = child.id().map(|id| id as i32);
    RUNNING_GROUP.store(group.unwrap_or(0), Ordering::SeqCst);
    watch_interrupts();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let (mut out_buf, mut err_buf) = ([0u8; 4096], [0u8; 4096]);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut ended = None;
    let mut grace_until = None;
    while out.is_some() || err.is_some() || ended.is_none() {
        let stop = grace_until.unwrap_or(deadline);
        tokio::select! {
            n = read(&mut out, &mut out_buf), if out.is_some() => match n {
                Some(n) => lines.push(false, &out_buf[..n]),
                None => out = None,
            },
            n = read(&mut err, &mut err_buf), if err.is_some() => match n {
                Some(n) => lines.push(true, &err_buf[..n]),
                None => err = None,
            },
            status = child.wait(), if ended.is_none() => {
                ended = Some(match status {
                    Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                        (Some(code), _) => Ended::Exited(i64::from(code)),
                        (None, Some(sig)) => Ended::Signalled(sig),
                        (None, None) => Ended::Exited(-1),
                    },
                    Err(e) => Ended::CouldNotStart(e.to_string()),
                });
                grace_until = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            },
            _ = tokio::time::sleep_until(stop) => {
                if ended.is_none() {
                    kill_group(group);
                    let _ = child.wait().await;
                    ended = Some(Ended::TimedOut(timeout));
                    grace_until = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                } else {
                    break; // output still open after the grace: stop reading
                }
            },
        }
    }
    RUNNING_GROUP.store(0, Ordering::SeqCst);
    HookRun {
        ended: ended.unwrap_or(Ended::Exited(-1)),
        tail: lines.finish(),
    }
}

/// Reads some bytes; `None` at the end (or on an error) of the stream.
async fn read(stream: &mut Option<impl AsyncReadExt + Unpin>, buf: &mut [u8]) -> Option<usize> {
    match stream.as_mut()?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The process group of the hook running on this machine (0: none).
static RUNNING_GROUP: AtomicI32 = AtomicI32::new(0);

/// Once per process: SIGINT or SIGTERM kill the running hook's group, then
/// end Slipway with 130 or 143 (tokio keeps its handler for good once
/// installed, so this stays the behaviour for the rest of the command).
fn watch_interrupts() {
    static WATCHING: std::sync::Once = std::sync::Once::new();
    WATCHING.call_once(|| {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::spawn(async move {
            let code = tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            };
            kill_group(Some(RUNNING_GROUP.load(Ordering::SeqCst)));
            std::process::exit(code);
        });
    });
}

/// SIGKILL to the hook's whole process group.
fn kill_group(group: Option<i32>) {
    if let Some(pgid) = group.filter(|p| *p > 0) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it touches no memory of ours.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Runs `pre_switch` inside `container` (`docker exec`, as the image's
/// user), with the facts added to the release's environment.
pub async fn run_in_container(
    t: &Target,
    container: &str,
    hook: &Hook,
    env: &[String],
    printer: &Printer,
) -> HookRun {
    let timeout = t.config.settings.hooks.timeout.0;
    let mut lines = Lines::new(printer, HookPoint::PreSwitch);
    let argv = hook.argv();
    let exec = t
        .engine
        .exec_streaming(container, &argv, env, |stderr, bytes| {
            lines.push(stderr, bytes)
        });
    let ended = match tokio::time::timeout(timeout, exec).await {
        Ok(Ok(code)) => Ended::Exited(code),
        Ok(Err(e)) => Ended::CouldNotStart(e.to_string()),
        Err(_) => Ended::TimedOut(timeout),
    };
    HookRun {
        ended,
        tail: lines.finish(),
    }
}

/// `hooks.pre_deploy`: refuses the deploy when it fails.
pub async fn pre_deploy(
    t: &Target,
    facts: &Facts,
    progress: &mut Progress<'_>,
) -> Result<(), StepError> {
    let Some(hook) = &t.config.settings.hooks.pre_deploy else {
        return Ok(());
    };
    let point = HookPoint::PreDeploy;
    let s = Instant::now();
    progress.note(&format!("running the {}: {}", point.step(), hook.display()));
    let run = on_host(t, point, hook, &host_env(facts, point, None), progress).await;
    finish_step(t, point, hook, &run, s, progress)
}

/// `hooks.pre_switch`: once the new slot is healthy, inside it.
pub async fn pre_switch(
    t: &Target,
    facts: &Facts,
    slot: Slot,
    progress: &mut Progress<'_>,
) -> Result<(), StepError> {
    let Some(hook) = &t.config.settings.hooks.pre_switch else {
        return Ok(());
    };
    let point = HookPoint::PreSwitch;
    let s = Instant::now();
    let container = t.names.slot(slot);
    match super::slot::wait_healthy(t, slot).await? {
        Some(attempts) => progress.note(&format!(
            "{container} is healthy ({attempts} checks); running the {} in it: {}",
            point.step(),
            hook.display()
        )),
        None => progress.note(&format!(
            "note: the agent predates `ctl probe`, so the {} runs without waiting for health (`slipway agent upgrade {}`): {}",
            point.step(),
            t.config.environment,
            hook.display()
        )),
    }
    let env = container_env(facts, slot);
    let run = run_in_container(t, &container, hook, &env, progress.printer()).await;
    finish_step(t, point, hook, &run, s, progress)
}

/// `hooks.post_deploy`: after everything, whatever the outcome. A failure
/// is a warning: the deploy already happened (or failed) and its lock is
/// released, so nothing a notification script does can change it; turning
/// its exit code into the deploy's would tell scripts a live release failed.
pub async fn post_deploy(
    t: &Target,
    facts: &Facts,
    outcome: &Outcome,
    progress: &mut Progress<'_>,
) {
    let Some(hook) = &t.config.settings.hooks.post_deploy else {
        return;
    };
    let point = HookPoint::PostDeploy;
    let s = Instant::now();
    progress.note(&format!(
        "running the {} (deploy {}): {}",
        point.step(),
        outcome.status,
        hook.display()
    ));
    let env = host_env(facts, point, Some(outcome));
    let run = on_host(t, point, hook, &env, progress).await;
    if let Err(e) = finish_step(t, point, hook, &run, s, progress) {
        progress.note(&format!(
            "warning: {}\n    the deploy's result is unchanged ({}): a post-deploy hook never changes it.\n    hint: {}",
            e.message,
            outcome.status,
            e.hint.unwrap_or_default()
        ));
    }
}

/// [`run_on_host`] from the repository root with `hooks.timeout`.
async fn on_host(
    t: &Target,
    point: HookPoint,
    hook: &Hook,
    env: &[(&'static str, String)],
    progress: &Progress<'_>,
) -> HookRun {
    let hooks = &t.config.settings.hooks;
    run_on_host(
        &t.config.root,
        hooks.timeout.0,
        point,
        hook,
        env,
        progress.printer(),
    )
    .await
}

fn finish_step(
    t: &Target,
    point: HookPoint,
    hook: &Hook,
    run: &HookRun,
    started: Instant,
    progress: &mut Progress<'_>,
) -> Result<(), StepError> {
    let judged = judge(&t.config.environment, point, hook, run);
    let detail = match (&judged, &run.ended) {
        (Ok(d), _) => d.clone(),
        (Err(_), Ended::Exited(code)) => format!("failed: exit {code}"),
        (Err(_), Ended::Signalled(sig)) => format!("failed: signal {sig}"),
        (Err(_), Ended::TimedOut(_)) => "failed: timed out, killed".to_string(),
        (Err(_), Ended::CouldNotStart(_)) => "failed: could not start".to_string(),
    };
    progress.done(point.step(), started, judged.is_ok(), detail);
    judged.map(|_| ())
}

/// What `--dry-run` says about the hooks: one line each, in order.
pub fn plan(t: &Target) -> Vec<(HookPoint, String)> {
    let hooks = &t.config.settings.hooks;
    hooks
        .configured()
        .map(|(point, hook)| {
            let place = match point {
                HookPoint::PreDeploy => "here, after the lock, before the build".to_string(),
                HookPoint::PreSwitch => {
                    "in the new slot once healthy, before the switch".to_string()
                }
                HookPoint::PostDeploy => "here, at the end, whatever the outcome".to_string(),
            };
            (point, format!("{} ({place})", hook.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            environment: "production".into(),
            app: "events".into(),
            release: "0123456789ab".into(),
            version: "v1.4.0".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            git_ref: "HEAD".into(),
            previous_release: None,
            deployment_id: "dep_01".into(),
            deployer: "ana".into(),
            url: "https://api.example.org/".into(),
            repo_root: "/src/events".into(),
        }
    }

    fn printer() -> Printer {
        Printer::new(&crate::cli::GlobalArgs {
            config: None,
            json: false,
            log_format: crate::cli::LogFormat::Human,
            verbose: 0,
            overrides: Vec::new(),
        })
    }

    fn get<'a>(env: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn pre_deploy_gets_the_facts_and_no_outcome() {
        let env = host_env(&facts(), HookPoint::PreDeploy, None);
        assert_eq!(get(&env, "SLIPWAY_HOOK"), Some("pre_deploy"));
        assert_eq!(get(&env, "SLIPWAY_ENVIRONMENT"), Some("production"));
        assert_eq!(get(&env, "SLIPWAY_RELEASE"), Some("0123456789ab"));
        assert_eq!(get(&env, "SLIPWAY_PREVIOUS_RELEASE"), Some(""));
        assert_eq!(get(&env, "SLIPWAY_URL"), Some("https://api.example.org/"));
        assert_eq!(get(&env, "SLIPWAY_DEPLOY_STATUS"), None);
        assert_eq!(get(&env, "SLIPWAY_ERROR"), None);
        // Every name set is one of the documented ones.
        for (k, _) in &env {
            assert!(HOST_VARS.contains(k), "{k}");
        }
    }

    #[test]
    fn post_deploy_gets_the_outcome_and_the_error_only_when_failed() {
        let f = Facts {
            previous_release: Some("ba9876543210".into()),
            ..facts()
        };
        let ok = Outcome {
            status: "succeeded",
            slot: Some("green".into()),
            runtime_ms: 31_250,
            failed_step: None,
            error: None,
        };
        let env = host_env(&f, HookPoint::PostDeploy, Some(&ok));
        assert_eq!(get(&env, "SLIPWAY_HOOK"), Some("post_deploy"));
        assert_eq!(get(&env, "SLIPWAY_DEPLOY_STATUS"), Some("succeeded"));
        assert_eq!(get(&env, "SLIPWAY_SLOT"), Some("green"));
        assert_eq!(get(&env, "SLIPWAY_RUNTIME_MS"), Some("31250"));
        assert_eq!(get(&env, "SLIPWAY_PREVIOUS_RELEASE"), Some("ba9876543210"));
        assert_eq!(get(&env, "SLIPWAY_ERROR"), None);
        let failed = Outcome {
            status: "failed",
            slot: None,
            runtime_ms: 900,
            failed_step: Some("pre-switch hook".into()),
            error: Some("the pre-switch hook exited with code 1".into()),
        };
        let env = host_env(&f, HookPoint::PostDeploy, Some(&failed));
        assert_eq!(get(&env, "SLIPWAY_DEPLOY_STATUS"), Some("failed"));
        assert_eq!(get(&env, "SLIPWAY_SLOT"), Some(""));
        assert_eq!(get(&env, "SLIPWAY_FAILED_STEP"), Some("pre-switch hook"));
        assert!(get(&env, "SLIPWAY_ERROR").unwrap().contains("code 1"));
        for (k, _) in &env {
            assert!(HOST_VARS.contains(k), "{k}");
        }
    }

    #[test]
    fn the_readme_documents_every_variable() {
        let readme = fs_err::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .unwrap();
        let section = &readme[readme.find("## Hooks").expect("a Hooks section")..];
        for name in HOST_VARS {
            assert!(section.contains(&format!("`{name}`")), "{name}");
        }
    }

    #[test]
    fn the_container_gets_the_facts_as_assignments() {
        let env = container_env(&facts(), Slot::Green);
        assert!(env.contains(&"SLIPWAY_HOOK=pre_switch".to_string()));
        assert!(env.contains(&"SLIPWAY_SLOT=green".to_string()));
        assert!(env.contains(&"SLIPWAY_RELEASE=0123456789ab".to_string()));
        assert!(env.iter().all(|a| a.starts_with("SLIPWAY_")));
    }

    #[test]
    fn failures_say_how_the_hook_ended_with_its_last_lines_and_what_to_do() {
        let hook = Hook::Argv(vec!["deploy/hooks/guard".into()]);
        let run = |ended, tail: &[&str]| HookRun {
            ended,
            tail: tail.iter().map(|s| s.to_string()).collect(),
        };
        assert!(
            judge(
                "prod",
                HookPoint::PreDeploy,
                &hook,
                &run(Ended::Exited(0), &[])
            )
            .is_ok()
        );
        let e = judge(
            "prod",
            HookPoint::PreDeploy,
            &hook,
            &run(Ended::Exited(3), &["refusing: not on main"]),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("pre-deploy hook `deploy/hooks/guard` exited with code 3"),
            "{}",
            e.message
        );
        assert!(e.message.contains("refusing: not on main"), "{}", e.message);
        assert!(e.hint.unwrap().contains("nothing was changed"));
        let e = judge(
            "prod",
            HookPoint::PreDeploy,
            &hook,
            &run(Ended::TimedOut(Duration::from_secs(300)), &[]),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("within hooks.timeout (300s) and was killed"),
            "{}",
            e.message
        );
        assert!(e.message.contains("printed nothing"), "{}", e.message);
        let shell = Hook::Shell("./smoke.sh".into());
        let e = judge(
            "prod",
            HookPoint::PreSwitch,
            &shell,
            &run(Ended::Exited(127), &[]),
        )
        .unwrap_err();
        assert!(e.hint.unwrap().contains("write the hook as a list"));
        let e = judge(
            "prod",
            HookPoint::PreSwitch,
            &shell,
            &run(Ended::Exited(1), &["boom"]),
        )
        .unwrap_err();
        assert!(e.hint.unwrap().contains("traffic stayed"));
    }

    #[test]
    fn output_is_split_into_lines_and_only_the_tail_is_kept() {
        let printer = printer();
        let mut lines = Lines::new(&printer, HookPoint::PreDeploy);
        lines.push(false, b"one\ntw");
        lines.push(true, b"err\n");
        lines.push(false, b"o\n");
        for i in 0..30 {
            lines.push(false, format!("line {i}\n").as_bytes());
        }
        lines.push(false, b"no newline");
        let tail = lines.finish();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "no newline");
        assert_eq!(tail[0], "line 11");
        let mut lines = Lines::new(&printer, HookPoint::PreDeploy);
        lines.push(false, b"one\ntw");
        lines.push(true, b"err\n");
        lines.push(false, b"o\n");
        assert_eq!(lines.finish(), vec!["one", "err", "two"]);
    }

    fn script(dir: &Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        fs_err::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        name.to_string()
    }

    #[tokio::test]
    async fn a_host_hook_runs_from_the_root_with_the_facts_and_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let name = script(
            dir.path(),
            "hook",
            "echo \"release=$SLIPWAY_RELEASE cwd=$(pwd)\"\necho oops >&2\nexit 4\n",
        );
        let env = host_env(&facts(), HookPoint::PreDeploy, None);
        let run = run_on_host(
            dir.path(),
            Duration::from_secs(30),
            HookPoint::PreDeploy,
            &Hook::Argv(vec![format!("./{name}")]),
            &env,
            &printer(),
        )
        .await;
        assert_eq!(run.ended, Ended::Exited(4));
        let cwd = dir.path().canonicalize().unwrap();
        assert!(
            run.tail
                .contains(&format!("release=0123456789ab cwd={}", cwd.display())),
            "{:?}",
            run.tail
        );
        assert!(run.tail.contains(&"oops".to_string()), "{:?}", run.tail);
        let shell = run_on_host(
            dir.path(),
            Duration::from_secs(30),
            HookPoint::PostDeploy,
            &Hook::Shell("test \"$SLIPWAY_HOOK\" = post_deploy".into()),
            &host_env(&facts(), HookPoint::PostDeploy, None),
            &printer(),
        )
        .await;
        assert_eq!(shell.ended, Ended::Exited(0), "{:?}", shell.tail);
        let missing = run_on_host(
            dir.path(),
            Duration::from_secs(30),
            HookPoint::PreDeploy,
            &Hook::Argv(vec!["no/such/hook".into()]),
            &env,
            &printer(),
        )
        .await;
        assert!(
            matches!(missing.ended, Ended::CouldNotStart(_)),
            "{missing:?}"
        );
    }

    #[tokio::test]
    async fn a_host_hook_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        // The hook starts a child that would outlive it, then hangs.
        let name = script(
            dir.path(),
            "hang",
            "sleep 600 &\necho $! > child.pid\necho started\nwait\n",
        );
        let started = Instant::now();
        let run = run_on_host(
            dir.path(),
            Duration::from_millis(1500),
            HookPoint::PreDeploy,
            &Hook::Argv(vec![format!("./{name}")]),
            &[],
            &printer(),
        )
        .await;
        assert_eq!(run.ended, Ended::TimedOut(Duration::from_millis(1500)));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(run.tail, vec!["started"]);
        let pid = fs_err::read_to_string(dir.path().join("child.pid")).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        // Killed with its group: gone, or a zombie until init reaps it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit(") ").next().map(|r| r.chars().next()));
            if matches!(state, None | Some(Some('Z'))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the hook's child still runs: {state:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
