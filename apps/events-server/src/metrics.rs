//! Prometheus metrics: the HTTP middleware that counts requests by route
//! template, and the `/metrics` rendering (pool and uptime gauges are read at
//! scrape time, so they are never stale).
//!
//! Paths are labelled with axum's `MatchedPath` (`/events/{id}`), never the
//! raw path (`/events/123`): one series per route, not one per id. Requests no
//! route matched share the label `unmatched` for the same reason.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use deadpool_postgres::Pool;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::state::AppState;
use crate::version;

/// The label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_waiting: IntGauge,
    uptime: IntGauge,
    pub events_processed: IntCounter,
    pub events_failed: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "path", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route",
            ),
            &["method", "path"],
        )?;
        let in_flight = IntGauge::new("http_requests_in_flight", "HTTP requests being served")?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "PostgreSQL pool connections by state (idle, in_use)",
            ),
            &["state"],
        )?;
        let pool_max = IntGauge::new("db_pool_max_connections", "PostgreSQL pool size limit")?;
        let pool_waiting = IntGauge::new(
            "db_pool_waiting",
            "requests waiting for a PostgreSQL connection",
        )?;
        let uptime = IntGauge::new("app_uptime_seconds", "seconds since the process started")?;
        let version_info = IntGaugeVec::new(
            Opts::new("app_version_info", "build metadata; the value is always 1"),
            &["version", "commit", "build_date"],
        )?;
        version_info
            .with_label_values(&[version::VERSION, version::GIT_COMMIT, version::BUILD_DATE])
            .set(1);
        let events_processed =
            IntCounter::new("app_events_processed_total", "events created successfully")?;
        let events_failed = IntCounter::new(
            "app_events_failed_total",
            "event creations refused or failed",
        )?;

        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(pool_waiting.clone()))?;
        registry.register(Box::new(uptime.clone()))?;
        registry.register(Box::new(version_info))?;
        registry.register(Box::new(events_processed.clone()))?;
        registry.register(Box::new(events_failed.clone()))?;

        Ok(Metrics {
            registry,
            requests,
            duration,
            in_flight,
            pool_connections,
            pool_max,
            pool_waiting,
            uptime,
            events_processed,
            events_failed,
        })
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, pool: &Pool, uptime_secs: u64) -> Result<String, prometheus::Error> {
        let status = pool.status();
        let idle = i64::try_from(status.available).unwrap_or(i64::MAX);
        let size = i64::try_from(status.size).unwrap_or(i64::MAX);
        self.pool_connections.with_label_values(&["idle"]).set(idle);
        self.pool_connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        self.pool_max
            .set(i64::try_from(status.max_size).unwrap_or(i64::MAX));
        self.pool_waiting
            .set(i64::try_from(status.waiting).unwrap_or(i64::MAX));
        self.uptime
            .set(i64::try_from(uptime_secs).unwrap_or(i64::MAX));

        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Middleware: counts and times every request, labelled by route template.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let metrics = &state.metrics;

    let in_flight = InFlight::enter(&metrics.in_flight);
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);

    metrics
        .duration
        .with_label_values(&[method.as_str(), path.as_str()])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[method.as_str(), path.as_str(), response.status().as_str()])
        .inc();
    response
}

/// Keeps `http_requests_in_flight` right even when a request's future is
/// dropped half-way (the client went away): the decrement is in `Drop`.
struct InFlight<'a>(&'a IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
