//! Snapshots of an environment's database, taken next to it so `pg_dump`
//! matches the server: inside the database container (container mode) or a
//! one-off container of `database.image` on the environment's network
//! (external mode). The dump streams through the engine to this machine and
//! is written to `database.snapshots.dir` here: for a remote engine
//! (`ssh://...`) that is the CLI's disk, not the server's. Each environment
//! writes, prunes and restores in its own `<dir>/<app>/<environment>/`.
//!
//! The snapshot library drives the `docker` CLI, so for a remote engine the
//! CLI must point at the same engine (`DOCKER_HOST`); this is checked first.

use std::path::PathBuf;
use std::time::Duration;

use slipway_core::config::schema::DatabaseMode;
use slipway_core::secret::Secret;
use slipway_core::snapshot::{
    self, CreateOptions, DumpSite, Owner, RestoreOptions, RestoreReport, Snapshot, SnapshotError,
    commit_label,
};

use super::{TaskContext, TaskError, database_url, require_database};
use crate::exit::Exit;

/// True when `schema_migrations` (golang-migrate's table) is on the search path.
const SCHEMA_SQL: &str = "select to_regclass('schema_migrations') is not null";

/// Where the tools run and how they connect.
pub struct SnapshotSite {
    pub site: DumpSite,
    pub url: Secret,
    /// `database.snapshots.dir`, absolute: shared by every app and environment.
    pub root: PathBuf,
    /// This app and environment, whose snapshots live in `owner.dir(root)`.
    pub owner: Owner,
    pub retention: Duration,
    /// `database.snapshots.{compression, format, jobs}`.
    pub compression: snapshot::Compression,
    pub format: snapshot::ArchiveFormat,
    pub jobs: u32,
}

/// Whose snapshots this environment's are: `database.snapshots.dir` made
/// absolute, and the owner. Needs no engine (list and prune use it).
pub fn snapshot_owner(
    config: &slipway_core::config::ResolvedConfig,
) -> Result<(PathBuf, Owner), TaskError> {
    let root = config.path(&config.settings.database.snapshots.dir);
    let owner = Owner::new(&config.settings.app.name, &config.environment).map_err(|e| {
        TaskError::new(
            Exit::BadInput,
            format!("this environment cannot keep snapshots: {e}"),
        )
        .hint("rename the environment in deployment.yml to use only letters, digits, `-` and `.`")
    })?;
    Ok((root, owner))
}

/// The dump site, URL, directory and retention of this environment, after
/// checking that the database can be reached from here.
pub async fn snapshot_site(ctx: &TaskContext<'_>) -> Result<SnapshotSite, TaskError> {
    check_docker_cli_target(&ctx.engine.host, ctx.engine.is_local())?;
    let db = &ctx.config.settings.database;
    let url = database_url(ctx.config, ctx.names)?;
    let site = match db.mode {
        DatabaseMode::Container => {
            require_database(ctx).await?;
            let name = ctx.names.database();
            DumpSite::Container { name }
        }
        DatabaseMode::External => DumpSite::OneOff {
            image: db.image.clone(),
            network: Some(ctx.names.network()),
        },
    };
    let days = u64::from(db.snapshots.retention_days.max(1));
    let (root, owner) = snapshot_owner(ctx.config)?;
    Ok(SnapshotSite {
        site,
        url,
        root,
        owner,
        retention: Duration::from_secs(days * 24 * 60 * 60),
        compression: db.snapshots.compression,
        format: db.snapshots.format,
        jobs: db.snapshots.jobs,
    })
}

/// Takes a verified snapshot (reason, release and commit in its sidecar),
/// then prunes snapshots past the retention (never the newest). A failed
/// prune is a warning: the snapshot itself was taken.
pub async fn snapshot_create(
    ctx: &TaskContext<'_>,
    reason: &str,
    release: &str,
    commit: &str,
) -> Result<Snapshot, TaskError> {
    let s = snapshot_site(ctx).await?;
    let (dir, _tightened) = snapshot::prepare(&s.root, &s.owner)
        .map_err(|e| snapshot_error("preparing the snapshot directory", e, &s.root))?;
    let mut opts = CreateOptions::new(&dir, short_commit(commit), reason);
    opts.owner = Some(s.owner.clone());
    opts.release = (!release.is_empty()).then(|| release.to_string());
    opts.retention = s.retention;
    opts.compression = s.compression;
    opts.format = s.format;
    opts.jobs = s.jobs;
    let snap = snapshot::create(&s.site, &s.url, &opts)
        .await
        .map_err(|e| snapshot_error("taking the snapshot", e, &dir))?;
    match snapshot::prune(
        &s.root,
        &s.owner,
        time::OffsetDateTime::now_utc(),
        s.retention,
    ) {
        Ok(report) if !report.deleted.is_empty() => tracing::info!(
            target: "slipway::tasks",
            "pruned {} snapshot(s) older than the retention: {}",
            report.deleted.len(),
            report.deleted.join(", ")
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            target: "slipway::tasks",
            "the snapshot was taken, but pruning old snapshots in {} failed: {e}",
            dir.display()
        ),
    }
    Ok(snap)
}

/// Restores a snapshot file into the environment's database (all or
/// nothing: one transaction, or for the directory format `jobs` parallel
/// jobs into a new database swapped in on success) and reports the schema
/// version now in the database and the time it took.
pub async fn snapshot_restore(
    ctx: &TaskContext<'_>,
    dump: &std::path::Path,
) -> Result<RestoreReport, TaskError> {
    let s = snapshot_site(ctx).await?;
    let opts = RestoreOptions {
        jobs: s.jobs,
        ..RestoreOptions::default()
    };
    snapshot::restore(&s.site, &s.url, dump, &opts)
        .await
        .map_err(|e| snapshot_error("restoring the snapshot", e, &s.root))
}

/// Whether the database holds a migrated schema (`schema_migrations` exists),
/// so a deploy knows whether there is anything to snapshot. A database that
/// does not exist yet counts as empty.
pub async fn database_has_schema(ctx: &TaskContext<'_>) -> Result<bool, TaskError> {
    let db = &ctx.config.settings.database;
    match db.mode {
        DatabaseMode::Container => {
            schema_in_container(ctx.engine, &ctx.names.database(), &db.user, &db.name).await
        }
        DatabaseMode::External => {
            let s = snapshot_site(ctx).await?;
            let conn = snapshot::site::PgConn::from_url(&s.url)
                .map_err(|e| snapshot_error("reading DATABASE_URL", e, &s.root))?;
            let out = s
                .site
                .run_small(
                    &conn,
                    "psql",
                    &["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", SCHEMA_SQL],
                )
                .await;
            match out {
                Ok(text) => Ok(text.trim() == "t"),
                Err(SnapshotError::ToolFailed { stderr, .. })
                    if stderr.contains("does not exist") =>
                {
                    Ok(false)
                }
                Err(e) => Err(snapshot_error("checking for schema_migrations", e, &s.root)),
            }
        }
    }
}

/// `schema_migrations` in database `db` of a database container, asked over
/// the container's unix socket: local connections are trusted by the image,
/// so no password is needed (or exposed).
async fn schema_in_container(
    engine: &crate::providers::docker::Engine,
    container: &str,
    user: &str,
    db: &str,
) -> Result<bool, TaskError> {
    let out = engine
        .exec(
            container,
            &["psql", "-X", "-At", "-U", user, "-d", db, "-c", SCHEMA_SQL],
            None,
        )
        .await?;
    let stderr = out.stderr_text();
    if out.code == 0 {
        return Ok(out.stdout_text().trim() == "t");
    }
    // A database not created yet has no schema to protect.
    if stderr.contains(&format!("database \"{db}\" does not exist")) {
        return Ok(false);
    }
    Err(TaskError::failed(format!(
        "checking for schema_migrations in {container} failed: {}",
        stderr.trim()
    ))
    .hint(format!("see `docker logs {container}`")))
}

/// Commit label for a file name: a full hex sha shortened to 12.
fn short_commit(commit: &str) -> String {
    let label = commit_label(commit);
    if label.len() > 12 && label.chars().all(|c| c.is_ascii_hexdigit()) {
        label[..12].to_string()
    } else {
        label
    }
}

fn snapshot_error(doing: &str, e: SnapshotError, dir: &std::path::Path) -> TaskError {
    let exit = match &e {
        SnapshotError::Spawn { .. } => Exit::Unavailable,
        SnapshotError::Url { .. } | SnapshotError::InvalidName { .. } => Exit::BadInput,
        SnapshotError::NotFound { .. } | SnapshotError::UnsafeDirectory { .. } => Exit::BadInput,
        _ => Exit::Failed,
    };
    let hint = match &e {
        SnapshotError::Io { .. } => format!(
            "check that {} is writable and has space (database.snapshots.dir)",
            dir.display()
        ),
        SnapshotError::NotFound { .. } => {
            "`slipway snapshot list <env>` shows the snapshots".into()
        }
        SnapshotError::UnsafeDirectory { path, .. } => {
            format!("as the directory's owner: chmod 700 {}", path.display())
        }
        _ => "the message names the failing tool and its output".into(),
    };
    TaskError::new(exit, format!("{doing} failed: {e}")).hint(hint)
}

/// The snapshot library runs the `docker` CLI; for a remote engine it must
/// talk to that engine, not the local one.
fn check_docker_cli_target(engine_host: &str, engine_is_local: bool) -> Result<(), TaskError> {
    if engine_is_local && !engine_host.starts_with("tcp://") && !engine_host.starts_with("http") {
        return Ok(());
    }
    let cli_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if cli_host == engine_host {
        return Ok(());
    }
    Err(TaskError::new(
        Exit::BadInput,
        format!(
            "snapshots run pg_dump through the docker CLI, which talks to `{}`, but this environment's engine is `{engine_host}`",
            if cli_host.is_empty() { "the local engine" } else { &cli_host }
        ),
    )
    .hint(format!(
        "export DOCKER_HOST={engine_host} and run the command again (the dump streams back to this machine)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_shas_are_shortened_other_labels_kept() {
        assert_eq!(
            short_commit("0123456789abcdef0123456789abcdef01234567"),
            "0123456789ab"
        );
        assert_eq!(short_commit("v1.4.0"), "v1.4.0");
        assert_eq!(short_commit("feature/x"), "feature-x");
        assert_eq!(short_commit(""), "unknown");
    }

    #[test]
    fn a_local_engine_needs_no_docker_host() {
        assert!(check_docker_cli_target("unix:///var/run/docker.sock", true).is_ok());
        let err = check_docker_cli_target("ssh://deploy@host", false).expect_err("mismatch");
        assert!(
            err.hint
                .unwrap_or_default()
                .contains("DOCKER_HOST=ssh://deploy@host")
        );
    }

    /// Real engine, real PostgreSQL: a missing database, an empty one and a
    /// migrated one.
    #[tokio::test]
    async fn schema_is_found_only_where_schema_migrations_exists() {
        let pg = slipway_testkit::PgContainer::start();
        let engine = crate::providers::docker::Engine::connect(None)
            .await
            .expect("local engine");
        let name = pg.container_name();
        let has = |db: &'static str| schema_in_container(&engine, name, "postgres", db);
        assert!(!has("app").await.expect("missing database is empty"));
        pg.create_database("app");
        assert!(!has("app").await.expect("empty database"));
        let out = engine
            .exec(
                name,
                &["psql", "-X", "-U", "postgres", "-d", "app", "-c",
                  "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"],
                None,
            )
            .await
            .expect("exec");
        assert_eq!(out.code, 0, "{}", out.stderr_text());
        assert!(has("app").await.expect("migrated database"));
        let err = schema_in_container(&engine, "no-such-container-slipway", "postgres", "app")
            .await
            .expect_err("no container");
        assert!(err.message.contains("no-such-container-slipway"), "{err}");
    }
}
