//! Test support for Slipway's integration tests (migrations, snapshots,
//! events-server, deploy): it builds the local images
//! (`scripts/images/build.sh`) and runs throwaway PostgreSQL 17 containers
//! (PostGIS, pgvector and pg_trgm available) on the real Docker Engine, through
//! the `docker` CLI. No mocks: tests talk to a real engine and a real database.
//!
//! # Usage
//!
//! ```no_run
//! let pg = slipway_testkit::PgContainer::start(); // builds images on first use
//! let url = pg.url(); // postgres://postgres:<password>@127.0.0.1:<port>/postgres
//! pg.create_database("app");
//! let app_url = pg.url_for_db("app");
//! // `docker exec <pg.container_name()> pg_dump ...` runs the tools next to the database.
//! # let _ = (url, app_url);
//! ```
//!
//! # How the host reaches the database
//!
//! The container's port 5432 is published on `127.0.0.1` only. The host port
//! is picked by this crate (a free port in 20000..30000, checked by binding
//! it, retried if Docker reports it taken) rather than left to Docker
//! (`-p 127.0.0.1::5432`), because Docker hands out a *new* ephemeral port on
//! every `docker start`, and [`PgContainer::start_again`] promises the same
//! URL. If the published port does not answer but the container's bridge IP
//! does (nested engines, rootless setups without port forwarding), the URL
//! uses `<bridge IP>:5432` instead; [`PgContainer::url`] always returns the
//! address that was found to work, so callers need not care.
//!
//! Readiness is a real PostgreSQL handshake from the host (a `StartupMessage`
//! answered by an authentication request), polled with a deadline. During
//! first-start initialisation the image's server listens on its unix socket
//! only, so "answers on TCP" means "initialised and accepting connections".
//!
//! # Database settings
//!
//! Containers run with `fsync=off` (and `initdb --no-sync`): tests do not
//! survive host crashes anyway, and it makes them faster. Everything else is stock (`synchronous_commit`
//! stays on, so killing the container loses no committed transaction). The
//! data directory is an anonymous volume, removed with the container.
//!
//! # Leftovers
//!
//! Containers are removed on `Drop`, including when a test panics (with the
//! default `panic = "unwind"`). Statics are never dropped, so a
//! `PgContainer` kept in a `static`/`OnceLock` outlives the test process; so
//! does one whose process is killed outright (e.g. a CI timeout); every resource this crate
//! creates carries the label `slipway.test=1` (use [`TEST_LABEL`] for your own),
//! so a cleanup can find them:
//!
//! ```sh
//! scripts/images/cleanup-test-leftovers.sh   # containers, volumes, networks
//! ```
//!
//! The random password is never printed by this crate (not in panics, logs or
//! `Debug`), and never put on a command line: it reaches `docker run` through
//! the environment.

pub mod pebble;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Label carried by every container/volume created by this crate; give it to
/// your own test resources too (`--label slipway.test=1`).
pub const TEST_LABEL: &str = "slipway.test=1";

/// The database image built by `scripts/images/build.sh`.
pub const PG_IMAGE: &str = "slipway-postgres:17";

/// How long a container may take to accept connections. Generous because
/// test binaries start many containers at once on small (2-core) machines.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The workspace's root directory (the one with the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives at <root>/crates/slipway-testkit.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/slipway-testkit has two parent directories")
        .to_path_buf()
}

/// Builds the local images if missing (runs scripts/images/build.sh once per test process; a file lock so parallel test binaries don't build twice).
///
/// The script takes a `flock` on its cache directory, so test binaries that
/// call this at the same time wait for one build instead of racing; when the
/// images are up to date it returns in well under a second. Its progress lines
/// go straight to stderr (a cold build takes minutes, and silence would look
/// like a hang). The result is remembered for the rest of the process.
pub fn ensure_images() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(run_build_script).clone()
}

fn run_build_script() -> Result<(), String> {
    let script = workspace_root().join("scripts/images/build.sh");
    let status = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({status}); its messages are on stderr above",
            script.display()
        ))
    }
}

/// A unique name with the given prefix, for containers/networks/volumes created by tests; all testkit-created resources carry the label `slipway.test=1` so a cleanup can find leftovers.
///
/// The name is `<prefix>-<process id>-<counter>-<random>`: unique within the
/// process (counter), across concurrently running test binaries (pid) and
/// across pid reuse or machines sharing an engine (random).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}-{}", std::process::id(), random_hex(3))
}

/// `bytes` random bytes as lowercase hex, from the kernel's CSPRNG.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let from_kernel = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if from_kernel.is_err() {
        // Not Linux-like: std's randomly keyed hasher is good enough for names
        // and throwaway test passwords.
        for chunk in buf.chunks_mut(8) {
            let mut h = RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `docker <args>`; stdout (trimmed) on success, a message naming the
/// command and its stderr otherwise. Never pass secrets in `args`.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `docker` ({e}); is the Docker CLI installed?"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "`docker {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A host port that is free right now, outside the kernel's and Docker's
/// ephemeral ranges (32768+) so neither hands it to someone else while our
/// container is stopped.
fn free_port() -> u16 {
    for _ in 0..100 {
        let r = u16::from_str_radix(&random_hex(2), 16).unwrap_or(0);
        let port = 20000 + r % 10000;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("slipway-testkit: no free TCP port found in 20000..30000 on 127.0.0.1");
}

/// True when a PostgreSQL server at `addr` is accepting connections: it
/// answers a protocol 3.0 `StartupMessage` with an authentication request
/// ('R'). A server still starting up or shutting down answers 'E', and a
/// Docker port proxy with nothing behind it closes the connection.
fn pg_accepts(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for s in ["user", "postgres", "database", "postgres"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = u32::try_from(body.len() + 4)
        .expect("short message")
        .to_be_bytes()
        .to_vec();
    msg.extend_from_slice(&body);
    let mut reply = [0u8; 1];
    stream.write_all(&msg).is_ok() && stream.read_exact(&mut reply).is_ok() && reply[0] == b'R'
}

/// Percent-encodes a URL path segment (database names may hold anything).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A throwaway PostgreSQL 17 (postgis, vector, pg_trgm available) container, removed on Drop (also removed if the test panics).
///
/// `Send + Sync`: it can be shared between tasks or put in a static.
pub struct PgContainer {
    name: String,
    password: String,
    host_port: u16,
    /// Where the host reaches the server: `127.0.0.1:<host_port>`, or the
    /// bridge IP fallback (see the crate docs). Re-checked on `start_again`.
    addr: Mutex<SocketAddr>,
}

impl fmt::Debug for PgContainer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgContainer")
            .field("name", &self.name)
            .field("addr", &self.addr())
            .field("password", &"<redacted>")
            .finish()
    }
}

impl PgContainer {
    /// Starts a new container from `slipway-postgres:17` (building the images
    /// first if needed) and waits until it accepts connections from the host.
    /// Panics with a clear message (and the container's log) on failure.
    pub fn start() -> PgContainer {
        if let Err(e) = ensure_images() {
            panic!("slipway-testkit: the local images are not available: {e}");
        }
        let name = unique_name("slipway-test-pg");
        let password = random_hex(16);
        // The data directory is an anonymous volume (faster than the
        // container's fuse-overlayfs layer), labelled like everything else
        // and removed by `docker rm -v`.
        let mount = format!("type=volume,dst=/var/lib/postgresql/data,volume-label={TEST_LABEL}");
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let publish = format!("127.0.0.1:{port}:5432");
            let out = Command::new("docker")
                .args(["run", "--detach", "--name", &name, "--label", TEST_LABEL])
                .args(["--mount", &mount, "--publish", &publish])
                // `-e NAME` without a value: docker copies it from its own
                // environment, so the password never shows on a command line.
                .args(["--env", "POSTGRES_PASSWORD"])
                // Like fsync=off below: no fsync during initdb either.
                .args(["--env", "POSTGRES_INITDB_ARGS=--no-sync", PG_IMAGE])
                .args(["-c", "fsync=off"])
                .env("POSTGRES_PASSWORD", &password)
                .stdin(Stdio::null())
                .output();
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    panic!(
                        "slipway-testkit: cannot run `docker` ({e}); is the Docker CLI installed?"
                    )
                }
            };
            if out.status.success() {
                let pg = PgContainer {
                    name,
                    password,
                    host_port: port,
                    addr: Mutex::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
                };
                // If this panics, `pg` is dropped and the container removed.
                pg.wait_ready("start");
                return pg;
            }
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            // `docker run` may have created the container before failing to
            // start it; remove it so the name can be reused.
            let _ = docker(&["rm", "--force", "--volumes", &name]);
            let port_taken = stderr.contains("port is already allocated")
                || stderr.contains("address already in use");
            if !port_taken {
                panic!(
                    "slipway-testkit: could not start a {PG_IMAGE} container: {stderr}\n\
                     (is the Docker daemon running and reachable? `docker info` tells)"
                );
            }
            last_error = stderr;
        }
        panic!(
            "slipway-testkit: could not publish a host port for {PG_IMAGE} after 5 tries: {last_error}"
        );
    }

    /// `postgres://postgres:<random password>@127.0.0.1:<published port>/postgres`
    pub fn url(&self) -> String {
        self.url_for_db("postgres")
    }

    /// Like [`url`](Self::url), for database `db` (percent-encoded).
    pub fn url_for_db(&self, db: &str) -> String {
        let addr = self.addr();
        format!(
            "postgres://postgres:{}@{}:{}/{}",
            self.password,
            addr.ip(),
            addr.port(),
            encode_segment(db)
        )
    }

    /// `CREATE DATABASE "<name>"` (any name; quoted by psql). Panics on failure.
    pub fn create_database(&self, name: &str) {
        // psql's :"var" quotes the identifier correctly; the statement comes
        // over stdin because psql does not interpolate variables in -c.
        let mut child = Command::new("docker")
            .args(["exec", "--interactive", &self.name])
            .args([
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-v")
            .arg(format!("db={name}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("slipway-testkit: cannot run `docker exec` ({e})"));
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(b"CREATE DATABASE :\"db\";\n")
            .unwrap_or_else(|e| panic!("slipway-testkit: cannot write to psql ({e})"));
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("slipway-testkit: waiting for psql failed ({e})"));
        if !out.status.success() {
            panic!(
                "slipway-testkit: CREATE DATABASE {name:?} in container {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// The container's name, for `docker exec` (e.g. `pg_dump` next to the
    /// database; local connections as `-U postgres` need no password).
    pub fn container_name(&self) -> &str {
        &self.name
    }

    /// The `postgres` superuser's random password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `docker stop`: PostgreSQL's fast shutdown (the image's stop signal is
    /// SIGINT), data kept. Panics on failure.
    pub fn stop(&self) {
        if let Err(e) = docker(&["stop", "--time", "30", &self.name]) {
            panic!("slipway-testkit: {e}");
        }
    }

    /// `docker start` after [`stop`](Self::stop): same data, same host port
    /// (so the same URL); waits until the server accepts connections.
    pub fn start_again(&self) {
        if let Err(e) = docker(&["start", &self.name]) {
            panic!(
                "slipway-testkit: {e}\n(if host port {} was taken while the container was stopped, \
                 the container cannot come back on it)",
                self.host_port
            );
        }
        self.wait_ready("start_again");
    }

    fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The container's IP on its Docker network(s), if it has one.
    fn bridge_addr(&self) -> Option<SocketAddr> {
        let ips = docker(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &self.name,
        ])
        .ok()?;
        ips.split_whitespace()
            .find_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 5432))
    }

    fn is_running(&self) -> bool {
        docker(&["inspect", "--format", "{{.State.Running}}", &self.name])
            .is_ok_and(|s| s == "true")
    }

    fn logs_tail(&self) -> String {
        // The image never prints the password, so its log is safe to show.
        match Command::new("docker")
            .args(["logs", "--tail", "40", &self.name])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(docker logs failed: {e})"),
        }
    }

    /// Polls (no fixed sleeps beyond a 100 ms poll interval) until the server
    /// accepts connections from the host, preferring the published port and
    /// falling back to the bridge IP; panics with the container log if it
    /// exits or the deadline passes.
    fn wait_ready(&self, what: &str) {
        let started = Instant::now();
        let published = SocketAddr::from((Ipv4Addr::LOCALHOST, self.host_port));
        let mut bridge = None;
        let mut last_inspect = Instant::now();
        loop {
            if pg_accepts(published) {
                *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = published;
                return;
            }
            if let Some(b) = bridge.filter(|b| pg_accepts(*b)) {
                // The published port may just have come up between the two
                // probes; prefer it if it answers now.
                let use_addr = if pg_accepts(published) { published } else { b };
                *self.addr.lock().unwrap_or_else(|p| p.into_inner()) = use_addr;
                return;
            }
            // `docker inspect` costs ~50 ms; once a second is plenty.
            if last_inspect.elapsed() >= Duration::from_secs(1) {
                last_inspect = Instant::now();
                if !self.is_running() {
                    panic!(
                        "slipway-testkit: container {} exited during {what} (after {:.1?}); its log:\n{}",
                        self.name,
                        started.elapsed(),
                        self.logs_tail()
                    );
                }
                bridge = self.bridge_addr();
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "slipway-testkit: container {} did not accept connections on {published} \
                     (nor on its bridge IP) within {READY_TIMEOUT:?} after {what}; its log:\n{}",
                    self.name,
                    self.logs_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PgContainer {
    fn drop(&mut self) {
        // Best effort, also during a panic: never panic in drop.
        let _ = Command::new("docker")
            .args(["rm", "--force", "--volumes", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_the_prefix() {
        let a = unique_name("x");
        let b = unique_name("x");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("x-{}-", std::process::id())), "{a}");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("app_db-1"), "app_db-1");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn workspace_root_is_the_workspace() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
