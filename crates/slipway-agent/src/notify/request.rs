//! The HTTP request of one attempt on one channel: URL, headers (signed for
//! webhooks, bearer token for ntfy) and body. Built anew for every attempt
//! from the channel as configured now, so a fixed URL or secret applies to
//! the retries of events already queued.

use std::time::Duration;

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use slipway_core::notify::{Channels, Event, NtfyChannel, WebhookChannel, ntfy, payload, redact};

use super::signing::SigningKey;

pub const WEBHOOK: &str = "webhook";
pub const NTFY: &str = "ntfy";

/// One configured channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Webhook(WebhookChannel),
    Ntfy(NtfyChannel),
}

impl Channel {
    /// The app's channels, in a fixed order.
    pub fn all(channels: &Channels) -> Vec<Channel> {
        let mut all = Vec::new();
        if let Some(w) = &channels.webhook {
            all.push(Channel::Webhook(w.clone()));
        }
        if let Some(n) = &channels.ntfy {
            all.push(Channel::Ntfy(n.clone()));
        }
        all
    }

    pub fn named(channels: &Channels, name: &str) -> Option<Channel> {
        Self::all(channels).into_iter().find(|c| c.name() == name)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Webhook(_) => WEBHOOK,
            Self::Ntfy(_) => NTFY,
        }
    }

    /// Where it goes, safe to show.
    pub fn destination(&self) -> String {
        match self {
            Self::Webhook(w) => redact::destination(w.url.expose()),
            Self::Ntfy(n) => redact::destination(&n.server),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(match self {
            Self::Webhook(w) => w.timeout_ms,
            Self::Ntfy(n) => n.timeout_ms,
        })
    }

    pub fn give_up_after(&self) -> Duration {
        Duration::from_millis(match self {
            Self::Webhook(w) => w.give_up_after_ms,
            Self::Ntfy(n) => n.give_up_after_ms,
        })
    }
}

/// A request ready to send.
pub struct Built {
    pub url: String,
    pub headers: HeaderMap,
    pub body: String,
}

fn user_agent() -> HeaderValue {
    HeaderValue::from_static(concat!("slipway-agent/", env!("CARGO_PKG_VERSION")))
}

fn header(value: &str, what: &str) -> Result<HeaderValue, String> {
    HeaderValue::try_from(value).map_err(|_| format!("{what} is not a valid HTTP header value"))
}

/// The request for `event` on `channel`, signed at `now_unix` (seconds).
/// An error is permanent: retrying would build the same request.
pub fn build(channel: &Channel, event: &Event, now_unix: i64) -> Result<Built, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, user_agent());
    match channel {
        Channel::Webhook(w) => {
            let body = payload::webhook_body(&w.template, event).map_err(|e| e.to_string())?;
            headers.insert(
                HeaderName::from_static("webhook-id"),
                header(&event.id, "the event id")?,
            );
            headers.insert(
                HeaderName::from_static("webhook-timestamp"),
                HeaderValue::from(now_unix),
            );
            if let Some(secret) = &w.secret {
                let key = SigningKey::from_secret(secret.expose())?;
                headers.insert(
                    HeaderName::from_static("webhook-signature"),
                    header(&key.sign(&event.id, now_unix, &body), "the signature")?,
                );
            }
            Ok(Built {
                url: w.url.expose().to_owned(),
                headers,
                body,
            })
        }
        Channel::Ntfy(n) => {
            let publish = ntfy::publish(n, event);
            if let Some(token) = &publish.bearer {
                let mut value = header(&format!("Bearer {}", token.expose()), "the ntfy token")?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            Ok(Built {
                url: publish.url,
                headers,
                body: publish.body,
            })
        }
    }
}
