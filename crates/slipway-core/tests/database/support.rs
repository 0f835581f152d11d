//! Shared fixtures: one PostgreSQL container shared by the tests that run at
//! the same time (each test gets its own database in it), migration
//! directories, assertion connections, and polling with a deadline.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use slipway_core::secret::Secret;
use slipway_testkit::PgContainer;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

/// The container of the tests running now. Held weakly, so it is removed
/// (Drop) as soon as no test uses it: statics are never dropped, and a
/// container must not outlive the test process.
static SHARED: Mutex<Weak<PgContainer>> = Mutex::new(Weak::new());

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "slipway_core=debug".into()),
        )
        .try_init();
}

/// A database of its own in the shared container.
pub struct TestDb {
    pub pg: Arc<PgContainer>,
    pub name: String,
    pub url: Secret,
}

pub fn test_db(prefix: &str) -> TestDb {
    init_tracing();
    let pg = {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        match shared.upgrade() {
            Some(pg) => pg,
            None => {
                let pg = Arc::new(PgContainer::start());
                *shared = Arc::downgrade(&pg);
                pg
            }
        }
    };
    let name = slipway_testkit::unique_name(prefix).replace('-', "_");
    pg.create_database(&name);
    let url = Secret::new(pg.url_for_db(&name));
    TestDb { pg, name, url }
}

impl TestDb {
    /// A plain connection for setting up and checking.
    pub async fn client(&self) -> (Client, JoinHandle<()>) {
        let (client, conn) = tokio_postgres::connect(self.url.expose(), NoTls)
            .await
            .expect("test connection");
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        (client, task)
    }

    pub fn password(&self) -> &str {
        self.pg.password()
    }
}

/// Writes migration files into a new temporary directory.
pub fn migrations(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), files);
    dir
}

pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        fs_err::write(dir.join(name), body).expect("write migration file");
    }
}

/// Polls `check` until it returns true, failing the test at the deadline.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn scalar_i64(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// (version, dirty) rows of schema_migrations, all of them.
pub async fn schema_migrations_rows(client: &Client) -> Vec<(i64, bool)> {
    client
        .query("SELECT version, dirty FROM schema_migrations", &[])
        .await
        .expect("read schema_migrations")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Advisory locks held in this database (none must survive a runner).
pub async fn advisory_locks(client: &Client) -> i64 {
    scalar_i64(
        client,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .await
}
