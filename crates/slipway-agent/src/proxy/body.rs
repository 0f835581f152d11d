//! Response bodies the proxy sends: an upstream body streamed through (with
//! the in-flight guard, byte count and access-log line riding along until it
//! ends), or a small body the agent wrote itself. An upstream body is cut
//! when its target's drain deadline passes.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use hyper::Method;
use hyper::body::{Body, Frame, SizeHint};
use hyper::http::uri::PathAndQuery;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::Proxy;
use super::client::UpBody;
use crate::access_log::Entry;
use crate::metrics::AppMetrics;
use crate::router::AppRoute;
use crate::target::InFlight;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything needed to close the books on one request when its response
/// ends (or is dropped): latency, access log, in-flight count.
///
/// It holds what the request already owns (the proxy thread's `Proxy`, the
/// admitted route) rather than clones of shared `Arc`s: every clone of an
/// `Arc` shared by all proxy threads is a contended atomic.
pub struct Finish {
    pub proxy: Arc<Proxy>,
    /// The app's route; `None` for a request no app is routed for.
    pub route: Option<Arc<AppRoute>>,
    pub guard: Option<InFlight>,
    pub started: Instant,
    pub method: Method,
    pub path: Option<PathAndQuery>,
    pub client: IpAddr,
    pub status: u16,
    pub bytes: u64,
    pub error: Option<&'static str>,
}

impl Finish {
    /// The metrics bucket: the app's, or the unrouted one.
    pub fn metrics(&self) -> &AppMetrics {
        match &self.route {
            Some(r) => &r.metrics,
            None => &self.proxy.unrouted,
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let metrics = self.metrics();
        metrics.observe(elapsed);
        if let Some(guard) = &self.guard {
            guard.target().counters.observe_latency(elapsed);
        }
        if let Some(log) = &self.proxy.access_log {
            let target = self.guard.as_ref().map(InFlight::target);
            log.write(&Entry {
                time: SystemTime::now(),
                app: &metrics.app,
                release: target.map(|t| &*t.release).unwrap_or(""),
                slot: target.and_then(|t| t.slot.as_deref()).unwrap_or(""),
                method: self.method.as_str(),
                path: self.path.as_ref().map(PathAndQuery::as_str).unwrap_or("/"),
                status: self.status,
                duration: elapsed,
                bytes: self.bytes,
                client: self.client,
                error: self.error,
            });
        }
    }
}

pub struct ProxyBody(Kind);

// The upstream variant is the hot path; boxing it would cost an allocation
// per request to save a few hundred bytes on the agent's own error pages.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Local(Option<Bytes>),
    Upstream {
        /// Read off the upstream connection, which goes back to the pool
        /// as soon as the body ended cleanly.
        inner: UpBody,
        finish: Finish,
        /// Created on the first `Pending` only: most bodies finish in one
        /// poll and never pay for the allocation.
        cut: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    },
}

impl ProxyBody {
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        Self(Kind::Local(Some(bytes.into())))
    }

    pub fn empty() -> Self {
        Self(Kind::Local(None))
    }

    pub fn upstream(inner: UpBody, finish: Finish) -> Self {
        Self(Kind::Upstream {
            inner,
            finish,
            cut: None,
        })
    }
}

/// Give the upstream connection back once `inner` ended cleanly.
fn recycle(inner: &mut UpBody, finish: &Finish) {
    if let Some(guard) = &finish.guard
        && let Some(conn) = inner.take_reusable()
    {
        finish.proxy.pool.recycle(&guard.target().authority, conn);
    }
}

impl Drop for ProxyBody {
    /// Hand the upstream connection back if its body ended but was not
    /// polled past its last frame (hyper may stop at the last frame). A
    /// body dropped early takes its connection down with it: the
    /// connection's state is unknown.
    fn drop(&mut self) {
        if let Kind::Upstream { inner, finish, .. } = &mut self.0 {
            recycle(inner, finish);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream {
                inner, finish, cut, ..
            } => match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        finish.bytes += data.len() as u64;
                    }
                    recycle(inner, finish);
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    finish.error = Some("upstream body error");
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    recycle(inner, finish);
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    let Some(target) = finish.guard.as_ref().map(InFlight::target) else {
                        return Poll::Pending;
                    };
                    let fut = cut.get_or_insert_with(|| {
                        Box::pin(target.cut_token().clone().cancelled_owned())
                    });
                    match fut.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            finish.error = Some("cut at drain deadline");
                            Poll::Ready(Some(Err("cut at the drain deadline".into())))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Local(b) => b.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Local(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
