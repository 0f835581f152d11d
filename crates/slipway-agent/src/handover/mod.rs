//! Agent upgrades without a traffic gap.
//!
//! The agent being replaced (the *predecessor*) listens on
//! `<state-dir>/handover.sock`. A new agent started with `--take-over` (the
//! *successor*, same state dir, same network namespace) connects to it:
//!
//! 1. successor → `hello` (its version and build).
//! 2. The predecessor freezes state changes (waits for a switch in progress
//!    to end), then answers `offer` with its listening sockets attached
//!    (`SCM_RIGHTS`): the public listeners, the TLS listeners (if any) and
//!    the metrics listener. Nothing
//!    is closed or rebound, so the kernel's accept queues are never lost.
//! 3. The successor reads the ledger (refusing a newer format with `abort`),
//!    restores the routes, starts accepting on the same sockets and says
//!    `ready`. Both now accept; both refuse state changes (`handing_over`).
//! 4. Whoever is left owns everything: when the predecessor is stopped
//!    (SIGTERM: it stops accepting, closes the handover connection, drains
//!    its connections and exits), the successor thaws and listens for the
//!    next upgrade. When the successor goes instead (stopped, crashed, or its
//!    own `--take-over-timeout-ms` passed), the predecessor thaws and carries
//!    on as if nothing happened.
//!
//! - [`gate`]: freezing state changes.
//! - [`wire`]: the messages and the descriptor passing.
//! - [`predecessor`]: the serving side.
//! - [`successor`]: the taking-over side.

pub mod gate;
pub mod predecessor;
pub mod successor;
pub mod wire;

use std::path::{Path, PathBuf};

/// File name of the handover socket in the state dir (a volume both agents mount).
pub const SOCKET_NAME: &str = "handover.sock";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// The listening sockets an agent serves on, as handed from one agent to
/// the next: the public listeners (one per proxy thread), the TLS listeners
/// (one per proxy thread, or none without `--tls-listen`) and the metrics
/// listener.
pub struct Listeners {
    pub public: Vec<std::net::TcpListener>,
    pub tls: Vec<std::net::TcpListener>,
    pub metrics: std::net::TcpListener,
}

impl Listeners {
    /// Duplicates of every descriptor (same sockets), kept so they can be
    /// handed on later while the originals serve.
    pub fn duplicate(&self) -> std::io::Result<Listeners> {
        Ok(Listeners {
            public: self
                .public
                .iter()
                .map(std::net::TcpListener::try_clone)
                .collect::<Result<_, _>>()?,
            tls: self
                .tls
                .iter()
                .map(std::net::TcpListener::try_clone)
                .collect::<Result<_, _>>()?,
            metrics: self.metrics.try_clone()?,
        })
    }
}

/// An agent's side of upgrades: its gate, the duplicates of its listening
/// sockets it can hand on, and the connection to the other agent while an
/// upgrade is under way.
pub struct Handover {
    pub gate: std::sync::Arc<gate::Gate>,
    kept: std::sync::Mutex<Option<Listeners>>,
    peer: std::sync::Mutex<Option<std::os::unix::net::UnixStream>>,
    stopping: std::sync::atomic::AtomicBool,
    abandoned: std::sync::atomic::AtomicBool,
}

impl Handover {
    pub fn new(gate: std::sync::Arc<gate::Gate>, kept: Listeners) -> Self {
        Self {
            gate,
            kept: std::sync::Mutex::new(Some(kept)),
            peer: std::sync::Mutex::new(None),
            stopping: std::sync::atomic::AtomicBool::new(false),
            abandoned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This agent is stopping: let go of the kept sockets (so that, with no
    /// successor, the port closes instead of queueing connections nobody
    /// will accept) and tell the other agent, if any, that it is alone now.
    pub fn on_stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.kept.lock().expect("handover poisoned").take();
        if let Some(peer) = self.peer.lock().expect("handover poisoned").take() {
            let _ = peer.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A successor that gave up (its predecessor never went away).
    pub fn abandoned(&self) -> bool {
        self.abandoned.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set_peer(&self, stream: &std::os::unix::net::UnixStream) -> std::io::Result<()> {
        *self.peer.lock().expect("handover poisoned") = Some(stream.try_clone()?);
        Ok(())
    }

    fn clear_peer(&self) {
        self.peer.lock().expect("handover poisoned").take();
    }

    /// Fresh duplicates of the kept sockets, to send to a successor.
    fn duplicate_kept(&self) -> std::io::Result<Option<Listeners>> {
        match &*self.kept.lock().expect("handover poisoned") {
            Some(kept) => kept.duplicate().map(Some),
            None => Ok(None),
        }
    }
}
