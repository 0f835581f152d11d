//! The delivery worker: one per agent, and only the agent holding
//! `deliver.lock` delivers, so during an upgrade the old agent delivers
//! until it exits and the new one continues from the same outbox. Entries
//! are attempted in parallel; each attempt's outcome is written back to the
//! outbox before the next one is scheduled, so a restart resumes where the
//! last agent stopped.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slipway_core::notify::retry::{self, Verdict};
use slipway_core::notify::{DeliveryResult, Event};

use super::Notifier;
use super::http::Answer;
use super::request::{self, Channel};
use super::store::OutboxEntry;

/// How often a waiting agent tries to take `deliver.lock`.
const LOCK_RETRY: Duration = Duration::from_secs(1);
/// The longest the worker sleeps without looking at the outbox (it also
/// picks up entries another agent on the volume queued).
const IDLE_RESCAN: Duration = Duration::from_secs(30);
/// At most this many attempts at once: a backlog (a receiver back after an
/// outage) is worked through without opening hundreds of connections. The
/// end of each attempt wakes the worker for the next one.
const MAX_IN_FLIGHT: usize = 16;

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn try_lock(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
    Ok(file)
}

/// Wait until this agent holds `deliver.lock`; the returned file holds it
/// for as long as it is open (the lock goes with the process).
async fn hold_lock(path: &Path) -> std::fs::File {
    let mut said = false;
    loop {
        match try_lock(path) {
            Ok(file) => return file,
            Err(e) if !said => {
                said = true;
                tracing::info!(error = %e, "another agent delivers this volume's notifications; \
                    waiting for it to stop");
            }
            Err(_) => {}
        }
        tokio::time::sleep(LOCK_RETRY).await;
    }
}

/// The worker's loop; runs for the life of the agent.
pub async fn run(notifier: Arc<Notifier>) {
    let _lock = hold_lock(&notifier.store.lock_path()).await;
    tracing::info!("delivering notifications queued on this volume");
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let now = unix_ms();
        let mut next_due: Option<u64> = None;
        for entry in notifier.store.entries() {
            let mut busy = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if busy.contains(&entry.id) {
                continue;
            }
            if busy.len() >= MAX_IN_FLIGHT {
                break;
            }
            if entry.next_attempt_unix_ms > now {
                next_due = Some(next_due.map_or(entry.next_attempt_unix_ms, |t| {
                    t.min(entry.next_attempt_unix_ms)
                }));
                continue;
            }
            busy.insert(entry.id.clone());
            let (notifier, in_flight) = (Arc::clone(&notifier), Arc::clone(&in_flight));
            tokio::spawn(async move {
                let id = entry.id.clone();
                attempt_entry(&notifier, entry).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                notifier.wake.notify_one();
            });
        }
        let wait = next_due
            .map_or(IDLE_RESCAN, |t| {
                Duration::from_millis(t.saturating_sub(now))
            })
            .min(IDLE_RESCAN);
        // A wake before this select is kept as a permit: none is lost.
        tokio::select! {
            () = notifier.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One attempt's outcome.
pub struct Attempt {
    pub status: Option<u16>,
    pub verdict: Verdict,
    pub error: Option<String>,
}

/// Send `event` to `channel` once.
pub async fn attempt_once(notifier: &Notifier, channel: &Channel, event: &Event) -> Attempt {
    let built = match request::build(channel, event, unix_secs()) {
        Ok(b) => b,
        Err(e) => {
            return Attempt {
                status: None,
                verdict: Verdict::Fail,
                error: Some(e),
            };
        }
    };
    let sender = match notifier.sender() {
        Ok(s) => s,
        Err(e) => {
            return Attempt {
                status: None,
                verdict: Verdict::Retry { retry_after: None },
                error: Some(e),
            };
        }
    };
    let destination = channel.destination();
    match sender
        .post(&built.url, built.headers, built.body, channel.timeout())
        .await
    {
        Answer::Status { code, retry_after } => Attempt {
            status: Some(code),
            verdict: retry::classify(code, retry_after),
            error: (!(200..300).contains(&code))
                .then(|| format!("{destination} answered HTTP {code}")),
        },
        Answer::NoAnswer(e) => Attempt {
            status: None,
            verdict: Verdict::Retry { retry_after: None },
            error: Some(format!("{destination}: {e}")),
        },
    }
}

/// Disable a channel that answered 410 Gone.
pub fn disable_gone(notifier: &Notifier, app: &str, channel: &Channel) -> String {
    let at = slipway_core::notify::payload::rfc3339(time::OffsetDateTime::now_utc());
    let reason = format!(
        "{} answered 410 Gone at {at}: the receiver no longer exists; nothing is sent to this \
         channel until it is configured again",
        channel.destination()
    );
    if let Err(e) = notifier.store.disable(app, channel.name(), reason.clone()) {
        tracing::warn!(app, channel = channel.name(), error = %e, "cannot record that the channel is disabled");
    }
    reason
}

fn result(entry: &OutboxEntry, outcome: &str, next: Option<u64>) -> DeliveryResult {
    DeliveryResult {
        channel: entry.channel.clone(),
        event_id: entry.event.id.clone(),
        event: entry.event.kind.name().to_owned(),
        outcome: outcome.to_owned(),
        attempts: entry.attempts,
        status: entry.last_status,
        error: entry.last_error.clone(),
        next_attempt_unix_ms: next,
    }
}

/// The delivery has ended: drop the entry, then record the outcome (in that
/// order: a crash between the two loses a record, never sends twice).
fn finish(notifier: &Notifier, entry: &OutboxEntry, outcome: &str) {
    if let Err(e) = notifier.store.remove_entry(&entry.id) {
        tracing::error!(entry = %entry.id, error = %e,
            "cannot remove a finished notification from the outbox; it will be sent again");
    }
    if let Err(e) = notifier
        .store
        .push_result(&entry.app, result(entry, outcome, None))
    {
        tracing::warn!(app = %entry.app, error = %e, "cannot record a notification's outcome");
    }
}

async fn attempt_entry(notifier: &Notifier, mut entry: OutboxEntry) {
    let configured = match notifier.store.channels(&entry.app) {
        Ok(c) => c,
        Err(e) => {
            // The config is unreadable now; it may be rewritten. Not an
            // attempt: try again later without spending one.
            tracing::warn!(app = %entry.app, error = %e, "cannot read the app's notification channels");
            entry.next_attempt_unix_ms = unix_ms().saturating_add(
                u64::try_from(notifier.backoff().ceiling(1).as_millis()).unwrap_or(u64::MAX),
            );
            let _ = notifier.store.save_entry(&entry);
            return;
        }
    };
    let Some(configured) = configured else {
        entry.last_error = Some("no channel is configured for the app any more".into());
        return finish(notifier, &entry, "failed");
    };
    let Some(channel) = Channel::named(&configured.channels, &entry.channel) else {
        entry.last_error = Some(format!(
            "the {} channel is no longer configured",
            entry.channel
        ));
        return finish(notifier, &entry, "failed");
    };
    if let Some(reason) = configured.disabled.get(&entry.channel) {
        entry.last_error = Some(reason.clone());
        return finish(notifier, &entry, "disabled");
    }
    let attempt = attempt_once(notifier, &channel, &entry.event).await;
    entry.attempts += 1;
    entry.last_status = attempt.status;
    entry.last_error = attempt.error;
    let log_failure = |entry: &OutboxEntry, what: &str| {
        tracing::warn!(app = %entry.app, channel = %entry.channel, destination = %channel.destination(),
            event_id = %entry.event.id, event = entry.event.kind.name(), attempt = entry.attempts,
            status = entry.last_status, error = entry.last_error.as_deref().unwrap_or(""),
            "notification delivery failed; {what}");
    };
    match attempt.verdict {
        Verdict::Delivered => finish(notifier, &entry, "delivered"),
        Verdict::Gone => {
            entry.last_error = Some(disable_gone(notifier, &entry.app, &channel));
            log_failure(&entry, "channel disabled until configured again");
            finish(notifier, &entry, "disabled");
        }
        Verdict::Fail => {
            log_failure(&entry, "the receiver refused it; not retried");
            finish(notifier, &entry, "failed");
        }
        Verdict::Retry { retry_after } => {
            let now = unix_ms();
            let elapsed = Duration::from_millis(now.saturating_sub(entry.queued_unix_ms));
            match retry::next_delay(
                &notifier.backoff(),
                entry.attempts,
                rand::random::<f64>(),
                retry_after,
                elapsed,
                channel.give_up_after(),
            ) {
                Some(wait) => {
                    entry.next_attempt_unix_ms =
                        now.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                    log_failure(&entry, &format!("retrying in {} ms", wait.as_millis()));
                    if let Err(e) = notifier.store.save_entry(&entry) {
                        tracing::error!(entry = %entry.id, error = %e, "cannot update a queued notification");
                    }
                }
                None => {
                    let budget = channel.give_up_after().as_millis();
                    entry.last_error = Some(format!(
                        "gave up after {} attempts within give_up_after_ms = {budget}: {}",
                        entry.attempts,
                        entry.last_error.as_deref().unwrap_or("no answer")
                    ));
                    log_failure(&entry, "giving up");
                    finish(notifier, &entry, "failed");
                }
            }
        }
    }
}
