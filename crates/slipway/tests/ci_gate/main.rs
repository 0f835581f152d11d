//! The CI gate end to end: the real `slipway` binary against a loopback
//! HTTP server that answers as GitHub's REST API documents
//! (`GET /repos/{owner}/{repo}/commits/{sha}/check-runs`, its bodies, its
//! rate-limit headers and error bodies). `slipway ci check` needs no engine;
//! one test runs `slipway deploy` to show the refusal happens at preflight,
//! before anything is built.

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use run::Run;

#[path = "../common/run.rs"]
mod run;

const TOKEN: &str = "ghp_canary5ec4e7donotprint0123456789abcdef";
const REPO: &str = "togather/server";

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A check run as GitHub documents it (the fields the docs' example has).
fn check_run(
    id: u64,
    name: &str,
    status: &str,
    conclusion: Option<&str>,
    sha: &str,
) -> serde_json::Value {
    serde_json::json!({
        "id": id, "head_sha": sha, "node_id": format!("CR_{id}"), "external_id": "",
        "url": format!("https://api.github.com/repos/{REPO}/check-runs/{id}"),
        "html_url": format!("https://github.com/{REPO}/runs/{id}"),
        "details_url": "https://example.com", "status": status, "conclusion": conclusion,
        "started_at": "2026-01-01T00:00:00Z",
        "completed_at": if status == "completed" { serde_json::json!("2026-01-01T00:01:00Z") } else { serde_json::Value::Null },
        "output": {"title": null, "summary": null, "text": null, "annotations_count": 0,
                   "annotations_url": format!("https://api.github.com/repos/{REPO}/check-runs/{id}/annotations")},
        "name": name, "check_suite": {"id": 5}, "app": {"id": 15368, "slug": "github-actions"},
        "pull_requests": []
    })
}

fn runs(total: u64, list: Vec<serde_json::Value>) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"total_count": total, "check_runs": list}),
    )
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    user_agent: Option<String>,
    api_version: Option<String>,
}

/// A loopback "GitHub": answers each request with the next scripted reply
/// (the last one again once the script is used up) and keeps what it saw.
struct Forge {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Forge {
    fn start() -> Forge {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let (log, replies) = (Arc::clone(&seen), Arc::clone(&script));
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (log, replies) = (Arc::clone(&log), Arc::clone(&replies));
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        log.lock().unwrap().push(Seen {
                            path: req.uri().to_string(),
                            authorization: header("authorization"),
                            user_agent: header("user-agent"),
                            api_version: header("x-github-api-version"),
                        });
                        let reply = {
                            let mut s = replies.lock().unwrap();
                            if s.len() > 1 {
                                s.pop_front()
                            } else {
                                s.front().cloned()
                            }
                        }
                        .unwrap_or_else(|| {
                            Reply::json(500, serde_json::json!({"message": "no script"}))
                        });
                        async move {
                            let mut response = hyper::Response::builder()
                                .status(reply.status)
                                .header("content-type", "application/json; charset=utf-8");
                            for (k, v) in &reply.headers {
                                response = response.header(k, v);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response
                                    .body(Full::new(bytes::Bytes::from(reply.body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Forge {
            port,
            seen,
            script,
            _runtime: runtime,
        }
    }

    fn with(script: Vec<Reply>) -> Forge {
        let f = Forge::start();
        f.answer(script);
        f
    }

    /// Replaces the script and forgets what was seen.
    fn answer(&self, script: Vec<Reply>) {
        *self.script.lock().unwrap() = script.into();
        self.seen.lock().unwrap().clear();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// An application repository (`slipway init`), committed, with a GitHub
/// remote `origin` (never contacted: only its name is read).
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo { dir };
        let init = repo.slipway(&["init", "--name", "gate"], &[]);
        assert_eq!(init.code, 0, "{}", init.all());
        let envs = repo.path().join("deploy/config/environments");
        let template = fs::read_to_string(envs.join(".env.staging.example")).unwrap();
        let env = envs.join(".env.staging");
        fs::write(
            &env,
            template.replace("CHANGE_ME", "s3cr3t-value-for-tests"),
        )
        .unwrap();
        fs::set_permissions(&env, fs::Permissions::from_mode(0o600)).unwrap();
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&[
            "remote",
            "add",
            "origin",
            &format!("git@github.com:{REPO}.git"),
        ]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "init"]);
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(self.path())
            .args(["-c", "user.email=ci@example.org", "-c", "user.name=CI"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    fn slipway(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.current_dir(self.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("SLIPWAY_CONFIG")
            .env_remove("GITHUB_TOKEN")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_SHA");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from_output(cmd.output().expect("run slipway"))
    }

    /// `slipway ci check staging` with the gate pointed at `forge`.
    fn check(&self, forge: &Forge, extra: &[&str], env: &[(&str, &str)]) -> Run {
        self.check_waiting(forge, "20s", extra, env)
    }

    fn check_waiting(
        &self,
        forge: &Forge,
        wait: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        let mut args = gate_flags(forge, wait);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.slipway(&args, env);
        assert!(
            !run.all().contains(TOKEN),
            "the token leaked:\n{}",
            run.all()
        );
        run
    }
}

fn gate_flags(forge: &Forge, wait: &str) -> Vec<String> {
    [
        "--set=deployment.require_ci.provider=github".to_string(),
        "--set=deployment.require_ci.checks=[test,lint]".to_string(),
        format!("--set=deployment.require_ci.api_url={}", forge.url()),
        "--set=deployment.require_ci.poll_interval=200ms".to_string(),
        format!("--set=deployment.require_ci.wait={wait}"),
        "ci".to_string(),
        "check".to_string(),
        "staging".to_string(),
    ]
    .into()
}

fn passed(sha: &str) -> Reply {
    runs(
        2,
        vec![
            check_run(11, "test", "completed", Some("success"), sha),
            check_run(12, "lint", "completed", Some("success"), sha),
        ],
    )
}

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn passed_checks_pass_across_pages_with_the_token_sent() {
    let repo = Repo::new();
    let sha = repo.head();
    let forge = Forge::start();
    // Page 1 links to page 2, as GitHub paginates; `lint` is only on page 2.
    let page2 = format!(
        "{}/repos/{REPO}/commits/{sha}/check-runs?per_page=100&page=2",
        forge.url()
    );
    forge.answer(vec![
        runs(
            3,
            vec![
                check_run(11, "test", "completed", Some("success"), &sha),
                check_run(13, "docs", "completed", Some("failure"), &sha),
            ],
        )
        .header(
            "link",
            format!("<{page2}>; rel=\"next\", <{page2}>; rel=\"last\""),
        ),
        runs(
            3,
            vec![check_run(12, "lint", "completed", Some("skipped"), &sha)],
        ),
    ]);
    let run = repo.check(&forge, &[], &[("GITHUB_TOKEN", TOKEN)]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("may deploy to staging"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("skipped"), "{}", run.all());
    let seen = forge.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].path,
        format!("/repos/{REPO}/commits/{sha}/check-runs?per_page=100&page=1")
    );
    assert!(seen[1].path.ends_with("page=2"), "{seen:?}");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(
        seen[0]
            .user_agent
            .as_deref()
            .is_some_and(|u| u.starts_with("slipway/"))
    );
    assert_eq!(seen[0].api_version.as_deref(), Some("2022-11-28"));

    // --json for scripts; no token: none sent.
    forge.answer(vec![passed(&sha)]);
    let json = repo.check(&forge, &["--json"], &[]).json();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["gate"]["state"], "passed", "{json}");
    assert_eq!(json["gate"]["repository"], REPO, "{json}");
    assert_eq!(json["commit"], sha.as_str(), "{json}");
    assert_eq!(forge.seen()[0].authorization, None);
}

#[test]
fn a_failed_or_missing_check_is_refused_by_name() {
    let repo = Repo::new();
    let sha = repo.head();
    let forge = Forge::with(vec![runs(
        2,
        vec![
            check_run(11, "test", "completed", Some("success"), &sha),
            check_run(12, "lint", "completed", Some("failure"), &sha),
        ],
    )]);
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("has not passed CI on togather/server"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("`lint` (failure)"), "{}", run.all());
    assert!(!run.stderr.contains("`test`"), "{}", run.all());
    assert!(
        run.stderr.contains("--skip-ci-check --reason"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout
            .contains(&format!("https://github.com/{REPO}/runs/12")),
        "{}",
        run.all()
    );

    // Missing: nothing else still runs that could create it.
    forge.answer(vec![runs(
        2,
        vec![
            check_run(11, "test", "completed", Some("success"), &sha),
            check_run(14, "build", "completed", Some("success"), &sha),
        ],
    )]);
    let run = repo.check(&forge, &["--json"], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("`lint` (missing)"), "{}", run.all());
    let json = run.json();
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["checks"][1]["name"], "lint", "{json}");
    assert_eq!(json["checks"][1]["state"], "missing", "{json}");
    assert_eq!(forge.seen().len(), 1);
}

#[test]
fn pending_checks_are_waited_for_then_pass() {
    let repo = Repo::new();
    let sha = repo.head();
    let forge = Forge::with(vec![
        runs(
            2,
            vec![
                check_run(11, "test", "queued", None, &sha),
                check_run(12, "lint", "completed", Some("success"), &sha),
            ],
        ),
        runs(
            2,
            vec![
                check_run(11, "test", "in_progress", None, &sha),
                check_run(12, "lint", "completed", Some("success"), &sha),
            ],
        ),
        passed(&sha),
    ]);
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("waiting for CI"), "{}", run.all());
    assert!(run.stderr.contains("`test` (queued)"), "{}", run.all());
    assert!(run.stderr.contains("`test` (in_progress)"), "{}", run.all());
    assert_eq!(forge.seen().len(), 3);

    // Still pending when the wait ends: refused, naming what is pending.
    forge.answer(vec![runs(
        1,
        vec![check_run(11, "test", "in_progress", None, &sha)],
    )]);
    let started = Instant::now();
    let run = repo.check_waiting(&forge, "1s", &[], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("CI has not finished"), "{}", run.all());
    assert!(
        run.stderr
            .contains("`test` (in_progress), `lint` (missing)"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("raise deployment.require_ci.wait"),
        "{}",
        run.all()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn rate_limits_are_waited_out_as_github_documents_them() {
    let repo = Repo::new();
    let sha = repo.head();
    // A secondary limit: 429 with Retry-After.
    let forge = Forge::with(vec![
        Reply::json(
            429,
            serde_json::json!({"message": "You have exceeded a secondary rate limit."}),
        )
        .header("retry-after", "1"),
        passed(&sha),
    ]);
    let started = Instant::now();
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("secondary rate limit"), "{}", run.all());
    assert!(run.stderr.contains("asking again at"), "{}", run.all());
    assert_eq!(forge.seen().len(), 2);

    // The primary limit: 403, x-ratelimit-remaining: 0, reset in 1s.
    let exhausted = |reset: u64| {
        Reply::json(
            403,
            serde_json::json!({"message": "API rate limit exceeded for 127.0.0.1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
        )
        .header("x-ratelimit-limit", "60")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-used", "60")
        .header("x-ratelimit-reset", reset.to_string())
        .header("x-ratelimit-resource", "core")
    };
    forge.answer(vec![exhausted(epoch_now() + 1), passed(&sha)]);
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("GitHub's rate limit for `core` (60 requests per hour) is reached (403)"),
        "{}",
        run.all()
    );
    assert_eq!(forge.seen().len(), 2);

    // A reset past the gate's wait: no pointless sleep, says until when and what to do.
    forge.answer(vec![exhausted(epoch_now() + 3600)]);
    let started = Instant::now();
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(run.stderr.contains("is reached until"), "{}", run.all());
    assert!(run.stderr.contains("UTC (in 1h 0m)"), "{}", run.all());
    assert!(run.stderr.contains("past the gate's wait"), "{}", run.all());
    assert!(run.stderr.contains("set GITHUB_TOKEN"), "{}", run.all());
}

#[test]
fn a_refused_token_stops_at_once() {
    let repo = Repo::new();
    let forge = Forge::with(vec![Reply::json(
        401,
        serde_json::json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
    )]);
    let run = repo.check(&forge, &[], &[("GITHUB_TOKEN", TOKEN)]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("GitHub refused the token (401 Bad credentials)"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("wrong, expired or revoked"),
        "{}",
        run.all()
    );
    assert_eq!(forge.seen().len(), 1, "no retry of a refused token");

    // The token from .env.staging (no process variable) is used too.
    let env = repo.path().join("deploy/config/environments/.env.staging");
    let mut text = fs::read_to_string(&env).unwrap();
    text.push_str(&format!("GITHUB_TOKEN={TOKEN}\n"));
    fs::write(&env, text).unwrap();
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert_eq!(
        forge.seen()[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[test]
fn a_dirty_tree_or_another_commit_than_the_workflow_s_never_passes() {
    let repo = Repo::new();
    let sha = repo.head();
    let forge = Forge::with(vec![passed(&sha)]);
    fs::write(repo.path().join("UNTESTED.md"), "not committed\n").unwrap();
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("uncommitted changes"), "{}", run.all());
    assert!(run.stderr.contains("CI never tested them"), "{}", run.all());
    assert!(
        forge.seen().is_empty(),
        "a dirty tree is refused before asking"
    );
    fs::remove_file(repo.path().join("UNTESTED.md")).unwrap();

    // Inside GitHub Actions the checkout must be GITHUB_SHA...
    let other = "0123456789abcdef0123456789abcdef01234567";
    let actions = [("GITHUB_ACTIONS", "true"), ("GITHUB_SHA", other)];
    let run = repo.check(&forge, &[], &actions);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("not the one this workflow tested"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("0123456789ab"), "{}", run.all());
    // ...unless --ref names a commit on purpose (its checks then apply).
    let run = repo.check(&forge, &["--ref", "main"], &actions);
    assert_eq!(run.code, 0, "{}", run.all());
    let run = repo.check(
        &forge,
        &[],
        &[("GITHUB_ACTIONS", "true"), ("GITHUB_SHA", &sha)],
    );
    assert_eq!(run.code, 0, "{}", run.all());

    // A commit GitHub does not know (never pushed): 422, as GitHub answers.
    forge.answer(vec![Reply::json(
        422,
        serde_json::json!({"message": format!("No commit found for SHA: {sha}"), "documentation_url": "https://docs.github.com/rest/checks/runs"}),
    )]);
    let run = repo.check(&forge, &[], &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("never pushed"), "{}", run.all());
    assert!(run.stderr.contains("git push"), "{}", run.all());
}

#[test]
fn deploy_is_refused_at_preflight_and_skip_needs_a_reason() {
    let repo = Repo::new();
    let sha = repo.head();
    let forge = Forge::with(vec![runs(
        1,
        vec![check_run(12, "lint", "completed", Some("failure"), &sha)],
    )]);
    let mut args = gate_flags(&forge, "20s");
    args.truncate(args.len() - 3);
    let mut deploy: Vec<&str> = args.iter().map(String::as_str).collect();
    deploy.extend(["deploy", "staging"]);
    let run = repo.slipway(&deploy, &[]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("deploy failed at step `preflight`"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("`lint` (failure), `test` (missing)")
            || run.stderr.contains("`test` (missing), `lint` (failure)"),
        "{}",
        run.all()
    );
    assert!(
        !run.stderr.contains("provision"),
        "nothing ran after the gate: {}",
        run.all()
    );

    let run = repo.slipway(&["deploy", "staging", "--skip-ci-check"], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("--reason"), "{}", run.all());

    // The dry run shows what the gate would check, without asking.
    let mut dry = deploy.clone();
    dry.push("--dry-run");
    let run = repo.slipway(&dry, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout
            .contains("ci gate     github on the remote `origin`: test, lint"),
        "{}",
        run.all()
    );
    assert_eq!(forge.seen().len(), 1);
}
