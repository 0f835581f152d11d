//! Where the PostgreSQL client tools run, and the only place that talks to
//! Docker (through its CLI; it streams stdin/stdout simply, and keeping it
//! here lets it move to the engine API later without touching the rest).
//!
//! `pg_dump` runs next to the database so client and server versions match:
//! inside the database container (`docker exec`), or, for a database outside
//! any container we run, in a one-off container of the database image
//! (`docker run --rm`). Connection settings travel as libpq environment
//! variables passed by name (`-e PGPASSWORD`, value taken from the docker
//! CLI's own environment), so no password ever appears on a command line
//! where `ps` would show it.

use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::error::{SnapshotError, hint_for};
use crate::migrate::error::scrub;
use crate::secret::{Secret, redact_url};

/// How much of a tool's stderr is kept for error messages.
const STDERR_LIMIT: usize = 16 * 1024;
/// The port PostgreSQL listens on inside its container.
const CONTAINER_PG_PORT: &str = "5432";

/// Where `pg_dump`, `pg_restore` and `psql` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpSite {
    /// Inside the running database container: connects to 127.0.0.1:5432
    /// there, with the URL's user, password and database.
    Container { name: String },
    /// A one-off `docker run --rm` of `image` (the database image, so the
    /// tools match the server), on `network` if given; connects with the
    /// URL as is, so its host must be reachable from that network (use
    /// `network: Some("host")` for a database on the host's loopback).
    OneOff {
        image: String,
        network: Option<String>,
    },
}

impl DumpSite {
    pub fn container(name: impl Into<String>) -> Self {
        DumpSite::Container { name: name.into() }
    }

    /// "in container `db`", for messages.
    pub fn describe(&self) -> String {
        match self {
            DumpSite::Container { name } => format!("in container `{name}`"),
            DumpSite::OneOff { image, .. } => format!("in a one-off container of `{image}`"),
        }
    }

    /// `docker exec|run ... program args`, with the connection passed by
    /// environment. `stdin`: whether the tool reads our stdin.
    pub fn command(&self, conn: &PgConn, program: &str, args: &[&str], stdin: bool) -> Command {
        let mut env = conn.env();
        let mut cmd = Command::new("docker");
        match self {
            DumpSite::Container { name } => {
                env.retain(|(k, _)| *k != "PGHOST" && *k != "PGPORT");
                env.push(("PGHOST", Secret::new("127.0.0.1")));
                env.push(("PGPORT", Secret::new(CONTAINER_PG_PORT)));
                cmd.arg("exec");
                if stdin {
                    cmd.arg("-i");
                }
                push_env(&mut cmd, &env);
                cmd.arg(name).arg(program);
            }
            DumpSite::OneOff { image, network } => {
                // No log driver: the dump must not also be copied into the
                // engine's container log on its way out.
                cmd.args(["run", "--rm", "--log-driver", "none"]);
                if stdin {
                    cmd.arg("-i");
                }
                if let Some(network) = network {
                    cmd.args(["--network", network]);
                }
                push_env(&mut cmd, &env);
                cmd.args(["--entrypoint", program]).arg(image);
            }
        }
        cmd.args(args);
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a tool to completion and returns its stdout (for small outputs:
    /// `psql -c`, `--version`).
    pub async fn run_small(
        &self,
        conn: &PgConn,
        program: &str,
        args: &[&str],
    ) -> Result<String, SnapshotError> {
        let mut child = spawn(self.command(conn, program, args, false))?;
        let stderr = collect_stderr(&mut child);
        let mut stdout = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut stdout)
                .await
                .map_err(|source| SnapshotError::Io {
                    doing: format!("reading the output of `{program}`"),
                    source,
                })?;
        }
        self.finish(conn, program, child, stderr).await?;
        Ok(stdout)
    }

    /// Waits for a tool and turns a failure into [`SnapshotError::ToolFailed`]
    /// with its (scrubbed) stderr.
    pub async fn finish(
        &self,
        conn: &PgConn,
        program: &str,
        mut child: Child,
        stderr: JoinHandle<String>,
    ) -> Result<(), SnapshotError> {
        let status = child.wait().await.map_err(|source| SnapshotError::Io {
            doing: format!("waiting for `{program}`"),
            source,
        })?;
        let stderr = stderr.await.unwrap_or_default();
        if status.success() {
            if !stderr.trim().is_empty() {
                tracing::debug!(program, stderr = %conn.scrub(stderr.trim()), "tool wrote to stderr");
            }
            return Ok(());
        }
        let stderr = conn.scrub(stderr.trim());
        Err(SnapshotError::ToolFailed {
            tool: program.to_string(),
            site: self.describe(),
            status: status.to_string(),
            hint: hint_for(&stderr).to_string(),
            stderr,
        })
    }
}

/// Spawns a prepared command; a missing docker CLI becomes a clear error.
pub fn spawn(mut cmd: Command) -> Result<Child, SnapshotError> {
    cmd.spawn()
        .map_err(|source| SnapshotError::Spawn { source })
}

/// Drains a child's stderr in the background, keeping the first
/// [`STDERR_LIMIT`] bytes: enough for the error, bounded whatever happens.
pub fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else {
            return String::new();
        };
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        let mut truncated = false;
        loop {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = STDERR_LIMIT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    truncated |= n > room;
                }
            }
        }
        let mut text = String::from_utf8_lossy(&kept).into_owned();
        if truncated {
            text.push_str(" [...]");
        }
        text
    })
}

/// libpq connection settings taken apart from a URL, so they can travel as
/// environment variables.
#[derive(Clone)]
pub struct PgConn {
    pub host: String,
    pub port: String,
    pub user: String,
    pub dbname: String,
    password: Option<Secret>,
    /// Other URL parameters mapped to libpq variables (`sslmode` → PGSSLMODE).
    params: Vec<(&'static str, String)>,
    /// The URL with its password redacted, for messages.
    pub redacted: String,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("url", &self.redacted)
            .finish()
    }
}

impl PgConn {
    pub fn from_url(url: &Secret) -> Result<Self, SnapshotError> {
        let redacted = redact_url(url.expose());
        let bad = |reason: &str| SnapshotError::Url {
            url: redacted.clone(),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url.expose()).map_err(|_| bad("it is not a URL"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad("the scheme must be postgres:// or postgresql://"));
        }
        let user = percent_decode(parsed.username());
        if user.is_empty() {
            return Err(bad(
                "it names no user (postgres://USER:PASSWORD@HOST:PORT/DB)",
            ));
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("it names no host")),
        };
        let dbname = percent_decode(parsed.path().trim_start_matches('/'));
        let dbname = if dbname.is_empty() {
            user.clone()
        } else {
            dbname
        };
        let mut params = Vec::new();
        for (k, v) in parsed.query_pairs() {
            let var = match k.as_ref() {
                "sslmode" => "PGSSLMODE",
                "sslrootcert" => "PGSSLROOTCERT",
                "sslcert" => "PGSSLCERT",
                "sslkey" => "PGSSLKEY",
                "options" => "PGOPTIONS",
                "connect_timeout" => "PGCONNECT_TIMEOUT",
                "application_name" => "PGAPPNAME",
                "target_session_attrs" => "PGTARGETSESSIONATTRS",
                other => {
                    tracing::warn!(
                        parameter = other,
                        "ignoring database URL parameter the snapshot tools do not take"
                    );
                    continue;
                }
            };
            params.push((var, v.into_owned()));
        }
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(5432).to_string(),
            user,
            dbname,
            password: parsed.password().map(|p| Secret::new(percent_decode(p))),
            params,
            redacted,
        })
    }

    /// The libpq variables; values stay [`Secret`] until they reach the
    /// child's environment.
    pub fn env(&self) -> Vec<(&'static str, Secret)> {
        let mut env = vec![
            ("PGHOST", Secret::new(self.host.clone())),
            ("PGPORT", Secret::new(self.port.clone())),
            ("PGUSER", Secret::new(self.user.clone())),
            ("PGDATABASE", Secret::new(self.dbname.clone())),
        ];
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        for (k, v) in &self.params {
            env.push((k, Secret::new(v.clone())));
        }
        env
    }

    /// Removes the password from a tool's message.
    pub fn scrub(&self, message: &str) -> String {
        scrub(message, self.password.as_ref().map(Secret::expose))
    }
}

/// `-e NAME` for each variable (the value comes from the docker CLI's own
/// environment, which we set), never `-e NAME=value`.
fn push_env(cmd: &mut Command, env: &[(&'static str, Secret)]) {
    for (name, value) in env {
        cmd.arg("-e").arg(name);
        cmd.env(name, value.expose());
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(cmd: &Command) -> Vec<String> {
        cmd.as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn env_of(cmd: &Command, name: &str) -> Option<String> {
        cmd.as_std()
            .get_envs()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn url_is_taken_apart_and_decoded() {
        let conn = PgConn::from_url(&Secret::new(
            "postgres://app%40x:p%40ss-canary@db.internal:6543/events%5Fdb?sslmode=require",
        ))
        .expect("valid url");
        assert_eq!(conn.user, "app@x");
        assert_eq!(conn.host, "db.internal");
        assert_eq!(conn.port, "6543");
        assert_eq!(conn.dbname, "events_db");
        assert!(!format!("{conn:?}").contains("canary"));
        let env = conn.env();
        assert!(
            env.iter()
                .any(|(k, v)| *k == "PGPASSWORD" && v.expose() == "p@ss-canary")
        );
        assert!(
            env.iter()
                .any(|(k, v)| *k == "PGSSLMODE" && v.expose() == "require")
        );
    }

    #[test]
    fn bad_urls_are_refused_without_the_password() {
        for url in [
            "mysql://u:canary@h/db",
            "postgres://:canary@h/db",
            "not a url canary",
        ] {
            let err = PgConn::from_url(&Secret::new(url))
                .expect_err(url)
                .to_string();
            assert!(!err.contains("canary"), "{err}");
        }
    }

    #[test]
    fn password_never_on_the_command_line() {
        let conn = PgConn::from_url(&Secret::new("postgres://u:canary-pw@127.0.0.1:55432/app"))
            .expect("valid");
        let site = DumpSite::container("pg-1");
        let cmd = site.command(&conn, "pg_dump", &["-Fc"], false);
        let args = args_of(&cmd);
        assert!(args.iter().all(|a| !a.contains("canary")), "{args:?}");
        assert_eq!(&args[..3], &["exec", "-e", "PGUSER"]);
        assert!(args.ends_with(&["pg-1".to_string(), "pg_dump".to_string(), "-Fc".to_string()]));
        assert_eq!(env_of(&cmd, "PGPASSWORD").as_deref(), Some("canary-pw"));
        // Inside the container the server is on its own loopback.
        assert_eq!(env_of(&cmd, "PGHOST").as_deref(), Some("127.0.0.1"));
        assert_eq!(env_of(&cmd, "PGPORT").as_deref(), Some("5432"));

        let site = DumpSite::OneOff {
            image: "slipway-postgres:17".into(),
            network: Some("host".into()),
        };
        let cmd = site.command(&conn, "pg_restore", &["--list"], true);
        let args = args_of(&cmd);
        assert!(args.iter().all(|a| !a.contains("canary")), "{args:?}");
        for expected in [
            "run",
            "--rm",
            "-i",
            "--network",
            "host",
            "--entrypoint",
            "pg_restore",
        ] {
            assert!(
                args.iter().any(|a| a == expected),
                "{expected} missing in {args:?}"
            );
        }
        assert_eq!(env_of(&cmd, "PGPORT").as_deref(), Some("55432"));
    }

    #[test]
    fn percent_decode_leaves_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
