//! Draining a replaced target: it already takes no new requests (the route
//! table names its successor and its state says `Draining`); here we wait
//! for its in-flight requests to end, at most the drain timeout, then cut
//! what is left and drop it from the table's draining list.

use std::sync::Arc;
use std::time::Duration;

use crate::router::Router;
use crate::target::Target;

/// Run one target's drain to its end. Spawned by the router after a switch.
pub async fn run(router: Arc<Router>, app: Arc<str>, target: Arc<Target>, timeout: Duration) {
    let started = std::time::Instant::now();
    let finished = tokio::time::timeout(timeout, target.wait_idle())
        .await
        .is_ok();
    let left = target.in_flight();
    target.finish_drain();
    if finished {
        tracing::info!(app = %app, target = %target.addr, release = %target.release,
            took_ms = started.elapsed().as_millis() as u64, "drained");
    } else {
        tracing::warn!(app = %app, target = %target.addr, release = %target.release,
            cut = left, timeout_ms = timeout.as_millis() as u64,
            "drain deadline reached; cut the requests still running");
    }
    router.forget_draining(&app, &target).await;
}
