//! Integration tests of slipway-testkit against the real Docker Engine and a
//! real PostgreSQL 17: the image's extensions, the connection URL from the
//! host, stop/start_again keeping data and port, create_database, container
//! removal on drop, and the password staying out of Debug output.

use slipway_testkit::{PgContainer, unique_name};
use std::process::Command;
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // Errors after a deliberate stop are expected; nothing to report.
        let _ = connection.await;
    });
    Ok(client)
}

fn container_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", name])
        .output()
        .expect("docker runs")
        .status
        .success()
}

#[tokio::test]
async fn extensions_postgis_vector_pg_trgm_are_available() {
    let pg = PgContainer::start();
    let url = pg.url();
    assert!(
        url.starts_with("postgres://postgres:"),
        "unexpected url shape"
    );
    assert!(url.ends_with("/postgres"));

    let client = connect(&url)
        .await
        .expect("connect with the url's password");
    client
        .batch_execute(
            "CREATE EXTENSION postgis; CREATE EXTENSION vector; CREATE EXTENSION pg_trgm;",
        )
        .await
        .expect("create the three extensions");

    let rows = client
        .query(
            "SELECT extname::text, extversion FROM pg_extension \
             WHERE extname IN ('postgis', 'vector', 'pg_trgm') ORDER BY extname",
            &[],
        )
        .await
        .unwrap();
    let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["pg_trgm", "postgis", "vector"], "{found:?}");
    for (name, version) in &found {
        assert!(
            version.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{name} has version {version:?}"
        );
    }
    let postgis = &found[1].1;
    assert!(postgis.starts_with("3."), "postgis {postgis}");

    // And they work, not just install.
    let row = client
        .query_one(
            "SELECT ST_Distance(ST_MakePoint(0, 0), ST_MakePoint(3, 4)), \
                    ('[1,2,3]'::vector <-> '[1,2,5]'::vector), \
                    similarity('slipway', 'slipway'), \
                    current_setting('server_version_num')::int",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, f64>(0), 5.0);
    assert_eq!(row.get::<_, f64>(1), 2.0);
    assert_eq!(row.get::<_, f32>(2), 1.0);
    let version: i32 = row.get(3);
    assert!((170_000..180_000).contains(&version), "server {version}");
}

#[tokio::test]
async fn wrong_password_is_rejected() {
    // Proves the URL's password is what gets us in (scram over TCP), i.e. the
    // server is not accepting everyone.
    let pg = PgContainer::start();
    let bad = pg.url().replace(pg.password(), "not-the-password");
    assert_ne!(bad, pg.url());
    let Err(err) = connect(&bad).await else {
        panic!("a wrong password must fail");
    };
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err:?}"
    );
}

#[tokio::test]
async fn stop_and_start_again_keep_data_and_url() {
    let pg = PgContainer::start();
    let url = pg.url();
    let client = connect(&url).await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before stop');")
        .await
        .unwrap();
    drop(client);

    pg.stop();
    assert!(
        connect(&url).await.is_err(),
        "a stopped database must not accept connections"
    );

    pg.start_again();
    assert_eq!(pg.url(), url, "start_again must keep the same URL (port)");
    let client = connect(&url).await.expect("connect after start_again");
    let v: String = client
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "before stop");
}

#[tokio::test]
async fn create_database_and_url_for_db() {
    let pg = PgContainer::start();
    pg.create_database("app_test");
    // A name that needs quoting in SQL and encoding in the URL.
    pg.create_database("Odd Name");

    for db in ["app_test", "Odd Name"] {
        let client = connect(&pg.url_for_db(db)).await.expect(db);
        let current: String = client
            .query_one("SELECT current_database()::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(current, db);
    }
    assert!(
        connect(&pg.url_for_db("missing_db")).await.is_err(),
        "a database that was not created must not be reachable"
    );
}

#[test]
fn drop_removes_the_container_and_debug_hides_the_password() {
    slipway_testkit::ensure_images().unwrap();
    let started = std::time::Instant::now();
    let pg = PgContainer::start();
    // Shown with --nocapture: how long a fresh database takes to be ready.
    eprintln!("PgContainer::start took {:.1?}", started.elapsed());
    let name = pg.container_name().to_string();
    assert!(name.starts_with("slipway-test-pg-"), "{name}");
    assert!(container_exists(&name));

    let debug = format!("{pg:?}");
    assert!(debug.contains(&name));
    assert!(!debug.contains(pg.password()), "Debug leaks the password");

    // pg_dump runs next to the database, as snapshot tests will use it.
    let out = Command::new("docker")
        .args(["exec", &name, "pg_dump", "--version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pg_dump (PostgreSQL) 17."));

    drop(pg);
    assert!(!container_exists(&name), "container {name} survived Drop");
}

#[test]
fn container_is_removed_when_the_test_panics() {
    let name = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let pg = PgContainer::start();
        *name.lock().unwrap() = pg.container_name().to_string();
        panic!("deliberate");
    });
    assert!(result.is_err());
    let name = name.into_inner().unwrap();
    assert!(!name.is_empty());
    assert!(
        !container_exists(&name),
        "container {name} survived a panic"
    );
}

#[test]
fn unique_names_do_not_collide() {
    let names: std::collections::HashSet<String> = (0..1000).map(|_| unique_name("t")).collect();
    assert_eq!(names.len(), 1000);
}
