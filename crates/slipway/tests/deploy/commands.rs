//! The everyday commands through the real binary on the real engine:
//! `exec`, `db shell|url`, `destroy` (lock held, confirmation, data kept
//! for the next deploy, `--delete-data`), who deployed, and read-only
//! commands without the secrets file.

use std::fs;

use crate::harness::{App, SECRET};

#[test]
fn exec_db_shell_destroy_and_a_fresh_deploy_that_finds_the_kept_data() {
    let app = App::new("cmd");
    let env = app.env.clone();
    let route = format!("{}-{env}", app.name);
    // The repository's own git identity names the deployer.
    app.git(&["config", "user.name", "Ada Operator"]);
    app.git(&["config", "user.email", "ada@example.org"]);

    // Nothing deployed yet: each command says so and what to do.
    let exec = app.slipway(&["exec", &env, "--", "true"]);
    assert_eq!(exec.code, 1, "{}", exec.all());
    assert!(
        exec.stderr.contains("nothing deployed to"),
        "{}",
        exec.all()
    );
    assert!(exec.stderr.contains("slipway deploy"), "{}", exec.all());
    let unknown = app.slipway(&["exec", "nowhere", "--", "true"]);
    assert_eq!(unknown.code, 2, "{}", unknown.all());
    assert!(
        unknown.stderr.contains("unknown environment `nowhere`"),
        "{}",
        unknown.all()
    );
    let url = app.slipway(&["db", "url", &env]);
    assert_eq!(url.code, 0, "{}", url.all());
    assert!(
        url.stdout.contains(&format!("@{route}-db:5432/events")),
        "{}",
        url.all()
    );
    assert!(url.stdout.contains("redacted"), "{}", url.all());
    // Only when asked does the password appear (the harness's own runner
    // refuses any output holding the canary secret, so this one goes around it).
    let shown = app
        .command(&["--json", "db", "url", &env, "--show-password"], &[])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(
        shown["url"]
            .as_str()
            .unwrap()
            .contains(&format!(":{SECRET}-pg@")),
        "password not shown"
    );

    let first = app.deploy();
    assert_eq!(first.code, 0, "{}", first.all());
    let status = app.status_json();
    assert_eq!(
        status["current_deployment"]["deployed_by"], "Ada Operator <ada@example.org>",
        "{status}"
    );

    // exec: the serving release's image, the environment's network and
    // variables, the command's own exit code.
    let release = app.head();
    let run = app.slipway(&[
        "exec",
        &env,
        "--",
        "sh",
        "-c",
        &format!(
            "echo release=$SLIPWAY_RELEASE env=$SLIPWAY_ENVIRONMENT one_off=$SLIPWAY_ONE_OFF; \
             getent hosts {route}-db >/dev/null && echo db-reachable; \
             test -n \"$JWT_SECRET\" && echo secret-present; exit 7"
        ),
    ]);
    assert_eq!(run.code, 7, "{}", run.all());
    assert!(
        run.stdout.contains(&format!("release={release}")),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains(&format!("env={env} one_off=1")),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains("db-reachable"), "{}", run.all());
    assert!(run.stdout.contains("secret-present"), "{}", run.all());
    let missing = app.slipway(&["exec", &env, "--", "no-such-program"]);
    assert_eq!(missing.code, 127, "{}", missing.all());
    assert!(
        missing.stderr.contains("not found in the image"),
        "{}",
        missing.all()
    );
    // The one-off containers are gone.
    let left = app.docker(&[
        "ps",
        "-aq",
        "--filter",
        "label=slipway.role=exec",
        "--filter",
        &format!("label=slipway.app={}", app.name),
    ]);
    assert!(left.trim().is_empty(), "exec left containers: {left}");

    // db shell: psql next to the database, without a terminal.
    let sql = app.slipway(&[
        "db",
        "shell",
        &env,
        "--",
        "-tAc",
        "CREATE TABLE kept_marker (v int); INSERT INTO kept_marker VALUES (42); SELECT sum(v) FROM kept_marker",
    ]);
    assert_eq!(sql.code, 0, "{}", sql.all());
    assert!(
        sql.stdout.lines().any(|l| l.trim() == "42"),
        "{}",
        sql.all()
    );
    let bad = app.slipway(&[
        "db",
        "shell",
        &env,
        "--",
        "-c",
        "SELECT * FROM no_such_table",
    ]);
    assert_ne!(bad.code, 0, "{}", bad.all());
    assert!(bad.stderr.contains("no_such_table"), "{}", bad.all());

    // Read-only commands work without the secrets file.
    let env_file = app
        .root()
        .join(format!("deploy/config/environments/.env.{env}"));
    let kept_env = fs::read(&env_file).unwrap();
    fs::remove_file(&env_file).unwrap();
    for args in [
        &["status", &env][..],
        &["history", &env],
        &["lock", "status", &env],
        &["agent", "status", &env],
        &["snapshot", "list", &env],
    ] {
        let r = app.slipway(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
    }
    let refused = app.slipway(&["exec", &env, "--", "true"]);
    assert_eq!(refused.code, 2, "{}", refused.all());
    fs::write(&env_file, kept_env).unwrap();
    fs::set_permissions(
        &env_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // destroy: refused while another deploy holds the lock, and without a
    // confirmation; nothing is removed either way.
    let agent = format!("{route}-agent");
    let held = app.docker(&[
        "exec",
        &agent,
        "slipway-agent",
        "ctl",
        "lock",
        "acquire",
        &route,
        "--locked-by",
        "someone-else",
        "--hostname",
        "another-laptop",
        "--pid",
        "4242",
        "--deployment-id",
        "d-other",
    ]);
    let lock_id = serde_json::from_str::<serde_json::Value>(held.trim()).unwrap()["result"]["lock"]
        ["lock_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no lock: {held}"))
        .to_string();
    let locked = app.slipway(&["destroy", &env, "--yes"]);
    assert_eq!(locked.code, 3, "{}", locked.all());
    assert!(locked.stderr.contains("someone-else"), "{}", locked.all());
    app.docker(&[
        "exec",
        &agent,
        "slipway-agent",
        "ctl",
        "lock",
        "release",
        &route,
        "--lock-id",
        &lock_id,
    ]);
    let unconfirmed = app.slipway(&["destroy", &env]);
    assert_eq!(unconfirmed.code, 3, "{}", unconfirmed.all());
    assert!(
        unconfirmed.stderr.contains("pass --yes"),
        "{}",
        unconfirmed.all()
    );
    assert_eq!(
        app.serving().as_deref(),
        Some(release.as_str()),
        "still serving"
    );
    // ...and destroy did not leave its own lock behind.
    let lock = app.slipway(&["--json", "lock", "status", &env]);
    assert!(lock.stdout.contains("\"locked\": false"), "{}", lock.all());

    let destroyed = app.slipway(&["--json", "destroy", &env, "--yes"]);
    assert_eq!(destroyed.code, 0, "{}", destroyed.all());
    let report: serde_json::Value = serde_json::from_str(&destroyed.stdout).unwrap();
    let removed = report["removed"]["containers"].to_string();
    for c in ["blue", "agent", "edge", "db"] {
        assert!(removed.contains(&format!("{route}-{c}")), "{report}");
    }
    assert!(
        report["kept"]
            .to_string()
            .contains(&format!("{route}-pgdata")),
        "{report}"
    );
    let left = app.docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=slipway.app={}", app.name),
    ]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    assert!(app.serving().is_none(), "the port still answers");
    let again = app.slipway(&["destroy", &env, "--yes"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.contains("nothing of"), "{}", again.all());

    // A fresh deploy finds the kept data.
    let second = app.deploy();
    assert_eq!(second.code, 0, "{}", second.all());
    let sum = app.slipway(&[
        "db",
        "shell",
        &env,
        "--",
        "-tAc",
        "SELECT sum(v) FROM kept_marker",
    ]);
    assert_eq!(sum.code, 0, "{}", sum.all());
    assert!(
        sum.stdout.lines().any(|l| l.trim() == "42"),
        "{}",
        sum.all()
    );

    // --delete-data removes the database volume and the snapshots too.
    let snapshot = app.slipway(&["snapshot", "create", &env]);
    assert_eq!(snapshot.code, 0, "{}", snapshot.all());
    let wiped = app.slipway(&["destroy", &env, "--yes", "--delete-data"]);
    assert_eq!(wiped.code, 0, "{}", wiped.all());
    assert!(
        wiped.stdout.contains(&format!("{route}-pgdata")),
        "{}",
        wiped.all()
    );
    let volumes = app.docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={route}-pgdata"),
    ]);
    assert!(volumes.trim().is_empty(), "{volumes}");
    let list = app.slipway(&["--json", "snapshot", "list", &env]);
    assert!(!list.stdout.contains(".dump"), "{}", list.all());
}
