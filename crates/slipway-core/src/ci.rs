//! The CI gate's decisions, without any I/O: which of a commit's check runs
//! count as passed ([`evaluate`]), what a forge's answer means for the next
//! request (a rate limit to wait out, a refused token, a retry: [`classify`]),
//! which repository the git remote names ([`repository_from_remote`]), and
//! the rule that inside GitHub Actions the deployed commit is the tested one
//! ([`actions_commit_rule`]). The HTTP client lives in the CLI
//! (`slipway/src/forge/github.rs`); the backoff is [`crate::notify::retry`]'s.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// One check run as GitHub's `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`
/// documents it (`check_runs[]`): only the fields the gate reads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct CheckRun {
    #[serde(default)]
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed` (also `waiting`, `requested`, `pending`).
    pub status: String,
    /// Set once `completed`: `success`, `failure`, `neutral`, `cancelled`,
    /// `skipped`, `timed_out`, `action_required`, `stale`, `startup_failure`.
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// One page of that endpoint's answer.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct CheckRunsPage {
    pub total_count: u64,
    pub check_runs: Vec<CheckRun>,
}

/// Where one required check stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CheckState {
    Passed {
        conclusion: String,
    },
    Failed {
        conclusion: String,
    },
    Pending {
        status: String,
    },
    /// The commit has no check run of that name.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub name: String,
    #[serde(flatten)]
    pub state: CheckState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The gate's verdict on one answer of the forge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every required check passed.
    Passed,
    /// A required check failed, or is missing while nothing else is still
    /// running that could still create it: refuse now.
    Failed,
    /// Nothing failed, but something is still running: ask again.
    Pending,
}

/// Conclusions GitHub's required status checks accept as passing.
const PASSING: &[&str] = &["success", "neutral", "skipped"];

/// The verdict for the `required` check names against a commit's check
/// runs, and each required check's state, in the order they were required.
///
/// Several runs of one name (a re-run, or two workflows with the same job
/// name) are judged by the newest (highest id). A missing check counts as
/// pending while any of the commit's other runs is still going (a workflow
/// in progress may still create it), else as failed.
pub fn evaluate(required: &[String], runs: &[CheckRun]) -> (Verdict, Vec<CheckReport>) {
    let reports: Vec<CheckReport> = required
        .iter()
        .map(|name| {
            let newest = runs.iter().filter(|r| r.name == *name).max_by_key(|r| r.id);
            let state = match newest {
                None => CheckState::Missing,
                Some(r) if r.status != "completed" => CheckState::Pending {
                    status: r.status.clone(),
                },
                Some(r) => {
                    let conclusion = r.conclusion.clone().unwrap_or_else(|| "none".into());
                    if PASSING.contains(&conclusion.as_str()) {
                        CheckState::Passed { conclusion }
                    } else {
                        CheckState::Failed { conclusion }
                    }
                }
            };
            CheckReport {
                name: name.clone(),
                state,
                url: newest.and_then(|r| r.html_url.clone()),
            }
        })
        .collect();
    let any = |f: fn(&CheckState) -> bool| reports.iter().any(|r| f(&r.state));
    let others_running = runs.iter().any(|r| r.status != "completed");
    let verdict = if any(|s| matches!(s, CheckState::Failed { .. })) {
        Verdict::Failed
    } else if any(|s| matches!(s, CheckState::Pending { .. })) {
        Verdict::Pending
    } else if any(|s| matches!(s, CheckState::Missing)) {
        if others_running {
            Verdict::Pending
        } else {
            Verdict::Failed
        }
    } else {
        Verdict::Passed
    };
    (verdict, reports)
}

/// `lint (failure), e2e (missing)`: the required checks that did not pass.
pub fn describe_unpassed(reports: &[CheckReport]) -> String {
    reports
        .iter()
        .filter_map(|r| match &r.state {
            CheckState::Passed { .. } => None,
            CheckState::Failed { conclusion } => Some(format!("`{}` ({conclusion})", r.name)),
            CheckState::Pending { status } => Some(format!("`{}` ({status})", r.name)),
            CheckState::Missing => Some(format!("`{}` (missing)", r.name)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which limit the forge said was reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Limit {
    /// The hourly request quota (`x-ratelimit-remaining: 0`).
    Primary {
        /// `x-ratelimit-resource` (`core`, `search`, ...).
        resource: Option<String>,
        /// `x-ratelimit-limit`: requests per hour (60 without a token).
        limit: Option<u64>,
    },
    /// A secondary (abuse) limit: too many requests at once or too fast.
    Secondary,
}

impl Limit {
    pub fn describe(&self) -> String {
        match self {
            Limit::Primary { resource, limit } => format!(
                "GitHub's rate limit{}{}",
                resource
                    .as_ref()
                    .map(|r| format!(" for `{r}`"))
                    .unwrap_or_default(),
                limit
                    .map(|l| format!(" ({l} requests per hour)"))
                    .unwrap_or_default()
            ),
            Limit::Secondary => "GitHub's secondary rate limit (too many requests too fast)".into(),
        }
    }
}

/// What one answer of the forge means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// Wait `wait` (until the limit resets), then ask again.
    RateLimited {
        wait: Duration,
        limit: Limit,
    },
    /// 401: the token is wrong, expired or revoked. Do not retry.
    TokenRefused,
    /// 403 without a rate limit: the token may not read this. Do not retry.
    Forbidden,
    /// 404: no such repository, or the token cannot see it.
    NotFound,
    /// 422: the forge does not know the commit (not pushed).
    UnknownCommit,
    /// 408, 5xx: try again with backoff (not before `retry_after`).
    Transient {
        retry_after: Option<Duration>,
    },
    /// Anything else: refused, retrying would get the same answer.
    Refused,
}

/// The rate-limit headers of an answer, as text (absent ones `None`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RateHeaders<'a> {
    pub retry_after: Option<&'a str>,
    pub remaining: Option<&'a str>,
    /// `x-ratelimit-reset`: UTC epoch seconds.
    pub reset: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub limit: Option<&'a str>,
}

/// A secondary limit without `retry-after`: GitHub says to wait at least a
/// minute.
pub const SECONDARY_MIN_WAIT: Duration = Duration::from_secs(60);

/// Classifies an answer as GitHub's REST documentation describes rate
/// limits: `retry-after` first; else `x-ratelimit-remaining: 0` means wait
/// until `x-ratelimit-reset`; else a 429 (or a 403 whose body speaks of a
/// rate limit) is a secondary limit, waited out for a minute.
pub fn classify(status: u16, headers: &RateHeaders<'_>, body: &str, now: SystemTime) -> Answer {
    if (200..300).contains(&status) {
        return Answer::Ok;
    }
    if status == 403 || status == 429 {
        let primary = || Limit::Primary {
            resource: headers.resource.map(str::to_string),
            limit: headers.limit.and_then(|l| l.trim().parse().ok()),
        };
        let exhausted = headers.remaining.is_some_and(|r| r.trim() == "0");
        if let Some(wait) = headers
            .retry_after
            .and_then(|v| crate::notify::retry::parse_retry_after(v, now))
        {
            let limit = if exhausted {
                primary()
            } else {
                Limit::Secondary
            };
            return Answer::RateLimited { wait, limit };
        }
        if exhausted {
            let wait = headers
                .reset
                .and_then(|r| r.trim().parse::<u64>().ok())
                .map(|epoch| {
                    (SystemTime::UNIX_EPOCH + Duration::from_secs(epoch))
                        .duration_since(now)
                        .unwrap_or(Duration::ZERO)
                })
                .unwrap_or(SECONDARY_MIN_WAIT);
            return Answer::RateLimited {
                wait,
                limit: primary(),
            };
        }
        if status == 429 || body.to_ascii_lowercase().contains("rate limit") {
            return Answer::RateLimited {
                wait: SECONDARY_MIN_WAIT,
                limit: Limit::Secondary,
            };
        }
        return Answer::Forbidden;
    }
    match status {
        401 => Answer::TokenRefused,
        404 => Answer::NotFound,
        422 => Answer::UnknownCommit,
        408 | 500..=599 => Answer::Transient {
            retry_after: headers
                .retry_after
                .and_then(|v| crate::notify::retry::parse_retry_after(v, now)),
        },
        _ => Answer::Refused,
    }
}

/// `owner/name` from a GitHub remote URL (`git@github.com:o/n.git`,
/// `https://github.com/o/n`, `ssh://git@github.com/o/n.git`), when its host
/// is `github.com` or `forge_host` (GitHub Enterprise).
pub fn repository_from_remote(remote: &str, forge_host: Option<&str>) -> Option<String> {
    let remote = remote.trim();
    let (host, path) = if let Some(rest) = remote.split_once("://").map(|(_, r)| r) {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?;
        (host.split(':').next()?, path)
    } else {
        // scp-like: [user@]host:path
        let (left, path) = remote.split_once(':')?;
        (left.rsplit('@').next()?, path)
    };
    let host = host.to_ascii_lowercase();
    if host != "github.com"
        && Some(host.as_str()) != forge_host.map(str::to_ascii_lowercase).as_deref()
    {
        return None;
    }
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = path.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name)).then(|| format!("{owner}/{name}"))
}

/// Inside GitHub Actions (`GITHUB_ACTIONS=true`), a deploy of the checked-out
/// commit must deploy `GITHUB_SHA`, the commit the workflow ran for (and
/// tested). An explicit `--ref` names another commit on purpose; the gate's
/// checks then apply to that commit instead. `Err` says what differs.
pub fn actions_commit_rule(
    github_actions: Option<&str>,
    github_sha: Option<&str>,
    commit: &str,
    explicit_ref: bool,
) -> Result<(), String> {
    if github_actions != Some("true") || explicit_ref {
        return Ok(());
    }
    match github_sha.map(str::trim).filter(|s| !s.is_empty()) {
        Some(sha) if sha.eq_ignore_ascii_case(commit) => Ok(()),
        Some(sha) => Err(format!(
            "this workflow run is for commit {} (GITHUB_SHA), but the checked-out commit is {}",
            short(sha),
            short(commit)
        )),
        None => Ok(()),
    }
}

fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, name: &str, status: &str, conclusion: Option<&str>) -> CheckRun {
        CheckRun {
            id,
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
            html_url: None,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_required_passed_passes_whatever_else_ran() {
        let runs = [
            run(1, "test", "completed", Some("success")),
            run(2, "lint", "completed", Some("skipped")),
            run(3, "other", "completed", Some("failure")),
        ];
        let (v, r) = evaluate(&names(&["test", "lint"]), &runs);
        assert_eq!(v, Verdict::Passed);
        assert_eq!(r.len(), 2);
        assert_eq!(describe_unpassed(&r), "");
    }

    #[test]
    fn a_failure_refuses_even_while_others_run() {
        let runs = [
            run(1, "test", "completed", Some("timed_out")),
            run(2, "lint", "in_progress", None),
        ];
        let (v, r) = evaluate(&names(&["test", "lint", "e2e"]), &runs);
        assert_eq!(v, Verdict::Failed);
        assert_eq!(
            describe_unpassed(&r),
            "`test` (timed_out), `lint` (in_progress), `e2e` (missing)"
        );
    }

    #[test]
    fn pending_waits_and_missing_waits_only_while_something_runs() {
        let (v, _) = evaluate(&names(&["test"]), &[run(1, "test", "queued", None)]);
        assert_eq!(v, Verdict::Pending);
        let running = [run(1, "build", "in_progress", None)];
        assert_eq!(evaluate(&names(&["test"]), &running).0, Verdict::Pending);
        let done = [run(1, "build", "completed", Some("success"))];
        assert_eq!(evaluate(&names(&["test"]), &done).0, Verdict::Failed);
        assert_eq!(evaluate(&names(&["test"]), &[]).0, Verdict::Failed);
    }

    #[test]
    fn the_newest_run_of_a_name_decides() {
        let runs = [
            run(7, "test", "completed", Some("success")),
            run(5, "test", "completed", Some("failure")),
        ];
        assert_eq!(evaluate(&names(&["test"]), &runs).0, Verdict::Passed);
        let rerun_failed = [
            run(5, "test", "completed", Some("success")),
            run(9, "test", "completed", Some("cancelled")),
        ];
        assert_eq!(
            evaluate(&names(&["test"]), &rerun_failed).0,
            Verdict::Failed
        );
    }

    #[test]
    fn the_documented_body_parses() {
        let body = r#"{"total_count":1,"check_runs":[{"id":4,"head_sha":"ce587453ced02b1526dfb4cb910479d431683101","node_id":"MDg6Q2hlY2tSdW40","external_id":"","url":"https://api.github.com/repos/github/hello-world/check-runs/4","html_url":"https://github.com/github/hello-world/runs/4","details_url":"https://example.com","status":"completed","conclusion":"neutral","started_at":"2018-05-04T01:14:52Z","completed_at":"2018-05-04T01:14:52Z","output":{"title":"Mighty Readme report","summary":"There are 0 failures, 2 warnings, and 1 notice.","text":"You may have some misspelled words on lines 2 and 4.","annotations_count":2,"annotations_url":"https://api.github.com/repos/github/hello-world/check-runs/4/annotations"},"name":"mighty_readme","check_suite":{"id":5},"app":{"id":1,"slug":"octoapp"},"pull_requests":[]}]}"#;
        let page: CheckRunsPage = serde_json::from_str(body).expect("parses");
        assert_eq!(page.total_count, 1);
        assert_eq!(page.check_runs[0].name, "mighty_readme");
        assert_eq!(page.check_runs[0].conclusion.as_deref(), Some("neutral"));
    }

    #[test]
    fn rate_limits_are_read_as_documented() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = RateHeaders {
            remaining: Some("0"),
            reset: Some("1000042"),
            resource: Some("core"),
            limit: Some("60"),
            ..RateHeaders::default()
        };
        assert_eq!(
            classify(403, &h, "API rate limit exceeded", now),
            Answer::RateLimited {
                wait: Duration::from_secs(42),
                limit: Limit::Primary {
                    resource: Some("core".into()),
                    limit: Some(60)
                }
            }
        );
        let ra = RateHeaders {
            retry_after: Some("3"),
            ..RateHeaders::default()
        };
        assert_eq!(
            classify(429, &ra, "", now),
            Answer::RateLimited {
                wait: Duration::from_secs(3),
                limit: Limit::Secondary
            }
        );
        let none = RateHeaders::default();
        assert_eq!(
            classify(403, &none, "You have exceeded a secondary rate limit", now),
            Answer::RateLimited {
                wait: SECONDARY_MIN_WAIT,
                limit: Limit::Secondary
            }
        );
        assert_eq!(
            classify(403, &none, "Resource not accessible by integration", now),
            Answer::Forbidden
        );
        assert_eq!(
            classify(401, &none, "Bad credentials", now),
            Answer::TokenRefused
        );
        assert_eq!(classify(404, &none, "", now), Answer::NotFound);
        assert_eq!(classify(422, &none, "", now), Answer::UnknownCommit);
        assert_eq!(
            classify(502, &none, "", now),
            Answer::Transient { retry_after: None }
        );
        assert_eq!(classify(200, &h, "", now), Answer::Ok);
        assert_eq!(classify(400, &none, "", now), Answer::Refused);
        assert!(
            Limit::Primary {
                resource: Some("core".into()),
                limit: Some(60)
            }
            .describe()
            .contains("`core` (60 requests per hour)")
        );
    }

    #[test]
    fn github_remotes_name_their_repository() {
        for remote in [
            "git@github.com:togather/server.git",
            "https://github.com/togather/server",
            "https://github.com/togather/server.git/",
            "ssh://git@github.com/togather/server.git",
            "https://token@github.com/togather/server.git",
        ] {
            assert_eq!(
                repository_from_remote(remote, None).as_deref(),
                Some("togather/server"),
                "{remote}"
            );
        }
        assert_eq!(repository_from_remote("git@gitlab.com:a/b.git", None), None);
        assert_eq!(
            repository_from_remote("git@ghe.example.org:a/b.git", Some("ghe.example.org"))
                .as_deref(),
            Some("a/b")
        );
        assert_eq!(repository_from_remote("/srv/git/app.git", None), None);
        assert_eq!(
            repository_from_remote("https://github.com/only", None),
            None
        );
    }

    #[test]
    fn in_actions_the_deployed_commit_is_the_tested_one() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        assert!(actions_commit_rule(Some("true"), Some(sha), sha, false).is_ok());
        let e = actions_commit_rule(Some("true"), Some(other), sha, false).unwrap_err();
        assert!(
            e.contains("fedcba987654") && e.contains("0123456789ab"),
            "{e}"
        );
        assert!(actions_commit_rule(Some("true"), Some(other), sha, true).is_ok());
        assert!(actions_commit_rule(None, Some(other), sha, false).is_ok());
        assert!(actions_commit_rule(Some("true"), None, sha, false).is_ok());
    }
}
