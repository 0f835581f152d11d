//! End-to-end tests of `slipway migrate` in its ad-hoc form
//! (`--dir <dir> --database-url <url>` or `DATABASE_URL`), the way
//! golang-migrate users run it: the real binary against a real PostgreSQL 17
//! container, checking exit codes, the JSON reports, the database's state,
//! and that the URL's password (a canary) appears in no output at all.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use slipway_testkit::PgContainer;

/// Password of the role the tests connect as; must never be printed.
#[path = "../common/run.rs"]
mod run;

use run::Run;

const CANARY: &str = "canary-mig-7b1e0c-do-not-print";
const ROLE: &str = "slipway_canary";

impl Run {
    /// Asserts the exit code and that the canary is nowhere in the output.
    fn expect(self, code: i32) -> Run {
        assert!(
            !self.all().contains(CANARY),
            "the password leaked into the output:\n{}",
            self.all()
        );
        assert_eq!(self.code, code, "unexpected exit code:\n{}", self.all());
        self
    }
}

/// Runs the real binary in `dir`, stdin closed (never a terminal).
fn slipway(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL")
        .env_remove("SLIPWAY_CONFIG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from_output(cmd.output().expect("run slipway"))
}

/// SQL through `psql` in the container over its unix socket (trusted), fed on
/// stdin so nothing lands on a command line; returns trimmed `-At` output.
fn psql(pg: &PgContainer, db: &str, sql: &str) -> String {
    let mut child = Command::new("docker")
        .args(["exec", "-i", pg.container_name()])
        .args([
            "psql",
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec psql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write sql");
    let out = child.wait_with_output().expect("psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database `app` and a superuser role whose password is the canary;
/// returns the URL that connects as that role.
fn canary_database(pg: &PgContainer) -> String {
    pg.create_database("app");
    psql(
        pg,
        "postgres",
        &format!("CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{CANARY}';"),
    );
    // host:port as the testkit found it reachable (`postgres://u:p@HOST:PORT/db`).
    let url = pg.url();
    let host_port = url
        .rsplit_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(hp, _)| hp.to_string())
        .expect("testkit url has user@host:port/db");
    format!("postgres://{ROLE}:{CANARY}@{host_port}/app")
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).expect("write migration");
}

fn migrations(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    write(
        dir,
        "0001_items.up.sql",
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n",
    );
    write(dir, "0001_items.down.sql", "DROP TABLE items;\n");
    write(
        dir,
        "0002_seed.up.sql",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two');\n",
    );
    write(dir, "0002_seed.down.sql", "DELETE FROM items;\n");
    write(
        dir,
        "0003_tags.up.sql",
        "ALTER TABLE items ADD COLUMN tag text;\n",
    );
    write(
        dir,
        "0003_tags.down.sql",
        "ALTER TABLE items DROP COLUMN tag;\n",
    );
}

fn version_row(pg: &PgContainer) -> String {
    psql(
        pg,
        "app",
        "SELECT version || '|' || dirty FROM schema_migrations;",
    )
}

#[test]
fn adhoc_up_status_down_force_with_reports_exit_codes_and_no_password_in_output() {
    let pg = PgContainer::start();
    let url = canary_database(&pg);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("migrations");
    migrations(&dir);
    let d = dir.to_str().expect("utf-8 path");
    let via_env = [("DATABASE_URL", url.as_str())];

    // status before anything: no version, three pending (URL from the environment).
    let status = slipway(
        work.path(),
        &["migrate", "status", "--dir", d, "--json"],
        &via_env,
    )
    .expect(0)
    .json();
    assert_eq!(status["current"], Value::Null);
    assert_eq!(status["pending"].as_array().map(Vec::len), Some(3));

    // up --limit 1 with the URL as a flag: exactly one applied.
    let up = slipway(
        work.path(),
        &[
            "migrate",
            "up",
            "--limit",
            "1",
            "--dir",
            d,
            "--database-url",
            &url,
            "--json",
        ],
        &[],
    )
    .expect(0)
    .json();
    assert_eq!(up["to"], 1);
    assert_eq!(up["applied"][0]["file"], "0001_items.up.sql");
    assert!(up["applied"][0]["duration_ms"].is_u64(), "{up}");
    assert_eq!(version_row(&pg), "1|false");

    // up, human form: the rest applied, progress (each file, its duration) on stderr.
    let run = slipway(work.path(), &["migrate", "up", "--dir", d], &via_env).expect(0);
    assert!(
        run.stdout.contains("applied 2 migration(s): version 1 → 3"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("applied 0002_seed.up.sql in"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("applied 0003_tags.up.sql in"),
        "{}",
        run.all()
    );
    assert_eq!(version_row(&pg), "3|false");

    // down without --yes and without a terminal: refused, exit 3, nothing changed.
    let run = slipway(work.path(), &["migrate", "down", "1", "--dir", d], &via_env).expect(3);
    assert!(run.stderr.contains("--yes"), "{}", run.all());
    assert!(
        run.stderr.contains("redacted"),
        "the database is named, redacted: {}",
        run.all()
    );
    assert_eq!(version_row(&pg), "3|false");
    assert_eq!(
        psql(
            &pg,
            "app",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'tag';"
        ),
        "1"
    );

    // down 1 --yes: the tag column is gone, version 2.
    let down = slipway(
        work.path(),
        &["migrate", "down", "1", "--yes", "--dir", d, "--json"],
        &via_env,
    )
    .expect(0)
    .json();
    assert_eq!(down["from"], 3);
    assert_eq!(down["to"], 2);
    assert_eq!(down["reverted"][0]["file"], "0003_tags.down.sql");
    assert_eq!(
        psql(
            &pg,
            "app",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'tag';"
        ),
        "0"
    );

    // A no-transaction file failing half-way leaves the database dirty: exit 1
    // with the recovery steps; --json gives an error document on stdout.
    write(
        &dir,
        "0004_broken.up.sql",
        "-- slipway:no-transaction\nALTER TABLE items ADD COLUMN broken int;\nSELECT no_such_function();\n",
    );
    let run = slipway(
        work.path(),
        &["migrate", "up", "--dir", d, "--json"],
        &via_env,
    )
    .expect(1);
    let error = run.json();
    let message = error["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("dirty"), "{}", run.all());
    assert_eq!(error["error"]["exit"], 1);
    assert_eq!(version_row(&pg), "4|true");
    // A second run is refused with the exact recovery steps.
    let run = slipway(work.path(), &["migrate", "up", "--dir", d], &via_env).expect(1);
    assert!(
        run.stderr.contains("is dirty at version 4"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("slipway migrate force 3"),
        "{}",
        run.all()
    );

    // force without --yes: refused (3), still dirty. With --yes: clean at 4.
    slipway(
        work.path(),
        &["migrate", "force", "4", "--dir", d],
        &via_env,
    )
    .expect(3);
    assert_eq!(version_row(&pg), "4|true");
    let forced = slipway(
        work.path(),
        &["migrate", "force", "4", "--yes", "--dir", d, "--json"],
        &via_env,
    )
    .expect(0)
    .json();
    assert_eq!(forced["was_dirty"], true);
    assert_eq!(forced["to"], 4);
    assert_eq!(version_row(&pg), "4|false");

    // force -1 (golang-migrate's "no version") parses as a number, not a flag.
    let forced = slipway(
        work.path(),
        &["migrate", "force", "-1", "--yes", "--dir", d, "--json"],
        &via_env,
    )
    .expect(0)
    .json();
    assert_eq!(forced["to"], Value::Null);
}

#[test]
fn adhoc_form_reports_missing_input_and_unreachable_databases_without_the_password() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("migrations");
    migrations(&dir);
    let d = dir.to_str().expect("utf-8 path");

    // Neither an environment nor --dir: bad input.
    let run = slipway(work.path(), &["migrate", "status"], &[]).expect(2);
    assert!(
        run.stderr.contains("--dir and --database-url"),
        "{}",
        run.all()
    );
    // --dir without any URL.
    let run = slipway(work.path(), &["migrate", "up", "--dir", d], &[]).expect(2);
    assert!(run.stderr.contains("DATABASE_URL"), "{}", run.all());
    // A directory with a badly named file: bad input naming the file.
    write(&dir, "notes.up.sql", "SELECT 1;\n");
    let url = format!("postgres://someone:{CANARY}@127.0.0.1:9/app");
    let run = slipway(
        work.path(),
        &["migrate", "up", "--dir", d, "--database-url", &url],
        &[],
    )
    .expect(2);
    assert!(run.stderr.contains("notes.up.sql"), "{}", run.all());
    std::fs::remove_file(dir.join("notes.up.sql")).expect("rm");
    // Nothing listens on port 9: unavailable (4), URL shown redacted.
    let run = slipway(
        work.path(),
        &["migrate", "up", "--dir", d, "--json"],
        &[("DATABASE_URL", &url)],
    )
    .expect(4);
    assert!(
        run.stderr.contains("someone:redacted@127.0.0.1:9"),
        "{}",
        run.all()
    );
    assert_eq!(run.json()["error"]["exit"], 4);
    // --help never shows DATABASE_URL's value.
    let run = slipway(
        work.path(),
        &["migrate", "up", "--help"],
        &[("DATABASE_URL", &url)],
    )
    .expect(0);
    assert!(run.stdout.contains("DATABASE_URL"), "{}", run.all());
}

#[test]
fn a_second_runner_gives_up_after_its_lock_wait_with_exit_3() {
    let pg = PgContainer::start();
    let url = canary_database(&pg);
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("migrations");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // Long enough for the second runner's 1 s wait to run out while it holds the lock.
    write(
        &dir,
        "0001_slow.up.sql",
        "SELECT pg_sleep(6);\nCREATE TABLE slow (id int);\n",
    );
    let d = dir.to_str().expect("utf-8 path");

    let first = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .current_dir(work.path())
        .args(["migrate", "up", "--dir", d])
        .env("DATABASE_URL", &url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the first runner");
    // Wait (bounded) until the first runner holds its advisory lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while psql(
        &pg,
        "postgres",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted;",
    ) == "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first runner never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let run = slipway(
        work.path(),
        &["migrate", "up", "--dir", d, "--lock-wait", "1s"],
        &[("DATABASE_URL", &url)],
    )
    .expect(3);
    assert!(run.stderr.contains("migration lock"), "{}", run.all());

    let out = first.wait_with_output().expect("first runner");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(CANARY), "{all}");
    assert_eq!(version_row(&pg), "1|false");
}
