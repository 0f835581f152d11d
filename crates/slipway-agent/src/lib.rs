//! Slipway's host agent. It runs in a container on each target host and is
//! the only thing bound to the public port: a blue/green HTTP entry point
//! with health-gated atomic switches and bounded drains, plus the host's
//! ledger (deploy lock, deployment history) behind an admin unix socket.
//!
//! Map: [`proxy`] serves traffic through the [`router`]'s table of
//! [`target`]s; [`health`] gates switches and [`drain`] retires old targets;
//! [`admin`] answers the CLI (client: [`ctl`]); [`ledger`] persists state;
//! [`metrics`] and [`internal`] expose it; [`access_log`] records requests;
//! [`analysis`] watches a new release after its switch and switches back
//! when it fails; [`maintenance`] answers for an app in maintenance mode.
//!
//! Exit codes of `slipway-agent serve`: 0 stopped by SIGTERM/SIGINT after
//! draining; 1 runtime failure (cannot bind, cannot write the state dir);
//! 2 usage; 6 the ledger was written by a newer agent (left untouched).
//! `slipway-agent ctl` codes are listed in [`ctl`].

pub mod access_log;
pub mod admin;
pub mod analysis;
pub mod config;
pub mod ctl;
pub mod drain;
pub mod handover;
pub mod health;
pub mod internal;
pub mod ledger;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod proxy;
pub mod router;
pub mod target;
pub mod tls;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hyper::header::{HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use config::{AccessLogMode, LogFormat, ServeArgs};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which build of [`VERSION`]: `SLIPWAY_AGENT_BUILD` when compiled, else `dev`.
pub const BUILD: &str = match option_env!("SLIPWAY_AGENT_BUILD") {
    Some(build) => build,
    None => "dev",
};

/// Exit code when the ledger is newer than this agent.
pub const EXIT_LEDGER_TOO_NEW: u8 = 6;

#[derive(Debug, Parser)]
#[command(name = "slipway-agent", version, about = "Slipway's host agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (proxy, admin socket, metrics).
    Serve(ServeArgs),
    /// Talk to a running agent over its admin socket.
    Ctl(ctl::CtlArgs),
    /// Do nothing until SIGTERM: the first process of the container that
    /// holds the public port and network namespace the agents share, so an
    /// agent can be replaced without the port ever closing.
    Hold,
}

/// What the admin API and the internal listener act on.
pub struct Agent {
    pub router: Arc<router::Router>,
    pub ledger: Arc<ledger::Ledger>,
    pub metrics: Arc<metrics::Metrics>,
    /// Events: logged, queued on the volume, delivered to the channels.
    pub notifier: Arc<notify::Notifier>,
    pub handover: handover::Handover,
    /// Post-deploy analyses: the running ones and their baselines' samples.
    pub analyses: analysis::Analyses,
    /// Certificates, when this agent terminates TLS (`--tls-listen`).
    pub tls: Option<Arc<tls::Tls>>,
    pub started: Instant,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ctl(args) => ExitCode::from(ctl::run(args)),
        Command::Hold => hold(),
        Command::Serve(args) => match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                let too_new = e
                    .downcast_ref::<ledger::StoreError>()
                    .is_some_and(ledger::StoreError::is_too_new);
                ExitCode::from(if too_new { EXIT_LEDGER_TOO_NEW } else { 1 })
            }
        },
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    tls::handshake::install_provider();
    // The control runtime runs the admin socket, metrics, drains and
    // signals; traffic runs on the proxy threads (see `run`).
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("slipway-control")
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(run(args))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal (and never with NO_COLOR).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Either take the listeners of the agent serving from this state dir
    // (an upgrade), or bind them (and refuse to start beside a serving agent
    // that would write the same ledger).
    let take_over = if args.take_over {
        let state_dir = args.state_dir.clone();
        let (t, handed) =
            tokio::task::spawn_blocking(move || handover::successor::connect(&state_dir))
                .await
                .context("take-over task")??;
        tracing::info!(predecessor_pid = t.predecessor_pid, predecessor = %t.predecessor_version,
            listeners = handed.public.len(), "took the listening sockets of the serving agent");
        Some((t, handed))
    } else {
        handover::predecessor::refuse_if_serving(&args.state_dir)?;
        None
    };
    let store = match ledger::Store::open(&args.state_dir, VERSION) {
        Ok(store) => store,
        Err(e) => {
            if let Some((t, _)) = take_over {
                t.abort(&format!("{e}"));
            }
            return Err(e.into());
        }
    };
    let ledger = Arc::new(ledger::Ledger {
        store,
        lock_expiry: Duration::from_millis(args.lock_expiry_ms),
        clock: ledger::system_clock(),
    });
    let metrics = Arc::new(metrics::Metrics::default());
    let notifier = notify::Notifier::open(&args.state_dir)?;
    let router = match router::Router::restore(
        Arc::clone(&ledger),
        Arc::clone(&metrics),
        Arc::clone(&notifier),
        args.tls_listen.is_some(),
    ) {
        Ok(router) => Arc::new(router),
        Err(e) => {
            let message = format!("cannot restore routes from the ledger: {}", e.message);
            if let Some((t, _)) = take_over {
                t.abort(&message);
            }
            anyhow::bail!(message);
        }
    };

    let (take_over, mut listeners, gate) = match take_over {
        Some((t, handed)) => {
            let gate = handover::gate::Gate::shut_for_take_over(t.predecessor_pid);
            (Some(t), handed, gate)
        }
        None => (None, bind_listeners(&args)?, handover::gate::Gate::open()),
    };
    let gate = Arc::new(gate);
    // TLS: the predecessor's TLS listeners, or new ones beside the public
    // ones; and the certificates the state volume holds, served at once.
    let tls = match tls_setup(&args, &mut listeners, &gate) {
        Ok(tls) => tls,
        Err(e) => {
            if let Some(t) = take_over {
                t.abort(&format!("{e:#}"));
            }
            return Err(e);
        }
    };
    let kept = listeners
        .duplicate()
        .context("duplicating the listening sockets")?;
    let agent = Arc::new(Agent {
        router: Arc::clone(&router),
        ledger,
        metrics: Arc::clone(&metrics),
        notifier,
        handover: handover::Handover::new(gate, kept),
        analyses: analysis::Analyses::default(),
        tls: tls.clone(),
        started: Instant::now(),
    });
    tokio::spawn(analysis::sampler::run(
        Arc::clone(&router),
        Arc::clone(&agent.analyses.samples),
    ));
    // An analysis left running by the agent before this one (a restart or
    // an upgrade) goes on for the rest of its window.
    analysis::resume(&agent);

    let release_header = HeaderName::try_from(args.release_header.as_str())
        .with_context(|| format!("`{}` is not a valid header name", args.release_header))?;
    let forwarded_proto = HeaderValue::try_from(args.forwarded_proto.as_str())
        .with_context(|| format!("`{}` is not a valid header value", args.forwarded_proto))?;
    let access_log = match args.access_log {
        AccessLogMode::Stdout => {
            let log = Arc::new(access_log::AccessLog::default());
            tokio::spawn(Arc::clone(&log).flush_every_100ms());
            Some(log)
        }
        AccessLogMode::Off => None,
    };

    let handover::Listeners {
        public,
        tls: tls_listeners,
        metrics: internal,
    } = listeners;
    let workers = public.len();
    let bound = public[0].local_addr().context("listener address")?;
    let tls_bound = match tls_listeners.first() {
        Some(l) => Some(l.local_addr().context("TLS listener address")?),
        None => None,
    };
    let mut tls_listeners = tls_listeners.into_iter();
    let server_config = tls
        .as_ref()
        .map(|t| tls::handshake::server_config(Arc::clone(&t.map)));
    let metrics_addr = internal.local_addr().context("metrics listener address")?;
    let internal = tokio::net::TcpListener::from_std(internal).context("metrics listener")?;
    let admin_socket = admin::socket::bind(&args.socket)
        .with_context(|| format!("cannot create the admin socket `{}`", args.socket.display()))?;
    tracing::info!(listen = %bound, tls_listen = ?tls_bound, workers, metrics = %metrics_addr,
        socket = %args.socket.display(), state = %agent.ledger.store.path().display(),
        version = VERSION, build = BUILD, "agent ready");

    tokio::spawn(internal::serve(internal, Arc::clone(&agent)));
    tokio::spawn(admin::socket::serve(admin_socket, Arc::clone(&agent)));
    agent
        .notifier
        .start_delivery(Duration::from_millis(args.notify_retry_base_ms));
    let listeners = public;

    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    // A stop, whatever its cause, ends this agent's part in an upgrade.
    tokio::spawn({
        let (stop, agent) = (stop.clone(), Arc::clone(&agent));
        async move {
            stop.cancelled().await;
            agent.handover.on_stop();
        }
    });
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let proxy = proxy::Proxy {
            router: Arc::clone(&router),
            pool: proxy::pool::Pool::new(args.pool_idle_per_host),
            forward: proxy::forward::ForwardConfig {
                max_body: args.max_body_bytes,
                upstream_timeout: Duration::from_millis(args.upstream_timeout_ms),
                forwarded_proto: forwarded_proto.clone(),
            },
            release_header: release_header.clone(),
            access_log: access_log.clone(),
            unrouted: metrics.app(""),
            closing: std::sync::atomic::AtomicBool::new(false),
            edge: match (&tls, &server_config, tls_bound) {
                (Some(t), Some(config), Some(addr)) => Some(proxy::edge::Edge {
                    map: Arc::clone(&t.map),
                    stats: Arc::clone(&t.stats),
                    acceptor: tokio_rustls::TlsAcceptor::from(Arc::clone(config)),
                    https_port: args.redirect_https_port.unwrap_or(addr.port()),
                }),
                _ => None,
            },
        };
        let tls_listener = tls_listeners.next();
        let serve_cfg = proxy::ServeConfig {
            idle_timeout: Duration::from_millis(args.idle_timeout_ms),
            shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
        };
        let (stop, done) = (stop.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("slipway-proxy-{i}"))
            .spawn(move || proxy_thread(listener, tls_listener, proxy, serve_cfg, stop, done))
            .context("cannot start a proxy thread")?;
    }
    drop(done_tx);
    match take_over {
        Some(t) => t.ready(
            Arc::clone(&agent),
            args.state_dir.clone(),
            stop.clone(),
            Duration::from_millis(args.take_over_timeout_ms),
        )?,
        None => {
            tokio::spawn(handover::predecessor::serve(
                Arc::clone(&agent),
                args.state_dir.clone(),
            ));
        }
    }
    // Every proxy thread has stopped (or failed) when the channel closes.
    while done_rx.recv().await.is_some() {}
    if let Some(log) = access_log {
        log.flush();
    }
    let _ = std::fs::remove_file(&args.socket);
    if agent.handover.abandoned() {
        anyhow::bail!(
            "gave up taking over: the serving agent was not stopped within {} ms; it serves alone",
            args.take_over_timeout_ms
        );
    }
    tracing::info!("agent stopped");
    Ok(())
}

/// Bind the public listeners (one `SO_REUSEPORT` socket per proxy thread:
/// the kernel spreads connections over them, as over nginx's workers) and
/// the metrics listener.
fn bind_listeners(args: &ServeArgs) -> anyhow::Result<handover::Listeners> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let first = proxy::bind_reuseport(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = first.local_addr().context("listener address")?;
    let mut public = vec![first];
    for _ in 1..workers {
        public.push(
            proxy::bind_reuseport(bound).with_context(|| format!("cannot listen on {bound}"))?,
        );
    }
    let metrics = std::net::TcpListener::bind(args.metrics_listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("cannot listen on {} (metrics)", args.metrics_listen))?;
    Ok(handover::Listeners {
        public,
        tls: Vec::new(),
        metrics,
    })
}

/// With `--tls-listen`: make sure there is one TLS listener per public one
/// (handed over by the predecessor, else bound now), and load the
/// certificates. Without it, refuse TLS listeners a predecessor handed over:
/// this agent would silently stop serving HTTPS.
fn tls_setup(
    args: &ServeArgs,
    listeners: &mut handover::Listeners,
    gate: &Arc<handover::gate::Gate>,
) -> anyhow::Result<Option<Arc<tls::Tls>>> {
    let Some(addr) = args.tls_listen else {
        if !listeners.tls.is_empty() {
            anyhow::bail!(
                "the serving agent terminates TLS ({} listeners) but this one was started \
                 without --tls-listen; start it with the same --tls-listen and --acme-* flags",
                listeners.tls.len()
            );
        }
        return Ok(None);
    };
    if listeners.tls.is_empty() {
        let first = proxy::bind_reuseport(addr)
            .with_context(|| format!("cannot listen on {addr} (TLS)"))?;
        let bound = first.local_addr().context("TLS listener address")?;
        listeners.tls.push(first);
        for _ in 1..listeners.public.len() {
            listeners.tls.push(
                proxy::bind_reuseport(bound)
                    .with_context(|| format!("cannot listen on {bound} (TLS)"))?,
            );
        }
    } else if listeners.tls.len() != listeners.public.len() {
        anyhow::bail!(
            "the serving agent handed over {} TLS listeners for {} public ones; expected as many",
            listeners.tls.len(),
            listeners.public.len()
        );
    }
    let ca_root = match &args.acme_ca_root_pem {
        Some(pem) => {
            let path = args.state_dir.join("acme-ca-root.pem");
            fs_err::write(&path, pem).context("writing the ACME CA root to the state directory")?;
            Some(path)
        }
        None => args.acme_ca_root.clone(),
    };
    let acme = args
        .acme_directory
        .clone()
        .map(|directory| tls::acme::AcmeConfig {
            directory,
            email: args.acme_email.clone(),
            ca_root,
        });
    let tls = tls::Tls::new(&args.state_dir, acme, Arc::clone(gate))?;
    tls.load()?;
    Ok(Some(tls))
}

/// A current-thread runtime for the short-lived subcommands (`ctl`, `hold`);
/// `None` after saying why on stderr.
pub(crate) fn small_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the runtime: {e}"))
        .ok()
}

/// `slipway-agent hold`: wait for SIGTERM or SIGINT, then exit 0.
fn hold() -> ExitCode {
    let Some(runtime) = small_runtime() else {
        return ExitCode::from(1);
    };
    runtime.block_on(async {
        let stop = CancellationToken::new();
        stop_on_signal(stop.clone()).await;
    });
    ExitCode::SUCCESS
}

/// A thread-per-core proxy worker: its own current-thread runtime, listener
/// and upstream pool, so a request never hops between threads.
fn proxy_thread(
    listener: std::net::TcpListener,
    tls_listener: Option<std::net::TcpListener>,
    proxy: proxy::Proxy,
    cfg: proxy::ServeConfig,
    stop: CancellationToken,
    done: tokio::sync::mpsc::Sender<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a proxy runtime");
            stop.cancel();
            return;
        }
    };
    runtime.block_on(async move {
        let tls_listener = match tls_listener.map(tokio::net::TcpListener::from_std) {
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot register the TLS listener");
                stop.cancel();
                return;
            }
            None => None,
        };
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => proxy::serve(listener, tls_listener, Arc::new(proxy), cfg, stop).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot register the listener");
                stop.cancel();
            }
        }
    });
    drop(done);
}

async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stop requested");
    stop.cancel();
}
