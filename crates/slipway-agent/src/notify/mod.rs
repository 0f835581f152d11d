//! Notifications from the host: every event is logged as one JSON line at
//! once, then queued on the state volume for the app's channels (webhook,
//! ntfy) and delivered with retries by this agent, so a notification
//! survives the CLI going away and the agent restarting or being upgraded.
//! A delivery failure never changes anything but the delivery's own record.
//!
//! Map: [`store`] holds channels, the outbox and outcomes on the volume;
//! [`delivery`] is the worker (and the retry schedule's use); [`request`]
//! builds one attempt's request, signed by [`signing`]; [`http`] sends it.
//! Channels are looked up when an attempt is made, not when the event is
//! queued: a URL or secret fixed with `notify_configure` applies to the
//! retries of events already waiting.

pub mod delivery;
pub mod http;
pub mod request;
pub mod signing;
pub mod store;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use slipway_core::admin::{AdminError, AdminErrorKind, AdminResult, NotifyConfigureArgs};
use slipway_core::notify::retry::{Backoff, Verdict};
use slipway_core::notify::{
    ChannelStatus, Channels, DeliveryResult, Event, EventKind, NotifyStatus, Severity, payload,
};

use request::Channel;
use store::{OutboxEntry, Store};

/// The retry base when `start_delivery` was not told one.
const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);

pub struct Notifier {
    store: Store,
    /// Wakes the delivery worker when an entry is queued or finished.
    wake: tokio::sync::Notify,
    /// The HTTP client, made on first use (loading CA certificates).
    sender: OnceLock<Result<http::Sender, String>>,
    backoff: OnceLock<Backoff>,
}

fn error(kind: AdminErrorKind, message: String) -> AdminError {
    AdminError {
        kind,
        message,
        health: None,
        holder: None,
    }
}

fn bad_request(message: String) -> AdminError {
    error(AdminErrorKind::BadRequest, message)
}

fn internal(what: &str, e: impl std::fmt::Display) -> AdminError {
    error(AdminErrorKind::Internal, format!("{what}: {e}"))
}

impl Notifier {
    /// The notifier of the agent whose state directory is `state_dir`.
    pub fn open(state_dir: &Path) -> anyhow::Result<Arc<Self>> {
        let store = Store::open(state_dir).with_context(|| {
            format!(
                "cannot create the notification directory in {}",
                state_dir.display()
            )
        })?;
        Ok(Arc::new(Self {
            store,
            wake: tokio::sync::Notify::new(),
            sender: OnceLock::new(),
            backoff: OnceLock::new(),
        }))
    }

    /// Start the delivery worker (on the current runtime). It delivers once
    /// this agent holds the volume's delivery lock; see [`delivery`].
    pub fn start_delivery(self: &Arc<Self>, retry_base: Duration) {
        let _ = self.backoff.set(Backoff::new(retry_base));
        tokio::spawn(delivery::run(Arc::clone(self)));
    }

    fn backoff(&self) -> Backoff {
        self.backoff
            .get()
            .copied()
            .unwrap_or(Backoff::new(DEFAULT_RETRY_BASE))
    }

    fn sender(&self) -> Result<&http::Sender, String> {
        self.sender
            .get_or_init(http::Sender::new)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Log the event's JSON line and queue it for the app's channels. Never
    /// fails the caller: a problem is logged.
    pub fn raise(&self, event: Event) {
        let app = event.app.clone();
        if let Err(e) = self.raise_for(&app, event) {
            tracing::warn!(app, error = %e, "cannot queue the event's notifications");
        }
    }

    /// Log, then write one outbox entry per enabled channel of `app`;
    /// answers the channels queued for.
    fn raise_for(&self, app: &str, event: Event) -> Result<Vec<String>, String> {
        match serde_json::to_string(&event) {
            Ok(line) => tracing::info!(target: "slipway::event", event = %line, "{}", event.title),
            Err(e) => tracing::warn!("cannot serialise event {}: {e}", event.id),
        }
        store::app_file_name(app)?;
        let configured = self
            .store
            .channels(app)
            .map_err(|e| format!("cannot read the app's channels: {e}"))?
            .unwrap_or_default();
        let now = delivery::unix_ms();
        let mut queued = Vec::new();
        for channel in Channel::all(&configured.channels) {
            if configured.disabled.contains_key(channel.name()) {
                continue;
            }
            let entry = OutboxEntry {
                id: ulid::Ulid::new().to_string(),
                app: app.to_owned(),
                channel: channel.name().to_owned(),
                event: event.clone(),
                queued_unix_ms: now,
                attempts: 0,
                next_attempt_unix_ms: now,
                last_status: None,
                last_error: None,
            };
            self.store
                .save_entry(&entry)
                .map_err(|e| format!("cannot write to the outbox: {e}"))?;
            queued.push(channel.name().to_owned());
        }
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        Ok(queued)
    }

    /// `notify_configure`: check every channel, then store them (replacing
    /// the app's previous ones and clearing any 410 disable).
    pub fn configure(&self, a: NotifyConfigureArgs) -> Result<AdminResult, AdminError> {
        store::app_file_name(&a.app).map_err(bad_request)?;
        validate(&a.channels).map_err(bad_request)?;
        self.store
            .save_channels(&a.app, &a.channels)
            .map_err(|e| internal("cannot store the notification channels", e))?;
        let channels: Vec<String> = Channel::all(&a.channels)
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        tracing::info!(app = %a.app, channels = ?channels, "notification channels configured");
        Ok(AdminResult::NotifyConfigured {
            app: a.app,
            channels,
        })
    }

    /// `notify`: log and queue; answers the channels it was queued for
    /// (none configured or all disabled: logged only).
    pub fn queue(&self, app: &str, event: Event) -> Result<AdminResult, AdminError> {
        if event.id.is_empty()
            || event.id.len() > 200
            || !event.id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(bad_request(
                "the event id must be 1 to 200 visible ASCII characters (it is sent as the \
                 `webhook-id` header); use `evt_<ulid>`"
                    .into(),
            ));
        }
        let event_id = event.id.clone();
        let channels = self.raise_for(app, event).map_err(|e| {
            if store::app_file_name(app).is_err() {
                bad_request(e)
            } else {
                internal("cannot queue the event", e)
            }
        })?;
        Ok(AdminResult::Queued { event_id, channels })
    }

    /// `notify_test`: a `notify.test` event to every configured channel
    /// now, one attempt each within the channel's timeout; not queued.
    pub async fn test(&self, app: &str) -> Result<AdminResult, AdminError> {
        store::app_file_name(app).map_err(bad_request)?;
        let configured = self
            .store
            .channels(app)
            .map_err(|e| internal("cannot read the app's channels", e))?
            .unwrap_or_default();
        let channels = Channel::all(&configured.channels);
        if channels.is_empty() {
            return Err(error(
                AdminErrorKind::NotFound,
                format!(
                    "no notification channel is configured for `{app}`; configure a webhook or an \
                     ntfy topic for the environment (the CLI sends `notify_configure`), then test \
                     again"
                ),
            ));
        }
        let event = Event {
            id: format!("evt_{}", ulid::Ulid::new()),
            kind: EventKind::Test,
            app: app.to_owned(),
            environment: String::new(),
            release: None,
            previous_release: None,
            deployment_id: None,
            at: time::OffsetDateTime::now_utc(),
            severity: Severity::Info,
            title: format!("{app}: test notification"),
            message: "Slipway's agent sent this to check the channel; nothing happened to the app."
                .into(),
            details: serde_json::json!({ "by": "notify_test" }),
        };
        let attempts = channels
            .iter()
            .map(|c| delivery::attempt_once(self, c, &event));
        let outcomes = futures_util::future::join_all(attempts).await;
        let mut results = Vec::new();
        for (channel, attempt) in channels.iter().zip(outcomes) {
            let (outcome, error) = match attempt.verdict {
                Verdict::Delivered => ("delivered", None),
                Verdict::Gone => ("disabled", Some(delivery::disable_gone(self, app, channel))),
                Verdict::Retry { .. } | Verdict::Fail => ("failed", attempt.error),
            };
            let result = DeliveryResult {
                channel: channel.name().to_owned(),
                event_id: event.id.clone(),
                event: event.kind.name().to_owned(),
                outcome: outcome.to_owned(),
                attempts: 1,
                status: attempt.status,
                error,
                next_attempt_unix_ms: None,
            };
            if let Err(e) = self.store.push_result(app, result.clone()) {
                tracing::warn!(app, error = %e, "cannot record a notification's outcome");
            }
            results.push(result);
        }
        Ok(AdminResult::NotifyResults { results })
    }

    /// `notify_status`: the app's channels, its queued deliveries, and the
    /// last outcomes.
    pub fn status(&self, app: &str) -> Result<AdminResult, AdminError> {
        store::app_file_name(app).map_err(bad_request)?;
        let configured = self
            .store
            .channels(app)
            .map_err(|e| internal("cannot read the app's channels", e))?
            .unwrap_or_default();
        let channels = Channel::all(&configured.channels)
            .iter()
            .map(|c| {
                let reason = configured.disabled.get(c.name()).cloned();
                ChannelStatus {
                    channel: c.name().to_owned(),
                    destination: c.destination(),
                    disabled: reason.is_some(),
                    disabled_reason: reason,
                }
            })
            .collect();
        let pending = self
            .store
            .entries()
            .into_iter()
            .filter(|e| e.app == app)
            .map(|e| DeliveryResult {
                channel: e.channel,
                event_id: e.event.id,
                event: e.event.kind.name().to_owned(),
                outcome: if e.attempts == 0 {
                    "pending"
                } else {
                    "retrying"
                }
                .to_owned(),
                attempts: e.attempts,
                status: e.last_status,
                error: e.last_error,
                next_attempt_unix_ms: Some(e.next_attempt_unix_ms),
            })
            .collect();
        let recent = self
            .store
            .results(app)
            .map_err(|e| internal("cannot read the recent notification outcomes", e))?;
        Ok(AdminResult::NotifyStatus(Box::new(NotifyStatus {
            app: app.to_owned(),
            channels,
            pending,
            recent,
        })))
    }
}

/// Check channels before storing them; the message names the field and the
/// fix, never a credential's value.
pub fn validate(channels: &Channels) -> Result<(), String> {
    if let Some(w) = &channels.webhook {
        check_url(w.url.expose(), "the webhook URL")?;
        if let Some(secret) = &w.secret {
            signing::SigningKey::from_secret(secret.expose())?;
        }
        payload::validate_template(&w.template).map_err(|e| e.to_string())?;
        check_times("webhook", w.timeout_ms, w.give_up_after_ms)?;
    }
    if let Some(n) = &channels.ntfy {
        check_url(&n.server, "the ntfy server")?;
        if n.topic.is_empty() || n.topic.contains('/') || n.topic.len() > 64 {
            return Err(
                "the ntfy topic must be 1 to 64 characters without `/` (e.g. `myapp-deploys`)"
                    .into(),
            );
        }
        if let Some(p) = n.priority
            && !(1..=5).contains(&p)
        {
            return Err(format!("the ntfy priority must be 1 to 5, not {p}"));
        }
        if let Some(token) = &n.token
            && (token.expose().is_empty() || !token.expose().bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err("the ntfy token must be non-empty visible ASCII (e.g. `tk_...`)".into());
        }
        check_times("ntfy", n.timeout_ms, n.give_up_after_ms)?;
    }
    Ok(())
}

fn check_url(url: &str, what: &str) -> Result<(), String> {
    // Never quote the URL: it may carry a token.
    let uri: hyper::Uri = url.parse().map_err(|_| {
        format!("{what} is not a valid URL; give an absolute http:// or https:// URL")
    })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{what} must start with http:// or https://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!(
            "{what} has no host; give an absolute http:// or https:// URL"
        ));
    }
    Ok(())
}

fn check_times(channel: &str, timeout_ms: u64, give_up_after_ms: u64) -> Result<(), String> {
    if timeout_ms == 0 {
        return Err(format!(
            "the {channel} channel's timeout_ms must be at least 1 (10000 is a sensible value)"
        ));
    }
    if give_up_after_ms < timeout_ms {
        return Err(format!(
            "the {channel} channel's give_up_after_ms ({give_up_after_ms}) is shorter than one \
             attempt's timeout_ms ({timeout_ms}); give it at least as long"
        ));
    }
    Ok(())
}
