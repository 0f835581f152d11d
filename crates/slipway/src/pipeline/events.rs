//! Events the CLI raises about the deploys and rollbacks it runs, and the
//! channels they go to. Each event is printed as a JSON line (with
//! `--log-format json`) and handed to the host's agent, which logs it,
//! queues it on its volume and delivers it to the configured channels, so
//! delivery goes on after this command exits. Nothing here can fail a
//! deploy: a notification problem is a note, never an error.

use serde_json::Value;
use slipway_core::admin::{AdminRequest, AdminResult, NotifyArgs, NotifyConfigureArgs};
use slipway_core::config::schema::{Notifications, WebhookFormat};
use slipway_core::notify::{
    Channels, Credential, Event, EventKind, NtfyChannel, Severity, WebhookChannel, WebhookTemplate,
};

use super::context::{StepError, Target};
use crate::output::Printer;

/// The facts an event carries about one deploy.
#[derive(Clone, Debug, Default)]
pub struct About {
    pub release: Option<String>,
    pub previous_release: Option<String>,
    pub deployment_id: Option<String>,
}

/// A new event for this environment.
pub fn event(
    t: &Target,
    kind: EventKind,
    severity: Severity,
    about: &About,
    title: String,
    message: String,
    details: Value,
) -> Event {
    Event {
        id: format!("evt_{}", ulid::Ulid::new()),
        kind,
        app: t.names.route(),
        environment: t.config.environment.clone(),
        release: about.release.clone(),
        previous_release: about.previous_release.clone(),
        deployment_id: about.deployment_id.clone(),
        at: time::OffsetDateTime::now_utc(),
        severity,
        title,
        message,
        details,
    }
}

/// `<app>/<env>`, how events name the environment.
pub fn subject(t: &Target) -> String {
    format!("{}/{}", t.config.settings.app.name, t.config.environment)
}

/// Print the event's JSON line and queue it on the agent. Returns whether
/// the agent took it.
pub async fn raise(t: &Target, printer: &Printer, event: Event) -> bool {
    printer.event(&event);
    // No agent yet (the deploy failed before provisioning it): the JSON
    // line is all there is.
    if t.engine.inspect(&t.names.agent()).await.is_none() {
        return false;
    }
    let title = event.title.clone();
    match t
        .agent_call(AdminRequest::Notify(NotifyArgs {
            app: t.names.route(),
            event,
        }))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            printer.note(&format!(
                "    note: the notification \"{title}\" was not queued on the agent: {e}"
            ));
            false
        }
    }
}

/// The channels of `notifications`, with their credentials, as the agent
/// takes them.
pub fn channels(n: &Notifications) -> Channels {
    Channels {
        webhook: n.webhook.as_ref().map(|w| WebhookChannel {
            url: Credential::new(&w.url),
            secret: w.secret.as_ref().map(Credential::new),
            template: match w.format {
                WebhookFormat::Standard => WebhookTemplate::Standard,
                WebhookFormat::Slack => WebhookTemplate::Slack,
                WebhookFormat::Discord => WebhookTemplate::Discord,
                WebhookFormat::Mattermost => WebhookTemplate::Mattermost,
                WebhookFormat::Custom => WebhookTemplate::Custom {
                    body: w.body.clone().unwrap_or_default(),
                },
            },
            timeout_ms: w.timeout.0.as_millis() as u64,
            give_up_after_ms: w.give_up_after.0.as_millis() as u64,
        }),
        ntfy: n.ntfy.as_ref().map(|c| NtfyChannel {
            server: c.server.clone(),
            topic: c.topic.clone(),
            token: c.token.as_ref().map(Credential::new),
            priority: c.priority,
            tags: c.tags.clone(),
            click: c.click.clone(),
            timeout_ms: c.timeout.0.as_millis() as u64,
            give_up_after_ms: c.give_up_after.0.as_millis() as u64,
        }),
    }
}

/// Tell the agent where this environment's events go (every deploy, so a
/// changed `.env.<env>` takes effect; no channel clears them). Returns the
/// channel names.
pub async fn configure(t: &Target) -> Result<Vec<String>, StepError> {
    let request = AdminRequest::NotifyConfigure(NotifyConfigureArgs {
        app: t.names.route(),
        channels: channels(&t.config.settings.notifications),
    });
    match t.agent_call(request).await {
        Ok(AdminResult::NotifyConfigured { channels, .. }) => Ok(channels),
        Ok(other) => Err(StepError::new(format!(
            "unexpected agent answer: {other:?}"
        ))),
        Err(e) => Err(StepError::from(e).hint(
            "check `notifications` in deployment.yml and its values in .env.<env> \
             (`slipway config validate`); `slipway notify test <env>` tries each channel",
        )),
    }
}
