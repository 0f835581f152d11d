//! What a webhook channel sends: the body of one event in the channel's
//! template. Rendering is pure so the agent can check a template when it is
//! configured (a bad one is refused then, not discovered at 3 a.m.).

use serde_json::{Value, json};

use super::{Event, EventKind, Severity, WebhookTemplate};

/// Discord refuses a `content` longer than this.
pub const DISCORD_CONTENT_MAX_CHARS: usize = 2000;

/// The placeholders a custom template may use, in the order documented.
pub const PLACEHOLDERS: &[&str] = &[
    "title",
    "message",
    "kind",
    "severity",
    "app",
    "environment",
    "release",
    "previous_release",
    "deployment_id",
    "at",
    "id",
];

/// Why a template cannot produce a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the custom template uses `{{{{{0}}}}}`, which is not a placeholder; use one of {list}",
        list = placeholder_list()
    )]
    UnknownPlaceholder(String),
    #[error("the custom template has a `{{{{` that is never closed by `}}}}`")]
    Unclosed,
    #[error(
        "the custom template does not render to valid JSON ({0}); write the body as JSON and put \
         placeholders inside strings, e.g. {{\"text\": \"{{{{title}}}}\"}}"
    )]
    NotJson(String),
}

fn placeholder_list() -> String {
    PLACEHOLDERS
        .iter()
        .map(|p| format!("{{{{{p}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The body of `event` in `template`, as sent.
pub fn webhook_body(template: &WebhookTemplate, event: &Event) -> Result<String, TemplateError> {
    let value = match template {
        WebhookTemplate::Standard => standard_envelope(event),
        // Slack's mrkdwn bolds with one star, Mattermost's Markdown with two.
        WebhookTemplate::Slack => {
            json!({ "text": format!("*{}*\n{}", event.title, event.message) })
        }
        WebhookTemplate::Mattermost => {
            json!({ "text": format!("**{}**\n{}", event.title, event.message) })
        }
        WebhookTemplate::Discord => {
            let text = format!("**{}**\n{}", event.title, event.message);
            json!({ "content": truncate_chars(&text, DISCORD_CONTENT_MAX_CHARS) })
        }
        WebhookTemplate::Custom { body } => return render_custom(body, event),
    };
    Ok(value.to_string())
}

/// The Standard Webhooks envelope: `{type, timestamp, data}`.
pub fn standard_envelope(event: &Event) -> Value {
    json!({
        "type": event.kind.name(),
        "timestamp": rfc3339(event.at),
        "data": event,
    })
}

/// Check a template the way delivery will use it: rendered for a sample
/// event (with every optional field set, and characters that need
/// escaping), the result must be JSON.
pub fn validate_template(template: &WebhookTemplate) -> Result<(), TemplateError> {
    webhook_body(template, &sample_event()).map(|_| ())
}

fn render_custom(body: &str, event: &Event) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(body.len() + event.message.len());
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let name = after[..end].trim();
        let value = placeholder_value(name, event)
            .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_owned()))?;
        out.push_str(&json_string_content(&value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    serde_json::from_str::<Value>(&out).map_err(|e| TemplateError::NotJson(e.to_string()))?;
    Ok(out)
}

fn placeholder_value(name: &str, event: &Event) -> Option<String> {
    let optional = |v: &Option<String>| v.clone().unwrap_or_default();
    Some(match name {
        "title" => event.title.clone(),
        "message" => event.message.clone(),
        "kind" => event.kind.name().to_owned(),
        "severity" => event.severity.name().to_owned(),
        "app" => event.app.clone(),
        "environment" => event.environment.clone(),
        "release" => optional(&event.release),
        "previous_release" => optional(&event.previous_release),
        "deployment_id" => optional(&event.deployment_id),
        "at" => rfc3339(event.at),
        "id" => event.id.clone(),
        _ => return None,
    })
}

/// `value` escaped for the inside of a JSON string (no quotes added: the
/// template's author writes them, `"{{title}}"`).
fn json_string_content(value: &str) -> String {
    let quoted = Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let mut cut: String = text.chars().take(max - 1).collect();
            cut.push('…');
            cut
        }
    }
}

/// `at` as RFC 3339 (`2026-12-03T06:00:00Z`), as payloads show times.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The event templates are checked against: every field set, with quotes,
/// backslashes and newlines that a naive substitution would break on.
fn sample_event() -> Event {
    Event {
        id: "evt_01J00000000000000000000000".into(),
        kind: EventKind::DeployFailed,
        app: "app-\"production\"".into(),
        environment: "production\\eu".into(),
        release: Some("1a2b3c".into()),
        previous_release: Some("0f9e8d".into()),
        deployment_id: Some("dep_1".into()),
        at: time::OffsetDateTime::UNIX_EPOCH,
        severity: Severity::Critical,
        title: "a \"quoted\" title".into(),
        message: "line one\nline two\t{{not a placeholder in a value}}".into(),
        details: Value::Null,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn event() -> Event {
        Event {
            id: "evt_01HZY".into(),
            kind: EventKind::DeploySucceeded,
            app: "events-production".into(),
            environment: "production".into(),
            release: Some("1a2b3c".into()),
            previous_release: None,
            deployment_id: Some("dep_7".into()),
            at: time::macros::datetime!(2026-12-03 06:00:00 UTC),
            severity: Severity::Info,
            title: "events/production: deployed 1a2b3c".into(),
            message: "Say \"hi\"\nto the new release.".into(),
            details: json!({"step": "switch"}),
        }
    }

    #[test]
    fn standard_is_the_standard_webhooks_envelope() {
        let body = webhook_body(&WebhookTemplate::Standard, &event()).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "deploy.succeeded");
        assert_eq!(v["timestamp"], "2026-12-03T06:00:00Z");
        assert_eq!(v["data"]["id"], "evt_01HZY");
        assert_eq!(v["data"]["details"]["step"], "switch");
        let back: Event = serde_json::from_value(v["data"].clone()).unwrap();
        assert_eq!(back, event());
    }

    #[test]
    fn chat_templates_put_title_then_message() {
        let slack: Value =
            serde_json::from_str(&webhook_body(&WebhookTemplate::Slack, &event()).unwrap())
                .unwrap();
        assert_eq!(
            slack["text"],
            "*events/production: deployed 1a2b3c*\nSay \"hi\"\nto the new release."
        );
        let mm: Value =
            serde_json::from_str(&webhook_body(&WebhookTemplate::Mattermost, &event()).unwrap())
                .unwrap();
        assert!(
            mm["text"]
                .as_str()
                .unwrap()
                .starts_with("**events/production")
        );
        let discord: Value =
            serde_json::from_str(&webhook_body(&WebhookTemplate::Discord, &event()).unwrap())
                .unwrap();
        assert!(
            discord["content"]
                .as_str()
                .unwrap()
                .starts_with("**events/")
        );
    }

    #[test]
    fn discord_content_is_cut_to_its_limit() {
        let mut e = event();
        e.message = "é".repeat(5000);
        let v: Value =
            serde_json::from_str(&webhook_body(&WebhookTemplate::Discord, &e).unwrap()).unwrap();
        let content = v["content"].as_str().unwrap();
        assert_eq!(content.chars().count(), DISCORD_CONTENT_MAX_CHARS);
        assert!(content.ends_with('…'));
    }

    #[test]
    fn custom_substitutes_escaped_values() {
        let t = WebhookTemplate::Custom {
            body:
                r#"{"summary": "{{title}}", "text": "{{ message }}", "k": "{{kind}}/{{severity}}",
                "r": "{{release}}", "p": "{{previous_release}}", "at": "{{at}}", "id": "{{id}}",
                "where": "{{app}} {{environment}} {{deployment_id}}"}"#
                    .into(),
        };
        let v: Value = serde_json::from_str(&webhook_body(&t, &event()).unwrap()).unwrap();
        assert_eq!(v["summary"], "events/production: deployed 1a2b3c");
        assert_eq!(v["text"], "Say \"hi\"\nto the new release.");
        assert_eq!(v["k"], "deploy.succeeded/info");
        assert_eq!(v["r"], "1a2b3c");
        assert_eq!(v["p"], "");
        assert_eq!(v["at"], "2026-12-03T06:00:00Z");
        assert_eq!(v["id"], "evt_01HZY");
        assert_eq!(v["where"], "events-production production dep_7");
    }

    #[test]
    fn custom_templates_are_checked() {
        let bad = |body: &str| {
            validate_template(&WebhookTemplate::Custom { body: body.into() }).unwrap_err()
        };
        assert!(
            matches!(bad(r#"{"a": "{{nope}}"}"#), TemplateError::UnknownPlaceholder(n) if n == "nope")
        );
        assert_eq!(bad(r#"{"a": "{{title"}"#), TemplateError::Unclosed);
        // A placeholder outside a string: fine for a number-like value in
        // some events, never JSON for a title.
        let e = bad(r#"{"a": {{title}}}"#);
        assert!(matches!(e, TemplateError::NotJson(_)), "{e}");
        assert!(e.to_string().contains("valid JSON"));
        assert!(
            bad(r#"{"a": "{{x}}"}"#)
                .to_string()
                .contains("{{title}}, {{message}}")
        );
        validate_template(&WebhookTemplate::Custom {
            body: r#"{"a": "{{title}}: {{message}}"}"#.into(),
        })
        .unwrap();
        for t in [
            WebhookTemplate::Standard,
            WebhookTemplate::Slack,
            WebhookTemplate::Discord,
            WebhookTemplate::Mattermost,
        ] {
            validate_template(&t).unwrap();
        }
    }
}
