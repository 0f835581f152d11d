//! Progress of a database task for the operator: the migration runner and
//! the snapshot code report through `tracing` (the library never prints), and
//! this turns their info-level messages (lock waiting, each file applied with
//! its duration, snapshot written) into lines on stderr while the task runs,
//! whatever `-v` level the global logger uses.

use std::future::Future;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Where progress lines go (e.g. `Printer::note`).
pub type ProgressSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Targets whose info messages are progress; warnings from anywhere pass.
const PROGRESS_TARGETS: &[&str] = &[
    "slipway_core::migrate",
    "slipway_core::snapshot",
    "slipway_core::rate",
    "slipway::tasks",
];

/// Runs `fut` with its progress messages sent to `sink`.
pub async fn with_progress_sink<F: Future>(sink: ProgressSink, fut: F) -> F::Output {
    let subscriber =
        tracing_subscriber::registry().with(ProgressLayer { sink }.with_filter(LevelFilter::INFO));
    fut.with_subscriber(subscriber).await
}

/// Runs `fut`, handing each progress message to `note` as it arrives (on
/// this task, so `note` may borrow, e.g. the command's `Printer`).
pub async fn with_progress<F: Future>(note: &dyn Fn(&str), fut: F) -> F::Output {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let sink: ProgressSink = Arc::new(move |line: &str| {
        // The receiver lives until the work is done; a late line is dropped.
        let _ = tx.send(line.to_string());
    });
    let work = with_progress_sink(sink, fut);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => {
                while let Ok(line) = rx.try_recv() {
                    note(&line);
                }
                return out;
            }
            Some(line) = rx.recv() => note(&line),
        }
    }
}

struct ProgressLayer {
    sink: ProgressSink,
}

impl<S: Subscriber> Layer<S> for ProgressLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = *meta.level();
        let ours = PROGRESS_TARGETS
            .iter()
            .any(|t| meta.target().starts_with(t));
        if !(level <= Level::WARN || ours) {
            return;
        }
        // Bytes-and-rate lines every few seconds: for a terminal, not a log.
        if meta.target() == slipway_core::rate::TARGET && !crate::output::live_output() {
            return;
        }
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        if visitor.message.is_empty() {
            return;
        }
        if level <= Level::WARN {
            (self.sink)(&format!("warning: {}", visitor.message));
        } else {
            (self.sink)(&visitor.message);
        }
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn info_from_task_targets_and_warnings_reach_the_sink() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = lines.clone();
        let sink: ProgressSink = Arc::new(move |l: &str| {
            seen.lock().expect("lock").push(l.to_string());
        });
        with_progress_sink(sink, async {
            tracing::info!(target: "slipway_core::migrate::runner", file = "x", "applied {} in {}", "0001_a.up.sql", "3ms");
            tracing::info!(target: "tokio_postgres", "connection noise");
            tracing::debug!(target: "slipway_core::migrate", "debug detail");
            tracing::warn!(target: "elsewhere", "careful");
        })
        .await;
        let lines = lines.lock().expect("lock").clone();
        assert_eq!(
            lines,
            vec!["applied 0001_a.up.sql in 3ms", "warning: careful"]
        );
    }

    #[tokio::test]
    async fn notes_arrive_in_order_through_a_borrowing_closure() {
        let seen = std::cell::RefCell::new(Vec::<String>::new());
        let out = with_progress(&|l: &str| seen.borrow_mut().push(l.to_string()), async {
            tracing::info!(target: "slipway::tasks", "one");
            tokio::task::yield_now().await;
            tracing::info!(target: "slipway::tasks", "two");
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(seen.into_inner(), vec!["one", "two"]);
    }
}
