//! The new agent's side: ask the serving agent for its listeners, serve on
//! them beside it, and own everything once it is gone.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::Listeners;
use super::wire::{self, Message, Receiver};
use crate::Agent;

/// The conversation with the predecessor, before this agent says `ready`.
pub struct TakeOver {
    rx: Receiver,
    pub predecessor_pid: u32,
    pub predecessor_version: String,
}

/// Ask the agent serving from `state_dir` for its listeners.
pub fn connect(state_dir: &Path) -> anyhow::Result<(TakeOver, Listeners)> {
    let path = super::socket_path(state_dir);
    let stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "--take-over: no agent answers on {} to hand over its listeners; start without \
             --take-over if none is serving",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(90)))?;
    wire::send(
        &stream,
        &Message::Hello {
            version: crate::VERSION.to_owned(),
            build: crate::BUILD.to_owned(),
            pid: std::process::id(),
            ledger_format_version: slipway_core::ledger::FORMAT_VERSION,
        },
        &[],
    )?;
    let mut rx = Receiver::new(stream);
    let (msg, fds) = rx
        .recv()
        .context("waiting for the serving agent's listeners")?;
    let (pid, version, public, tls) = match msg {
        Message::Offer {
            pid,
            version,
            build,
            public,
            tls,
        } => (pid, format!("{version} ({build})"), public, tls),
        Message::Refuse { reason } => {
            anyhow::bail!("the serving agent refused the upgrade: {reason}")
        }
        other => anyhow::bail!("unexpected answer from the serving agent: {other:?}"),
    };
    if fds.len() != public + tls + 1 || public == 0 {
        anyhow::bail!(
            "the serving agent sent {} sockets for {public} public listeners + {tls} TLS \
             listeners + metrics",
            fds.len()
        );
    }
    let mut fds: Vec<std::net::TcpListener> = fds.into_iter().map(Into::into).collect();
    let metrics = fds.pop().expect("checked length");
    let tls_listeners = fds.split_off(public);
    for l in fds
        .iter()
        .chain(&tls_listeners)
        .chain(std::iter::once(&metrics))
    {
        l.set_nonblocking(true)?;
    }
    Ok((
        TakeOver {
            rx,
            predecessor_pid: pid,
            predecessor_version: version,
        },
        Listeners {
            public: fds,
            tls: tls_listeners,
            metrics,
        },
    ))
}

impl TakeOver {
    /// Give up before serving (the predecessor reopens its gate).
    pub fn abort(self, reason: &str) {
        let _ = wire::send(
            self.rx.stream(),
            &Message::Abort {
                reason: reason.to_owned(),
            },
            &[],
        );
    }

    /// Say `ready`, then wait in a thread for the predecessor to go: this
    /// agent then owns the ledger and listens for the next upgrade. If it
    /// has not gone within `timeout`, this agent gives up and stops
    /// (`stop`), leaving the predecessor alone again.
    pub fn ready(
        self,
        agent: Arc<Agent>,
        state_dir: std::path::PathBuf,
        stop: CancellationToken,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let TakeOver {
            mut rx,
            predecessor_pid,
            ..
        } = self;
        wire::send(rx.stream(), &Message::Ready, &[])?;
        rx.stream().set_read_timeout(Some(timeout))?;
        agent.handover.set_peer(rx.stream())?;
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("slipway-take-over".into())
            .spawn(move || {
                let outcome = rx.recv();
                agent.handover.clear_peer();
                if agent.handover.stopping() {
                    tracing::info!(
                        predecessor_pid,
                        "stopped before the predecessor; it serves alone again"
                    );
                    return;
                }
                match outcome {
                    Err(wire::WireError::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        tracing::error!(
                            predecessor_pid,
                            timeout_ms = timeout.as_millis() as u64,
                            "the predecessor is still serving; giving up the take-over and stopping"
                        );
                        agent
                            .handover
                            .abandoned
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                        stop.cancel();
                    }
                    _ => {
                        agent.handover.gate.reopen();
                        tracing::info!(
                            predecessor_pid,
                            "the predecessor has gone; this agent owns the routes and the ledger"
                        );
                        runtime.spawn(super::predecessor::serve(agent, state_dir));
                    }
                }
            })
            .context("cannot start the take-over thread")?;
        Ok(())
    }
}
