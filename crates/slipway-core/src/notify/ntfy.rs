//! What an ntfy channel sends: ntfy's JSON publishing (a POST to the
//! server's root with the topic in the body), so titles and messages need
//! no header encoding and every field is escaped by the JSON writer.

use serde_json::{Value, json};

use super::{Event, NtfyChannel, Severity};

/// One publish request: where, what, and the bearer token if any (its
/// Debug never shows the token: a [`super::Credential`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NtfyPublish {
    /// The server's root (`https://ntfy.sh/`).
    pub url: String,
    pub body: String,
    pub bearer: Option<super::Credential>,
}

/// ntfy's default priority, and the one for warnings.
const PRIORITY_DEFAULT: u8 = 3;
const PRIORITY_HIGH: u8 = 4;
const PRIORITY_MAX: u8 = 5;

/// The priority of an event on this channel: critical ones get the
/// channel's `priority` (5 when unset), warnings 4, the rest 3.
pub fn priority(channel: &NtfyChannel, severity: Severity) -> u8 {
    match severity {
        Severity::Critical => channel
            .priority
            .unwrap_or(PRIORITY_MAX)
            .clamp(1, PRIORITY_MAX),
        Severity::Warning => PRIORITY_HIGH,
        Severity::Info => PRIORITY_DEFAULT,
    }
}

/// The emoji shortcode ntfy shows in front of the title.
pub fn severity_tag(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "rotating_light",
        Severity::Warning => "warning",
        Severity::Info => "information_source",
    }
}

/// The publish request for `event` on `channel`.
pub fn publish(channel: &NtfyChannel, event: &Event) -> NtfyPublish {
    let mut tags = vec![severity_tag(event.severity).to_owned()];
    tags.extend(channel.tags.iter().cloned());
    let mut body = json!({
        "topic": channel.topic,
        "title": event.title,
        "message": event.message,
        "priority": priority(channel, event.severity),
        "tags": tags,
    });
    if let (Some(click), Value::Object(map)) = (&channel.click, &mut body) {
        map.insert("click".into(), Value::String(click.clone()));
    }
    NtfyPublish {
        url: format!("{}/", channel.server.trim_end_matches('/')),
        body: body.to_string(),
        bearer: channel.token.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Credential;

    fn channel() -> NtfyChannel {
        NtfyChannel {
            server: "https://ntfy.example.org/".into(),
            topic: "deploys".into(),
            token: Some(Credential::new("tk_secret")),
            priority: Some(4),
            tags: vec!["slipway".into()],
            click: Some("https://events.example.org".into()),
            timeout_ms: 5000,
            give_up_after_ms: 60_000,
        }
    }

    #[test]
    fn publishes_json_to_the_server_root() {
        let mut e = crate::notify::payload::tests::event();
        e.severity = Severity::Critical;
        let p = publish(&channel(), &e);
        assert_eq!(p.url, "https://ntfy.example.org/");
        assert_eq!(p.bearer.as_ref().map(Credential::expose), Some("tk_secret"));
        assert!(!format!("{p:?}").contains("tk_secret"));
        let v: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(v["topic"], "deploys");
        assert_eq!(v["title"], e.title);
        assert_eq!(v["message"], e.message);
        assert_eq!(v["priority"], 4);
        assert_eq!(v["tags"], json!(["rotating_light", "slipway"]));
        assert_eq!(v["click"], "https://events.example.org");
    }

    #[test]
    fn priority_follows_severity() {
        let mut c = channel();
        assert_eq!(priority(&c, Severity::Critical), 4);
        c.priority = None;
        assert_eq!(priority(&c, Severity::Critical), 5);
        c.priority = Some(9);
        assert_eq!(priority(&c, Severity::Critical), 5);
        assert_eq!(priority(&c, Severity::Warning), 4);
        assert_eq!(priority(&c, Severity::Info), 3);
        c.click = None;
        let v: Value =
            serde_json::from_str(&publish(&c, &crate::notify::payload::tests::event()).body)
                .unwrap();
        assert!(v.get("click").is_none());
        assert_eq!(v["tags"][0], "information_source");
    }
}
