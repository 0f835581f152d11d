//! The serving agent's side: listen on the handover socket and hand the
//! listeners to one successor at a time.

use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::wire::{self, Message, Receiver};
use crate::Agent;

/// How long a switch in progress may hold up a handover.
const FREEZE_WITHIN: Duration = Duration::from_secs(60);
/// How long the successor may take between `offer` and `ready`.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Refuse to start a second agent on a state dir whose agent still serves
/// (it would write the same ledger), unless it was asked to take over.
pub fn refuse_if_serving(state_dir: &Path) -> anyhow::Result<()> {
    let path = super::socket_path(state_dir);
    if UnixStream::connect(&path).is_ok() {
        anyhow::bail!(
            "another agent is serving from {} (it answers on {}); stop it first, or start this \
             one with --take-over to replace it without a traffic gap",
            state_dir.display(),
            path.display()
        );
    }
    Ok(())
}

/// Accept successors on `<state-dir>/handover.sock` until the agent stops.
pub async fn serve(agent: Arc<Agent>, state_dir: std::path::PathBuf) {
    let path = super::socket_path(&state_dir);
    let listener = match crate::admin::socket::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(),
                "cannot listen for upgrades; this agent can only be replaced with a gap");
            return;
        }
    };
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "handover accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(stream) = stream
            .into_std()
            .and_then(|s| s.set_nonblocking(false).map(|()| s))
        else {
            continue;
        };
        let (agent, busy) = (Arc::clone(&agent), Arc::clone(&busy));
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            if busy.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let _ = wire::send(
                    &stream,
                    &Message::Refuse {
                        reason: "another agent upgrade is already in progress".into(),
                    },
                    &[],
                );
                return;
            }
            if let Err(e) = converse(&agent, stream, &runtime) {
                tracing::warn!(error = %e, "agent upgrade did not happen");
            }
            busy.store(false, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

fn refuse(stream: &UnixStream, reason: String) -> anyhow::Result<()> {
    let _ = wire::send(
        stream,
        &Message::Refuse {
            reason: reason.clone(),
        },
        &[],
    );
    anyhow::bail!("refused a successor: {reason}")
}

fn converse(
    agent: &Arc<Agent>,
    stream: UnixStream,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut rx = Receiver::new(stream);
    let (successor, version, build) = match rx.recv() {
        Ok((
            Message::Hello {
                pid,
                version,
                build,
                ..
            },
            _,
        )) => (pid, version, build),
        // A liveness probe (`refuse_if_serving`) connects and goes.
        Err(wire::WireError::Closed) => return Ok(()),
        Ok((other, _)) => anyhow::bail!("expected hello, got {other:?}"),
        Err(e) => return Err(e.into()),
    };
    let stream = rx.stream();
    if agent.handover.stopping() {
        return refuse(stream, "this agent is stopping".into());
    }
    let paused: Vec<String> = agent
        .router
        .table()
        .routes()
        .iter()
        .filter(|r| r.pause.is_some())
        .map(|r| r.name.to_string())
        .collect();
    if !paused.is_empty() {
        return refuse(
            stream,
            format!(
                "app(s) {} are paused and hold requests in this agent; resume them, then upgrade",
                paused.join(", ")
            ),
        );
    }
    tracing::info!(successor, %version, %build, "a newer agent asks to take over; freezing the ledger");
    if !runtime.block_on(
        agent
            .handover
            .gate
            .shut_for_handover(successor, FREEZE_WITHIN),
    ) {
        return refuse(
            stream,
            format!(
                "a switch has been in progress for {} s; retry when it ends",
                FREEZE_WITHIN.as_secs()
            ),
        );
    }
    // From here on every way out reopens the gate, unless this agent is
    // stopping (its successor then owns everything).
    let result = hand_over(agent, &mut rx, successor);
    agent.handover.clear_peer();
    if agent.handover.stopping() {
        tracing::info!(successor, "stopped; the successor serves alone");
    } else {
        agent.handover.gate.reopen();
        match &result {
            Ok(()) => tracing::warn!(
                successor,
                "the successor went away before this agent was stopped; serving alone again"
            ),
            Err(e) => tracing::warn!(successor, error = %e,
                "the successor did not take over; serving alone again"),
        }
    }
    result
}

fn hand_over(agent: &Arc<Agent>, rx: &mut Receiver, successor: u32) -> anyhow::Result<()> {
    let Some(listeners) = agent.handover.duplicate_kept()? else {
        refuse(rx.stream(), "this agent is stopping".into())?;
        return Ok(());
    };
    let mut fds: Vec<_> = listeners
        .public
        .iter()
        .chain(&listeners.tls)
        .map(|l| l.as_fd())
        .collect();
    fds.push(listeners.metrics.as_fd());
    let offer = Message::Offer {
        version: crate::VERSION.to_owned(),
        build: crate::BUILD.to_owned(),
        pid: std::process::id(),
        public: listeners.public.len(),
        tls: listeners.tls.len(),
    };
    wire::send(rx.stream(), &offer, &fds)?;
    drop(fds);
    drop(listeners);
    rx.stream().set_read_timeout(Some(READY_WITHIN))?;
    match rx.recv()? {
        (Message::Ready, _) => {}
        (Message::Abort { reason }, _) => anyhow::bail!("the successor gave up: {reason}"),
        (other, _) => anyhow::bail!("expected ready, got {other:?}"),
    }
    // Both serve now. Wait until one of us goes: our own stop shuts this
    // connection (see `Handover::on_stop`), the successor's closes it.
    rx.stream().set_read_timeout(None)?;
    agent.handover.set_peer(rx.stream())?;
    tracing::info!(
        successor,
        "a successor serves beside this agent; stop this agent to finish the upgrade"
    );
    if agent.handover.stopping() {
        return Ok(());
    }
    match rx.recv() {
        Err(wire::WireError::Closed) => Ok(()),
        Err(e) if agent.handover.stopping() => {
            tracing::debug!(error = %e, "handover connection shut on stop");
            Ok(())
        }
        Err(e) => Err(e.into()),
        Ok((other, _)) => anyhow::bail!("unexpected {other:?} after ready"),
    }
}
