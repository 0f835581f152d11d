//! Checks of `deployment.analysis` and `notifications` a schema cannot
//! express: URLs that are URLs, a signing secret in the Standard Webhooks
//! form, a custom body that is JSON, thresholds that make sense together.
//! Values that may hold tokens are never echoed.

use super::origin::Origin;
use super::problem::Problem;
use super::schema::{Settings, WebhookFormat};
use super::secrets;

pub fn check(settings: &Settings, origin_of: &dyn Fn(&str) -> Origin, problems: &mut Vec<Problem>) {
    let a = &settings.deployment.analysis;
    if a.interval.0.is_zero() {
        problems.push(
            Problem::error(
                origin_of("/deployment/analysis/interval"),
                "`deployment.analysis.interval` is zero",
            )
            .expected("a duration such as 10s: the sliding window the 5xx ratio and latency are judged over"),
        );
    }
    if a.health_interval.0.is_zero() {
        problems.push(
            Problem::error(
                origin_of("/deployment/analysis/health_interval"),
                "`deployment.analysis.health_interval` is zero",
            )
            .expected("a duration such as 1s"),
        );
    }
    if let Some(w) = &a.window
        && !w.0.is_zero()
        && w.0 < a.interval.0
    {
        problems.push(
            Problem::warning(
                origin_of("/deployment/analysis/window"),
                "`deployment.analysis.window` is shorter than its `interval`: the error ratio and latency are judged over the whole window",
            )
            .hint("lengthen the window (production: 10m) or shorten `interval`"),
        );
    }
    let n = &settings.notifications;
    if let Some(w) = &n.webhook {
        let origin = origin_of("/notifications/webhook/url");
        if let Some(why) = url_problem(&w.url) {
            problems.push(
                Problem::error(origin, format!("`notifications.webhook.url` {why}"))
                    .found(crate::secret::REDACTED)
                    .expected("an http:// or https:// URL, usually ${WEBHOOK_URL} from .env.<env>"),
            );
        }
        if let Some(secret) = w.secret.as_deref()
            && let Some(why) = webhook_secret_problem(secret)
        {
            problems.push(
                Problem::error(
                    origin_of("/notifications/webhook/secret"),
                    format!("`notifications.webhook.secret` {why}"),
                )
                .found(crate::secret::REDACTED)
                .expected("`whsec_` followed by base64 (24 to 64 random bytes), in .env.<env>")
                .hint("generate one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\""),
            );
        }
        match (w.format, &w.body) {
            (WebhookFormat::Custom, None) => problems.push(
                Problem::error(
                    origin_of("/notifications/webhook/format"),
                    "`notifications.webhook.format: custom` needs a `body`",
                )
                .expected(
                    "a JSON body with placeholders, e.g. '{\"text\": \"{{title}}: {{message}}\"}'",
                ),
            ),
            (WebhookFormat::Custom, Some(body)) => {
                if let Some(why) = custom_body_problem(body) {
                    problems.push(
                        Problem::error(
                            origin_of("/notifications/webhook/body"),
                            format!("`notifications.webhook.body` is not JSON once filled in: {why}"),
                        )
                        .hint("placeholders such as {{title}} are replaced by JSON-escaped text: put them inside quotes"),
                    );
                }
            }
            (_, Some(_)) => problems.push(
                Problem::warning(
                    origin_of("/notifications/webhook/body"),
                    "`notifications.webhook.body` is used only with `format: custom`",
                )
                .hint("set `format: custom`, or remove `body`"),
            ),
            (_, None) => {}
        }
    }
    if let Some(ntfy) = &n.ntfy {
        if let Some(why) = url_problem(&ntfy.server) {
            problems.push(
                Problem::error(
                    origin_of("/notifications/ntfy/server"),
                    format!("`notifications.ntfy.server` {why}"),
                )
                .expected("https://ntfy.sh or your own server's URL"),
            );
        }
        let topic_ok = !ntfy.topic.is_empty()
            && ntfy.topic.len() <= 64
            && ntfy
                .topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !topic_ok {
            problems.push(
                Problem::error(
                    origin_of("/notifications/ntfy/topic"),
                    "`notifications.ntfy.topic` is not an ntfy topic name",
                )
                .expected("1 to 64 letters, digits, `-` or `_`"),
            );
        }
        if let Some(p) = ntfy.priority
            && !(1..=5).contains(&p)
        {
            problems.push(
                Problem::error(
                    origin_of("/notifications/ntfy/priority"),
                    format!("`notifications.ntfy.priority` is {p}"),
                )
                .expected("1 (min) to 5 (max)"),
            );
        }
    }
}

/// Why `url` cannot receive notifications, if it cannot.
fn url_problem(url: &str) -> Option<String> {
    if secrets::is_placeholder(url) {
        return Some("is empty or still a placeholder".into());
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => None,
        Ok(u) => Some(format!("has scheme `{}` or no host", u.scheme())),
        Err(e) => Some(format!("is not a URL ({e})")),
    }
}

/// Why a Standard Webhooks secret is unusable, if it is.
pub fn webhook_secret_problem(secret: &str) -> Option<String> {
    let Some(b64) = secret.strip_prefix("whsec_") else {
        return Some("does not start with `whsec_`".into());
    };
    let ok = b64.len() >= 16
        && b64
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
    (!ok).then(|| "is not `whsec_` followed by base64 of at least 12 bytes".into())
}

/// Fills every `{{name}}` with a JSON-escaped sample and parses the result.
fn custom_body_problem(body: &str) -> Option<String> {
    let mut filled = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        filled.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                filled.push_str("sample \\\"text\\\"");
                rest = &rest[start + end + 2..];
            }
            None => return Some("a `{{` is never closed".into()),
        }
    }
    filled.push_str(rest);
    serde_json::from_str::<serde_json::Value>(&filled)
        .err()
        .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_urls_and_bodies() {
        assert_eq!(
            webhook_secret_problem("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            None
        );
        assert!(webhook_secret_problem("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_some());
        assert!(webhook_secret_problem("whsec_short").is_some());
        assert!(url_problem("https://hooks.slack.com/services/T/B/x").is_none());
        assert!(url_problem("ftp://example.org").is_some());
        assert!(url_problem("CHANGE_ME").is_some());
        assert!(custom_body_problem(r#"{"text": "{{title}}: {{message}}"}"#).is_none());
        assert!(custom_body_problem(r#"{"text": {{title}}}"#).is_some());
        assert!(custom_body_problem(r#"{"text": "{{title"}"#).is_some());
    }
}
