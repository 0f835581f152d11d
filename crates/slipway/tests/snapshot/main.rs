//! End-to-end tests of the environment form of `slipway migrate` and of
//! `slipway snapshot`: a repository made by `slipway init`, the environment's
//! network and database container created the way the deploy pipeline names
//! them (`<app>-<env>-net`, `<app>-<env>-db`), then the real binary migrates
//! from a one-off tools container on that network, snapshots with pg_dump
//! inside the database container, and restores. Real Docker, real
//! PostgreSQL 17; the database password (a canary with characters that need
//! percent-encoding) must appear in no output.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../common/run.rs"]
mod run;

use run::Run;

/// The database password; `@` and `:` force percent-encoding in the URL.
const CANARY: &str = "canary-snap-5d2e-do-not-print@pw:0123456789abcdef";
const ENV: &str = "development";

impl Run {
    /// Asserts the exit code and that the password, raw or percent-encoded,
    /// is nowhere in the output.
    fn expect(self, code: i32) -> Run {
        let all = self.all();
        for secret in [CANARY, "0123456789abcdef", "pw%3A0123"] {
            assert!(
                !all.contains(secret),
                "the password leaked ({secret}):\n{all}"
            );
        }
        assert_eq!(self.code, code, "unexpected exit code:\n{all}");
        self
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {} failed: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `slipway-agent` next to the slipway under test (the tools image needs
/// it), built if missing.
fn agent_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_slipway")).with_file_name("slipway-agent");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "slipway-agent"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p slipway-agent");
        assert!(status.success(), "cargo build -p slipway-agent failed");
    }
    path
}

/// One environment of a fresh app: repository, network, database container.
/// Everything is removed on drop, also when the test fails.
struct Fixture {
    app: String,
    env: String,
    repo: tempfile::TempDir,
    snapshots: PathBuf,
    agent: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(&new_app_name(), ENV, None)
    }

    /// `env` of `app` in a repository of its own, its snapshots in
    /// `snapshots` (shared with other fixtures) or the repository's own.
    fn with(app: &str, env: &str, snapshots: Option<&Path>) -> Fixture {
        slipway_testkit::ensure_images().expect("local images");
        let repo = tempfile::tempdir().expect("tempdir");
        let snapshots = snapshots.map_or_else(|| repo.path().join("snapshots"), Path::to_path_buf);
        let fixture = Fixture {
            app: app.to_string(),
            env: env.to_string(),
            repo,
            snapshots,
            agent: agent_binary(),
        };
        let run = fixture.slipway(&["init", "--name", &fixture.app], &[]);
        assert_eq!(run.code, 0, "{}", run.all());
        let env_dir = fixture.repo.path().join("deploy/config/environments");
        let template =
            std::fs::read_to_string(env_dir.join(format!(".env.{env}.example"))).expect("template");
        let env_file = env_dir.join(format!(".env.{env}"));
        std::fs::write(&env_file, template.replace("CHANGE_ME", CANARY)).expect("write .env");
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        fixture.start_database();
        fixture
    }

    fn net(&self) -> String {
        format!("{}-{}-net", self.app, self.env)
    }

    fn db(&self) -> String {
        format!("{}-{}-db", self.app, self.env)
    }

    /// Network and database as the pipeline provisions them (user and
    /// database named after the app, as `slipway init` configures).
    fn start_database(&self) {
        let labels = ["--label", slipway_testkit::TEST_LABEL, "--label"];
        let app_label = format!("slipway.app={}", self.app);
        let env_label = format!("slipway.env={}", self.env);
        docker(
            &[
                &["network", "create"][..],
                &labels,
                &[&app_label, "--label", &env_label, &self.net()],
            ]
            .concat(),
        )
        .expect("network");
        let mut child = Command::new("docker")
            .args([
                "run",
                "--detach",
                "--name",
                &self.db(),
                "--network",
                &self.net(),
            ])
            .args(["--network-alias", &self.db()])
            .args(labels)
            .arg(&app_label)
            .args(["--label", &env_label])
            .args(["--env", "POSTGRES_PASSWORD"])
            .args(["--env", &format!("POSTGRES_USER={}", self.app)])
            .args(["--env", &format!("POSTGRES_DB={}", self.app)])
            .args(["--env", "POSTGRES_INITDB_ARGS=--no-sync"])
            .args([slipway_testkit::PG_IMAGE, "-c", "fsync=off"])
            .env("POSTGRES_PASSWORD", CANARY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker run");
        assert!(
            child.wait().expect("docker run").success(),
            "database container did not start"
        );
        // Ready = accepting TCP connections (during initialisation the server
        // listens on its unix socket only). Polled with a deadline.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = docker(&[
                "exec",
                &self.db(),
                "pg_isready",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                &self.app,
            ]);
            if ready.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "database not ready in 120 s: {}",
                docker(&["logs", &self.db()]).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn slipway(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let snapshots = format!("database.snapshots.dir={}", self.snapshots.display());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.current_dir(self.repo.path())
            .args(args)
            .args(["--set", &snapshots])
            .env("NO_COLOR", "1")
            .env("SLIPWAY_AGENT_BIN", &self.agent)
            .env_remove("DATABASE_URL")
            .env_remove("SLIPWAY_CONFIG")
            .env_remove("DOCKER_HOST")
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Run::from_output(cmd.output().expect("run slipway"))
    }

    /// SQL in the database container over its (trusted) unix socket, on stdin.
    fn psql(&self, sql: &str) -> Result<String, String> {
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                &self.db(),
                "psql",
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-U", &self.app, "-d", &self.app])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(sql.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    fn migration(&self, name: &str, sql: &str) {
        let dir = self.repo.path().join("migrations");
        std::fs::create_dir_all(&dir).expect("mkdir migrations");
        std::fs::write(dir.join(name), sql).expect("write migration");
    }
}

/// No `-` or `_`: `slipway init` derives the database user and name from
/// the app name, and this keeps all three identical.
fn new_app_name() -> String {
    slipway_testkit::unique_name("swt")
        .replace(['-', '_'], "")
        .to_lowercase()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The database, and any task container a failed run left behind.
        let app = format!("label=slipway.app={}", self.app);
        let env = format!("label=slipway.env={}", self.env);
        if let Ok(ids) = docker(&["ps", "-aq", "--filter", &app, "--filter", &env]) {
            for id in ids.split_whitespace() {
                let _ = docker(&["rm", "--force", "--volumes", id]);
            }
        }
        let _ = docker(&["network", "rm", &self.net()]);
    }
}

#[test]
fn env_form_migrates_next_to_the_database_then_snapshot_create_list_restore() {
    let f = Fixture::new();
    f.migration(
        "0001_items.up.sql",
        "CREATE TABLE items (id int PRIMARY KEY, name text);\n",
    );
    f.migration("0001_items.down.sql", "DROP TABLE items;\n");
    f.migration(
        "0002_seed.up.sql",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');\n",
    );
    f.migration("0002_seed.down.sql", "DELETE FROM items;\n");

    let run = f.slipway(&["config", "validate", ENV], &[]).expect(0);
    assert!(run.stdout.contains("is valid"), "{}", run.all());

    // Nothing migrated yet: status through the tools container.
    let status = f
        .slipway(&["migrate", "status", ENV, "--json"], &[])
        .expect(0)
        .json();
    assert_eq!(status["current"], Value::Null);
    assert_eq!(status["pending"].as_array().map(Vec::len), Some(2));

    // up in a one-off container on the environment's network; the release is recorded.
    let run = f
        .slipway(
            &["migrate", "up", ENV, "--release", "r-test-1", "--json"],
            &[],
        )
        .expect(0);
    let up = run.json();
    assert_eq!(up["to"], 2, "{}", run.all());
    assert_eq!(up["applied"].as_array().map(Vec::len), Some(2));
    assert!(
        run.stderr.contains("applied 0001_items.up.sql in"),
        "progress relayed: {}",
        run.all()
    );
    assert_eq!(
        f.psql("SELECT version || '|' || dirty FROM schema_migrations;"),
        Ok("2|false".into())
    );
    assert_eq!(
        f.psql("SELECT release FROM slipway_migrations WHERE version = 2;"),
        Ok("r-test-1".into())
    );
    // The task container is gone.
    let leftovers = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name={}-{ENV}-task-", f.app),
    ])
    .expect("docker ps");
    assert!(leftovers.is_empty(), "task containers left: {leftovers}");

    // Human status names the version.
    let run = f.slipway(&["migrate", "status", ENV], &[]).expect(0);
    assert!(run.stdout.contains("version: 2"), "{}", run.all());

    // down without --yes, no terminal: refused before anything runs.
    let run = f.slipway(&["migrate", "down", "1", ENV], &[]).expect(3);
    assert!(run.stderr.contains("--yes"), "{}", run.all());
    assert_eq!(f.psql("SELECT count(*) FROM items;"), Ok("3".into()));

    // A snapshot, written to database.snapshots.dir with its sidecar.
    let snap = f
        .slipway(
            &["snapshot", "create", ENV, "--reason", "test", "--json"],
            &[],
        )
        .expect(0)
        .json();
    let path = PathBuf::from(snap["path"].as_str().expect("path"));
    assert!(path.starts_with(&f.snapshots), "{}", path.display());
    assert!(path.is_file());
    assert_eq!(snap["sidecar"]["schema_version"], 2);
    assert_eq!(snap["sidecar"]["reason"], "test");
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    // Owned: `<app>_<env>_<db>_...`, in `<dir>/<app>/<env>/`.
    assert!(
        file.starts_with(&format!("{0}_{ENV}_{0}_", f.app)),
        "{file}"
    );
    assert_eq!(
        path.parent(),
        Some(f.snapshots.join(&f.app).join(ENV).as_path())
    );
    assert_eq!(snap["sidecar"]["app"], f.app.as_str());
    assert_eq!(snap["sidecar"]["environment"], ENV);

    let list = f
        .slipway(&["snapshot", "list", ENV, "--json"], &[])
        .expect(0)
        .json();
    assert_eq!(list["snapshots"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["snapshots"][0]["file"], file.as_str());
    let run = f.slipway(&["snapshot", "list", ENV], &[]).expect(0);
    assert!(run.stdout.contains(&file), "{}", run.all());

    // Lose the data, and then some schema.
    f.psql("DROP TABLE items; UPDATE schema_migrations SET version = 1;")
        .expect("drop");

    // restore without --yes and without a terminal: refused, nothing restored.
    let run = f
        .slipway(&["snapshot", "restore", ENV, &file], &[])
        .expect(3);
    assert!(run.stderr.contains("--yes"), "{}", run.all());
    assert!(
        f.psql("SELECT count(*) FROM items;").is_err(),
        "restore must not have run"
    );

    // restore --yes (snapshot first: either order works): data and version back.
    let restored = f
        .slipway(&["snapshot", "restore", &file, ENV, "--yes", "--json"], &[])
        .expect(0)
        .json();
    assert_eq!(restored["schema_version"], 2);
    assert_eq!(restored["checksum_verified"], true);
    assert_eq!(f.psql("SELECT count(*) FROM items;"), Ok("3".into()));
    let run = f
        .slipway(&["snapshot", "restore", ENV, "latest", "--yes"], &[])
        .expect(0);
    assert!(
        run.stdout.contains("schema is now at version 2"),
        "{}",
        run.all()
    );

    // prune keeps the newest snapshot, whatever its age.
    let pruned = f
        .slipway(&["snapshot", "prune", ENV, "--json"], &[])
        .expect(0)
        .json();
    assert_eq!(pruned["deleted"].as_array().map(Vec::len), Some(0));
    assert_eq!(pruned["kept"].as_array().map(Vec::len), Some(1));

    // An unknown snapshot is bad input, named.
    let run = f
        .slipway(
            &[
                "snapshot",
                "restore",
                ENV,
                "nope_20250101T000000Z_x.dump",
                "--yes",
            ],
            &[],
        )
        .expect(2);
    assert!(run.stderr.contains("does not exist"), "{}", run.all());
}

#[test]
fn env_form_explains_a_missing_database_container() {
    let f = Fixture::new();
    docker(&["rm", "--force", "--volumes", &f.db()]).expect("remove db");
    let run = f.slipway(&["migrate", "up", ENV], &[]).expect(4);
    assert!(run.stderr.contains("is not running"), "{}", run.all());
    assert!(run.stderr.contains("slipway deploy"), "{}", run.all());
    let run = f.slipway(&["snapshot", "create", ENV], &[]).expect(4);
    assert!(run.stderr.contains("is not running"), "{}", run.all());
}

#[test]
fn external_mode_migrates_and_snapshots_through_one_off_containers_on_the_network() {
    // The database container stands in for an external server: the CLI only
    // knows DATABASE_URL, so migrate runs in the tools container and pg_dump
    // in a one-off container of database.image, both on the network.
    let f = Fixture::new();
    let env_file = f
        .repo
        .path()
        .join(format!("deploy/config/environments/.env.{ENV}"));
    let encoded = CANARY.replace('@', "%40").replace(':', "%3A");
    let url = format!(
        "postgres://{app}:{encoded}@{db}:5432/{app}",
        app = f.app,
        db = f.db()
    );
    let mut text = std::fs::read_to_string(&env_file).expect("read .env");
    text.push_str(&format!("DATABASE_URL={url}\n"));
    std::fs::write(&env_file, text).expect("write .env");
    f.migration(
        "0001_notes.up.sql",
        "CREATE TABLE notes (id int PRIMARY KEY);\nINSERT INTO notes VALUES (1), (2);\n",
    );
    let external = ["--set", "database.mode=external"];

    let up = f
        .slipway(
            &[&["migrate", "up", ENV, "--json"][..], &external].concat(),
            &[],
        )
        .expect(0)
        .json();
    assert_eq!(up["to"], 1);
    assert_eq!(f.psql("SELECT count(*) FROM notes;"), Ok("2".into()));

    let snap = f
        .slipway(
            &[&["snapshot", "create", ENV, "--json"][..], &external].concat(),
            &[],
        )
        .expect(0)
        .json();
    assert_eq!(snap["sidecar"]["schema_version"], 1);
    let file = snap["name"]["database"].as_str().map(str::to_string);
    assert_eq!(file.as_deref(), Some(f.app.as_str()));

    f.psql("DELETE FROM notes;").expect("delete");
    let restored = f
        .slipway(
            &[
                &["snapshot", "restore", ENV, "latest", "--yes", "--json"][..],
                &external,
            ]
            .concat(),
            &[],
        )
        .expect(0)
        .json();
    assert_eq!(restored["schema_version"], 1);
    assert_eq!(f.psql("SELECT count(*) FROM notes;"), Ok("2".into()));
    // No one-off container outlives its command.
    let leftovers =
        docker(&["ps", "-aq", "--filter", &format!("network={}", f.net())]).expect("docker ps");
    assert_eq!(
        leftovers.lines().count(),
        1,
        "only the database remains: {leftovers}"
    );
}

/// The defect this guards against: every environment of every app wrote
/// `<db>_<time>_<commit>.dump` into one shared directory, so with staging
/// and production both using database `<app>`, production's `latest` was
/// whichever environment snapshotted last. Here two environments of one app
/// (same database name) and a second app share one snapshot directory, with
/// an old unowned dump of another app's data, dated newest of all, in it.
#[test]
fn environments_and_apps_sharing_a_directory_see_and_restore_only_their_own() {
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("snapshots");
    // A directory others can read, as the old default was: tightened.
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let app = new_app_name();
    let other = new_app_name();
    let production = Fixture::with(&app, "production", Some(&root));
    let staging = Fixture::with(&app, "staging", Some(&root));
    let other_production = Fixture::with(&other, "production", Some(&root));
    for (f, marker) in [
        (&production, "production"),
        (&staging, "staging"),
        (&other_production, "other-app"),
    ] {
        f.psql(&format!(
            "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('{marker}');"
        ))
        .expect("seed");
    }
    let create = |f: &Fixture| -> PathBuf {
        let snap = f
            .slipway(&["snapshot", "create", &f.env, "--json"], &[])
            .expect(0)
            .json();
        PathBuf::from(snap["path"].as_str().expect("path"))
    };
    // Production first; staging snapshots last, so it is the newest on disk.
    let prod_snap = create(&production);
    let other_snap = create(&other_production);
    let staging_snap = create(&staging);
    for dir in [
        root.clone(),
        root.join(&app),
        root.join(&app).join("staging"),
    ] {
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    for file in [&prod_snap, &staging_snap, &other_snap] {
        let mode = std::fs::metadata(file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    // A dump from before owners, of the other app's data, dated after all.
    let unowned = root.join(format!("{app}_20991231T000000Z_old.dump"));
    std::fs::copy(&other_snap, &unowned).expect("copy");

    // Each environment lists only its own; the unowned one apart.
    let list = production
        .slipway(&["snapshot", "list", "production", "--json"], &[])
        .expect(0)
        .json();
    let own: Vec<&str> = list["snapshots"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(own, vec![prod_snap.to_str().expect("utf-8")]);
    assert_eq!(list["unowned"].as_array().map(Vec::len), Some(1));
    let run = production
        .slipway(&["snapshot", "list", "production"], &[])
        .expect(0);
    assert!(run.stdout.contains("without an owner"), "{}", run.all());
    let all = production
        .slipway(&["snapshot", "list", "production", "--all", "--json"], &[])
        .expect(0)
        .json();
    assert_eq!(all["snapshots"].as_array().map(Vec::len), Some(4));

    // `latest` for production is production's, not staging's (newer) nor
    // the unowned one (newest of all).
    production
        .psql("UPDATE marker SET v = 'changed';")
        .expect("change");
    let restored = production
        .slipway(
            &[
                "snapshot",
                "restore",
                "production",
                "latest",
                "--yes",
                "--json",
            ],
            &[],
        )
        .expect(0)
        .json();
    assert_eq!(restored["snapshot"], prod_snap.to_str().expect("utf-8"));
    assert_eq!(
        production.psql("SELECT v FROM marker;"),
        Ok("production".into())
    );

    // Staging's snapshot named into production: refused, with the way to
    // say it is meant; nothing changed.
    let staging_file = staging_snap
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    let run = production
        .slipway(
            &["snapshot", "restore", "production", staging_file, "--yes"],
            &[],
        )
        .expect(2);
    assert!(
        run.stderr.contains("--from-environment staging"),
        "{}",
        run.all()
    );
    let run = production
        .slipway(
            &[
                "snapshot",
                "restore",
                "production",
                other_snap.to_str().expect("utf-8"),
                "--yes",
            ],
            &[],
        )
        .expect(2);
    assert!(
        run.stderr.contains(&format!("--from-app {other}")),
        "{}",
        run.all()
    );
    assert_eq!(
        production.psql("SELECT v FROM marker;"),
        Ok("production".into())
    );

    // Said explicitly: staging's latest into production, both named.
    let run = production
        .slipway(
            &[
                "snapshot",
                "restore",
                "production",
                "latest",
                "--from-environment",
                "staging",
                "--yes",
            ],
            &[],
        )
        .expect(0);
    assert!(
        run.stderr
            .contains(&format!("{app}/staging's data goes into {app}/production")),
        "{}",
        run.all()
    );
    assert_eq!(
        production.psql("SELECT v FROM marker;"),
        Ok("staging".into())
    );

    // Staging's prune sees only staging's snapshot; everything else stays.
    let pruned = staging
        .slipway(&["snapshot", "prune", "staging", "--json"], &[])
        .expect(0)
        .json();
    assert_eq!(pruned["kept"].as_array().map(Vec::len), Some(1));
    assert_eq!(pruned["unowned_left"], 1);
    for file in [&prod_snap, &other_snap, &unowned] {
        assert!(file.is_file(), "{} must survive", file.display());
    }
}
