//! Maintenance mode on the agent: the `maintenance_on` / `maintenance_off`
//! verbs (a change of the app's route, persisted in the ledger like any
//! other, so a restart or an upgrade keeps it) and the answer the proxy
//! gives while it is on: 503, `Retry-After`, `Cache-Control: no-store`, and
//! a small page: HTML for a browser (`Accept: text/html`), JSON otherwise.
//!
//! The answers are counted in `slipway_maintenance_responses_total`, not as
//! 5xx of the release: the post-deploy analysis (which reads the targets'
//! counters) never mistakes them for the release failing.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use slipway_core::admin::{AdminError, AdminErrorKind, AdminResult, MaintenanceOffArgs};
use slipway_core::maintenance::{Maintenance, MaintenanceMode, MaintenanceOnArgs};

use crate::router::{Pause, Router};

/// Maintenance as the route table holds it: the record, and its answers
/// rendered once (not per request).
#[derive(Debug)]
pub struct Active {
    pub record: Maintenance,
    html: Bytes,
    json: Bytes,
    pub retry_after: HeaderValue,
}

/// What the page says when the operator gave no message.
const DEFAULT_MESSAGE: &str = "The service is down for maintenance. Please try again shortly.";

impl Active {
    pub fn new(record: Maintenance) -> Self {
        let message = record.message.as_deref().unwrap_or(DEFAULT_MESSAGE);
        let since = record
            .since
            .replace_nanosecond(0)
            .unwrap_or(record.since)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let json = serde_json::json!({
            "error": "maintenance",
            "message": message,
            "retry_after_secs": record.retry_after_secs,
            "since": since,
        });
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex\"><title>Down for maintenance</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;\
             padding:0 1rem;color:#222;line-height:1.5}}h1{{font-size:1.5rem}}\
             p.retry{{color:#666}}</style></head><body>\n<h1>Down for maintenance</h1>\n\
             <p>{}</p>\n<p class=\"retry\">Please retry in about {}.</p>\n</body></html>\n",
            escape_html(message).replace('\n', "<br>"),
            human_secs(record.retry_after_secs)
        );
        Self {
            retry_after: HeaderValue::from(record.retry_after_secs),
            record,
            html: Bytes::from(html),
            json: Bytes::from(format!("{json}\n")),
        }
    }

    /// The body and its content type for a request's `Accept` header.
    pub fn answer(&self, accept: Option<&HeaderValue>) -> (Bytes, &'static str) {
        if wants_html(accept.map(HeaderValue::as_bytes)) {
            (self.html.clone(), "text/html; charset=utf-8")
        } else {
            (self.json.clone(), "application/json")
        }
    }
}

/// Whether a client asks for HTML: `text/html` among its accepted types
/// (with a non-zero quality), as every browser's navigation does. API
/// clients (`*/*`, `application/json`, none) get JSON.
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    let Some(accept) = accept.and_then(|a| std::str::from_utf8(a).ok()) else {
        return false;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("text/html") && !zero
    })
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human_secs(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} seconds"),
        120..=7199 => format!("{} minutes", secs.div_ceil(60)),
        _ => format!("{} hours", secs.div_ceil(3600)),
    }
}

/// The pause gate a `hold` maintenance holds requests at.
pub fn hold_gate(record: &Maintenance) -> Option<Arc<Pause>> {
    (record.mode == MaintenanceMode::Hold).then(|| {
        Arc::new(Pause::for_maintenance(Duration::from_millis(
            record.hold_max_wait_ms,
        )))
    })
}

fn bad_request(message: String) -> AdminError {
    AdminError {
        kind: AdminErrorKind::BadRequest,
        message,
        health: None,
        holder: None,
    }
}

/// `maintenance_on`.
pub async fn on(router: &Router, a: MaintenanceOnArgs) -> Result<AdminResult, AdminError> {
    if let Some(problem) = a.problem() {
        return Err(bad_request(format!(
            "maintenance for app `{}` refused: {problem}",
            a.app
        )));
    }
    let now = router.now();
    let (before, now_on) = router
        .update_route(&a.app, |route| {
            let before = route.maintenance.as_ref().map(|m| m.record.clone());
            let record = a.record(now, before.as_ref());
            // A hold gate of an earlier maintenance is replaced (its held
            // requests re-read the table: page or new gate); a pause of
            // the pause verb is left alone.
            let mut release = None;
            if route.pause.as_ref().is_some_and(|p| p.by_maintenance()) {
                release = route.pause.take();
            }
            if route.pause.is_none() {
                route.pause = hold_gate(&record);
            }
            route.maintenance = Some(Arc::new(Active::new(record.clone())));
            Ok(((before, record), release))
        })
        .await?;
    tracing::warn!(app = %a.app, by = %now_on.by, mode = %now_on.mode,
        deployment = ?now_on.deployment_id, "maintenance on");
    Ok(AdminResult::Maintenance {
        app: a.app,
        maintenance: Some(Box::new(now_on)),
        before: before.map(Box::new),
    })
}

/// `maintenance_off`: lifting it twice is not an error (the answer says it
/// was off).
pub async fn off(router: &Router, a: MaintenanceOffArgs) -> Result<AdminResult, AdminError> {
    let lifted = router
        .update_route(&a.app, |route| {
            let lifted = route.maintenance.take().map(|m| m.record.clone());
            let release = if route.pause.as_ref().is_some_and(|p| p.by_maintenance()) {
                route.pause.take()
            } else {
                None
            };
            Ok((lifted, release))
        })
        .await?;
    if let Some(m) = &lifted {
        let on_for = (router.now() - m.since).whole_seconds();
        tracing::info!(app = %a.app, by = %a.by, on_for_secs = on_for, "maintenance off");
    }
    Ok(AdminResult::Maintenance {
        app: a.app,
        maintenance: None,
        before: lifted.map(Box::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message: Option<&str>) -> Maintenance {
        Maintenance {
            mode: MaintenanceMode::Page,
            retry_after_secs: 120,
            message: message.map(str::to_owned),
            since: time::OffsetDateTime::UNIX_EPOCH,
            by: "alice@laptop".into(),
            deployment_id: None,
            hold_max_wait_ms: 30_000,
        }
    }

    #[test]
    fn browsers_get_html_and_everything_else_json() {
        let chrome = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(Some(chrome)));
        assert!(wants_html(Some(b"TEXT/HTML")));
        assert!(!wants_html(Some(b"*/*")));
        assert!(!wants_html(Some(b"application/json")));
        assert!(!wants_html(Some(b"text/html;q=0, application/json")));
        assert!(!wants_html(None));
    }

    #[test]
    fn the_page_escapes_the_message_and_the_json_names_the_error() {
        let a = Active::new(record(Some("<b>DB</b> upgrade & reindex\nback at 10:00")));
        let (html, ct) = a.answer(Some(&HeaderValue::from_static("text/html")));
        assert_eq!(ct, "text/html; charset=utf-8");
        let html = String::from_utf8_lossy(&html);
        assert!(
            html.contains("&lt;b&gt;DB&lt;/b&gt; upgrade &amp; reindex<br>back at 10:00"),
            "{html}"
        );
        assert!(html.contains("about 2 minutes"), "{html}");
        let (json, ct) = a.answer(None);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(v["error"], "maintenance");
        assert_eq!(v["retry_after_secs"], 120);
        assert_eq!(v["since"], "1970-01-01T00:00:00Z");
        assert_eq!(a.retry_after, HeaderValue::from_static("120"));
        let plain = Active::new(record(None));
        let v: serde_json::Value = serde_json::from_slice(&plain.answer(None).0).expect("json");
        assert_eq!(v["message"], DEFAULT_MESSAGE);
    }
}
