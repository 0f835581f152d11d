//! The CI gate (preflight, before anything is built): did the commit being
//! deployed pass the checks `deployment.require_ci` names? Refuses a failed
//! or missing check, a dirty work tree, and (inside GitHub Actions) a
//! checkout other than the commit the workflow ran for; waits for pending
//! checks up to `require_ci.wait`. `--skip-ci-check --reason` skips it, and
//! the reason goes into the deployment's history entry.

use std::time::Instant;

use serde::Serialize;
use slipway_core::ci::{self, CheckReport, Verdict};
use slipway_core::config::ResolvedConfig;
use slipway_core::config::schema::{CiProvider, RequireCi};
use slipway_core::secret::Secret;

use super::release::Release;
use crate::exit::Exit;
use crate::forge::github::GitHub;
use crate::forge::{ForgeError, human};

/// The token's name, in the process environment or `.env.<env>`.
pub const TOKEN_VAR: &str = "GITHUB_TOKEN";

#[derive(Clone, Debug, Default)]
pub struct GateOptions {
    /// `--skip-ci-check --reason <why>`.
    pub skip_reason: Option<String>,
    /// `--ref` was given (inside Actions, another commit on purpose).
    pub explicit_ref: bool,
}

/// What the gate decided, as recorded in the deployment's history entry
/// (`extra.ci`) and printed by `slipway ci check --json`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GateOutcome {
    /// No `deployment.require_ci`.
    NotConfigured,
    Skipped {
        reason: String,
    },
    Passed {
        provider: &'static str,
        repository: String,
        commit: String,
        checks: Vec<CheckReport>,
    },
}

impl GateOutcome {
    /// The `extra.ci` value of the history entry (none when not configured).
    pub fn record(&self) -> Option<serde_json::Value> {
        match self {
            GateOutcome::NotConfigured => None,
            other => serde_json::to_value(other).ok(),
        }
    }

    /// One line for progress output.
    pub fn summary(&self) -> String {
        match self {
            GateOutcome::NotConfigured => "CI gate off (no deployment.require_ci)".into(),
            GateOutcome::Skipped { reason } => format!("CI gate skipped: {reason}"),
            GateOutcome::Passed {
                repository, checks, ..
            } => format!(
                "CI passed on {repository}: {}",
                checks
                    .iter()
                    .map(|c| format!("`{}`", c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A refusal: message, hint, exit code, and the checks as last seen.
#[derive(Debug)]
pub struct GateError {
    pub message: String,
    pub hint: String,
    pub exit: Exit,
    pub checks: Vec<CheckReport>,
}

impl From<ForgeError> for GateError {
    fn from(e: ForgeError) -> Self {
        GateError {
            message: e.message,
            hint: e.hint,
            exit: e.exit,
            checks: Vec::new(),
        }
    }
}

fn refuse(exit: Exit, message: impl Into<String>, hint: impl Into<String>) -> GateError {
    GateError {
        message: message.into(),
        hint: hint.into(),
        exit,
        checks: Vec::new(),
    }
}

/// Runs the gate for `release`; `env` is the process environment (for
/// `GITHUB_ACTIONS`, `GITHUB_SHA`, `GITHUB_TOKEN`).
pub async fn check(
    config: &ResolvedConfig,
    release: &Release,
    opts: &GateOptions,
    env: &dyn Fn(&str) -> Option<String>,
    note: &dyn Fn(&str),
) -> Result<GateOutcome, GateError> {
    let environment = &config.environment;
    if let Some(reason) = &opts.skip_reason {
        return Ok(GateOutcome::Skipped {
            reason: reason.clone(),
        });
    }
    ci::actions_commit_rule(
        env("GITHUB_ACTIONS").as_deref(),
        env("GITHUB_SHA").as_deref(),
        &release.commit,
        opts.explicit_ref,
    )
    .map_err(|why| {
        refuse(
            Exit::Failed,
            format!("the commit to deploy is not the one this workflow tested: {why}"),
            format!(
                "deploy the workflow's commit (check out ${{{{ github.sha }}}}), name another one on purpose with --ref, or `slipway deploy {environment} --skip-ci-check --reason \"...\"`"
            ),
        )
    })?;
    let Some(require) = &config.settings.deployment.require_ci else {
        return Ok(GateOutcome::NotConfigured);
    };
    if release.id.contains("-dirty") {
        return Err(refuse(
            Exit::Failed,
            format!(
                "the work tree has uncommitted changes (release {}): CI never tested them",
                release.id
            ),
            format!(
                "commit and push them and let CI pass, or deploy a tested commit with --ref <commit>; `git status` shows what changed. An emergency: `slipway deploy {environment} --skip-ci-check --reason \"...\"`"
            ),
        ));
    }
    let repository = repository(config, require)?;
    let token = env(TOKEN_VAR)
        .filter(|t| !t.trim().is_empty())
        .map(Secret::new)
        .or_else(|| {
            config
                .app_env
                .get(TOKEN_VAR)
                .map(|v| Secret::new(v.value.expose()))
                .filter(|t| !t.is_empty())
        });
    let forge = match require.provider {
        CiProvider::Github => GitHub::new(&require.api_url, &repository, token)?,
    };
    let started = Instant::now();
    let deadline = started + require.wait.0;
    loop {
        let runs = forge.check_runs(&release.commit, deadline, note).await?;
        let (verdict, checks) = ci::evaluate(&require.checks, &runs);
        match verdict {
            Verdict::Passed => {
                return Ok(GateOutcome::Passed {
                    provider: "github",
                    repository,
                    commit: release.commit.clone(),
                    checks,
                });
            }
            Verdict::Failed => {
                return Err(GateError {
                    message: format!(
                        "commit {} has not passed CI on {repository}: {}",
                        short(&release.commit),
                        ci::describe_unpassed(&checks)
                    ),
                    hint: format!(
                        "fix the failing checks and push (or re-run them on the forge); a missing check never ran for this commit: check its name in deployment.require_ci.checks against the job names. An emergency: `slipway deploy {environment} --skip-ci-check --reason \"...\"`"
                    ),
                    exit: Exit::Failed,
                    checks,
                });
            }
            Verdict::Pending => {
                let poll = require.poll_interval.0;
                if Instant::now() + poll > deadline {
                    return Err(GateError {
                        message: format!(
                            "CI has not finished on commit {} after {}: {}",
                            short(&release.commit),
                            human(started.elapsed()),
                            ci::describe_unpassed(&checks)
                        ),
                        hint: format!(
                            "deploy again once the checks finish, or raise deployment.require_ci.wait (now {})",
                            human(require.wait.0)
                        ),
                        exit: Exit::Failed,
                        checks,
                    });
                }
                note(&format!(
                    "waiting for CI on {}: {} ({} left)",
                    short(&release.commit),
                    ci::describe_unpassed(&checks),
                    human(deadline.saturating_duration_since(Instant::now()))
                ));
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// `require_ci.repository`, else `owner/name` of the remote `origin`.
fn repository(config: &ResolvedConfig, require: &RequireCi) -> Result<String, GateError> {
    if let Some(r) = &require.repository {
        return Ok(r.clone());
    }
    let forge_host = url::Url::parse(&require.api_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    let remote = std::process::Command::new("git")
        .arg("-C")
        .arg(&config.root)
        .args(["remote", "get-url", "origin"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    remote
        .as_deref()
        .and_then(|r| ci::repository_from_remote(r, forge_host.as_deref()))
        .ok_or_else(|| {
            refuse(
                Exit::BadInput,
                match &remote {
                    Some(r) => format!(
                        "cannot tell the GitHub repository from the remote `origin` ({})",
                        slipway_core::secret::redact_url(r)
                    ),
                    None => "cannot tell the GitHub repository: the git repository has no remote `origin`".to_string(),
                },
                "set deployment.require_ci.repository: <owner>/<name>",
            )
        })
}

fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}
