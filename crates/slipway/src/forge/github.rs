//! GitHub's REST API, as the CI gate needs it: the check runs of one commit
//! (`GET /repos/{owner}/{repo}/commits/{sha}/check-runs`, every page).
//!
//! Every request is bounded by the caller's deadline. Rate limits are waited
//! out as GitHub documents them (`retry-after`, else `x-ratelimit-reset`
//! once `x-ratelimit-remaining` is 0, else a minute for a secondary limit);
//! 5xx and lost connections are retried with exponential backoff and full
//! jitter (`slipway_core::notify::retry`); a refused token stops at once.
//! The token is sent as a sensitive header and appears in no message.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use slipway_core::ci::{Answer, CheckRun, CheckRunsPage, Limit, RateHeaders, classify};
use slipway_core::notify::retry::{Backoff, next_delay};
use slipway_core::secret::Secret;

use super::{ForgeError, human, until};
use crate::exit::Exit;

const USER_AGENT: &str = concat!("slipway/", env!("CARGO_PKG_VERSION"));
/// One request's bound (connect, head and body).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A page is at most 100 check runs; their `output` texts can be long.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Retries of 5xx answers and lost connections (rate limits are not
/// counted: they say how long to wait).
const MAX_RETRIES: u32 = 6;
const MAX_PAGES: u32 = 50;
/// Waiting for `x-ratelimit-reset` waits this much longer: the reset is
/// given in whole seconds and clocks differ.
const RESET_MARGIN: Duration = Duration::from_secs(1);

pub struct GitHub {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    api_url: String,
    repository: String,
    token: Option<Secret>,
    backoff: Backoff,
}

impl GitHub {
    pub fn new(api_url: &str, repository: &str, token: Option<Secret>) -> Result<Self, ForgeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| {
                ForgeError::new(
                    Exit::Failed,
                    format!("cannot load the CA certificates to reach GitHub over HTTPS: {e}"),
                    "install the system's CA bundle (Debian: apt-get install ca-certificates)",
                )
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            api_url: api_url.trim_end_matches('/').to_string(),
            repository: repository.to_string(),
            token,
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(30),
            },
        })
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Every check run of `sha` (all pages). Waits (rate limits, retries)
    /// end by `deadline`; `note` gets a line for each.
    pub async fn check_runs(
        &self,
        sha: &str,
        deadline: Instant,
        note: &dyn Fn(&str),
    ) -> Result<Vec<CheckRun>, ForgeError> {
        let first = format!(
            "{}/repos/{}/commits/{sha}/check-runs?per_page=100",
            self.api_url, self.repository
        );
        let mut url = format!("{first}&page=1");
        let mut runs = Vec::new();
        for page in 1..=MAX_PAGES {
            let (body, next) = self.get(&url, sha, deadline, note).await?;
            let parsed: CheckRunsPage = serde_json::from_slice(&body).map_err(|e| {
                ForgeError::new(
                    Exit::Failed,
                    format!("GitHub's answer for the check runs of {sha} is not what its API documents: {e}"),
                    "check deployment.require_ci.api_url points at GitHub's REST API (https://api.github.com, or https://<host>/api/v3)",
                )
            })?;
            let got = parsed.check_runs.len();
            runs.extend(parsed.check_runs);
            url = match next {
                Some(next) => next,
                None if got > 0 && (runs.len() as u64) < parsed.total_count => {
                    format!("{first}&page={}", page + 1)
                }
                None => break,
            };
        }
        Ok(runs)
    }

    /// One GET with the retry policy: the body and the `Link` rel="next" URL.
    async fn get(
        &self,
        url: &str,
        sha: &str,
        deadline: Instant,
        note: &dyn Fn(&str),
    ) -> Result<(Bytes, Option<String>), ForgeError> {
        let started = Instant::now();
        let budget = deadline.saturating_duration_since(started);
        let mut retries = 0u32;
        loop {
            let (wait, why) = match self.once(url).await {
                Ok((status, headers, body)) => {
                    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
                    let rate = RateHeaders {
                        retry_after: text_of(&headers, "retry-after"),
                        remaining: text_of(&headers, "x-ratelimit-remaining"),
                        reset: text_of(&headers, "x-ratelimit-reset"),
                        resource: text_of(&headers, "x-ratelimit-resource"),
                        limit: text_of(&headers, "x-ratelimit-limit"),
                    };
                    match classify(status, &rate, &text, SystemTime::now()) {
                        Answer::Ok => return Ok((body, next_link(&headers))),
                        Answer::RateLimited { wait, limit } => {
                            let wait = match limit {
                                Limit::Primary { .. } if rate.retry_after.is_none() => {
                                    wait + RESET_MARGIN
                                }
                                _ => wait,
                            };
                            if Instant::now() + wait > deadline {
                                return Err(self.rate_limited(&limit, wait, deadline));
                            }
                            (wait, format!("{} is reached ({status})", limit.describe()))
                        }
                        Answer::TokenRefused => return Err(token_refused()),
                        Answer::Forbidden => {
                            return Err(self.forbidden(&error_message(&text)));
                        }
                        Answer::NotFound => return Err(self.not_found()),
                        Answer::UnknownCommit => return Err(self.unknown_commit(sha)),
                        Answer::Transient { retry_after } => {
                            retries += 1;
                            let why = format!("GitHub answered {status}");
                            match self.retry_delay(retries, retry_after, started, budget) {
                                Some(wait) => (wait, why),
                                None => return Err(self.gave_up(&why, retries)),
                            }
                        }
                        Answer::Refused => {
                            return Err(ForgeError::new(
                                Exit::Failed,
                                format!(
                                    "GitHub refused the request for the check runs of {sha} ({status}: {})",
                                    error_message(&text)
                                ),
                                "check deployment.require_ci (repository, api_url)",
                            ));
                        }
                    }
                }
                Err(e) => {
                    retries += 1;
                    let why = format!("no answer from GitHub: {e}");
                    match self.retry_delay(retries, None, started, budget) {
                        Some(wait) => (wait, why),
                        None => return Err(self.gave_up(&why, retries)),
                    }
                }
            };
            note(&format!("{why}; asking again at {}", until(wait)));
            tokio::time::sleep(wait).await;
        }
    }

    fn retry_delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        started: Instant,
        budget: Duration,
    ) -> Option<Duration> {
        if retry > MAX_RETRIES {
            return None;
        }
        next_delay(
            &self.backoff,
            retry,
            fastrand::f64(),
            retry_after,
            started.elapsed(),
            budget,
        )
    }

    async fn once(&self, url: &str) -> Result<(u16, HeaderMap, Bytes), String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("deployment.require_ci.api_url gives a bad URL: {e}"))?;
        let mut request = hyper::Request::get(uri)
            .header(header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| "GITHUB_TOKEN holds characters a header cannot carry".to_string())?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|_| "cannot build the request".to_string())?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, BODY_LIMIT)
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, parts.headers, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {}", human(REQUEST_TIMEOUT)))?
    }

    fn rate_limited(&self, limit: &Limit, wait: Duration, deadline: Instant) -> ForgeError {
        let left = deadline.saturating_duration_since(Instant::now());
        let hint = match (limit, self.has_token()) {
            (Limit::Primary { .. }, false) => "set GITHUB_TOKEN (in the process environment or .env.<env>): a token gets 5,000 requests per hour instead of 60 per address; or deploy again after the reset".to_string(),
            (Limit::Primary { .. }, true) => "everything using this token shares its quota; deploy again after the reset, or raise deployment.require_ci.wait to wait it out".to_string(),
            (Limit::Secondary, _) => "too many requests in a short time (other jobs on this token or address); deploy again in a minute, or raise deployment.require_ci.wait to wait it out".to_string(),
        };
        ForgeError::new(
            Exit::Unavailable,
            format!(
                "{} is reached until {}, which is past the gate's wait ({} left of deployment.require_ci.wait)",
                limit.describe(),
                until(wait),
                human(left)
            ),
            hint,
        )
    }

    fn forbidden(&self, message: &str) -> ForgeError {
        ForgeError::new(
            Exit::BadInput,
            format!(
                "GitHub refused to show the check runs of {} (403: {message})",
                self.repository
            ),
            "the token needs read access to checks: a fine-grained token with `Checks: read`, or in GitHub Actions the job's `permissions: checks: read`",
        )
    }

    fn not_found(&self) -> ForgeError {
        let hint = if self.has_token() {
            "check deployment.require_ci.repository (default: the remote `origin`), and that the token may read that repository"
        } else {
            "check deployment.require_ci.repository (default: the remote `origin`); a private repository needs GITHUB_TOKEN (process environment or .env.<env>)"
        };
        ForgeError::new(
            Exit::Failed,
            format!(
                "GitHub has no repository {} (404), or cannot show it without a token that may read it",
                self.repository
            ),
            hint,
        )
    }

    fn unknown_commit(&self, sha: &str) -> ForgeError {
        ForgeError::new(
            Exit::Failed,
            format!(
                "GitHub does not know commit {} in {} (422): it was never pushed there",
                &sha[..12.min(sha.len())],
                self.repository
            ),
            "push the commit (git push) and let CI run on it, then deploy again",
        )
    }

    fn gave_up(&self, why: &str, attempts: u32) -> ForgeError {
        ForgeError::new(
            Exit::Unavailable,
            format!("cannot ask GitHub about the checks: {why} (after {attempts} attempts)"),
            format!(
                "check the network and {}; GitHub's status: https://www.githubstatus.com",
                self.api_url
            ),
        )
    }
}

fn token_refused() -> ForgeError {
    ForgeError::new(
        Exit::BadInput,
        "GitHub refused the token (401 Bad credentials)",
        "GITHUB_TOKEN (process environment or .env.<env>) is wrong, expired or revoked; create one that may read checks (fine-grained: `Checks: read`), or in GitHub Actions pass `secrets.GITHUB_TOKEN`",
    )
}

fn text_of<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The `rel="next"` URL of a `Link` header (RFC 8288), as GitHub paginates.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = text_of(headers, "link")?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// GitHub's error bodies are `{"message": "...", "documentation_url": ...}`.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().chars().take(200).collect())
}

/// `cannot connect: tcp connect error: Connection refused`.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/x?page=2")
        );
        h.insert(
            "link",
            HeaderValue::from_static("<https://api.github.com/x?page=1>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(
                r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#
            ),
            "Bad credentials"
        );
        assert_eq!(error_message("  plain  "), "plain");
    }
}
