//! End-to-end tests of `slipway init` and `slipway config`: the real binary
//! in a fresh directory per test, checking exit codes, positions in
//! messages, and that no secret ever reaches stdout or stderr.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use run::Run;

#[path = "../common/run.rs"]
mod run;

const CANARY: &str = "canary-5ec4e7-do-not-print-0123456789abcdef";
const ENVS: [&str; 3] = ["development", "staging", "production"];

fn slipway(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("SLIPWAY_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from_output(cmd.output().expect("run slipway"))
}

/// A repository scaffolded by `slipway init`, with every `.env` filled from
/// its template using the canary as the secret and mode 600.
fn initialised_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = slipway(dir.path(), &["init", "--name", "demo"], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    for env in ENVS {
        fill_env(&dir.path().join("deploy/config/environments"), env, CANARY);
    }
    dir
}

fn fill_env(env_dir: &Path, env: &str, secret: &str) -> PathBuf {
    let template = fs::read_to_string(env_dir.join(format!(".env.{env}.example"))).unwrap();
    let path = env_dir.join(format!(".env.{env}"));
    fs::write(&path, template.replace("CHANGE_ME", secret)).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn config_file(dir: &Path) -> PathBuf {
    dir.join("deploy/config/deployment.yml")
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = config_file(dir);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "template lacks {from:?}");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn example_configuration_validates_for_all_three_environments() {
    // A copy of the example app's deploy/ and migrations/, with each .env
    // created from its template, placeholders filled and mode 600.
    let dir = tempfile::tempdir().unwrap();
    let app = workspace_root().join("apps/events-server");
    copy_dir(&app.join("deploy"), &dir.path().join("deploy"));
    copy_dir(&app.join("migrations"), &dir.path().join("migrations"));
    for env in ENVS {
        fill_env(&dir.path().join("deploy/config/environments"), env, CANARY);
        let run = slipway(dir.path(), &["config", "validate", env], &[]);
        assert_eq!(run.code, 0, "{env}: {}", run.all());
        assert!(
            run.stdout
                .contains(&format!("configuration for `{env}` is valid"))
        );
        assert!(!run.all().contains(CANARY));
    }
}

#[test]
fn committed_schema_files_match_the_rust_types() {
    let generated = slipway(&workspace_root(), &["config", "schema"], &[]).stdout;
    let path = "apps/events-server/deploy/config/deployment.schema.json";
    let committed = fs::read_to_string(workspace_root().join(path)).unwrap();
    assert_eq!(
        committed, generated,
        "{path} is stale: run `slipway config schema > {path}`"
    );
    // `init` writes the same schema.
    let dir = initialised_repo();
    let written =
        fs::read_to_string(dir.path().join("deploy/config/deployment.schema.json")).unwrap();
    assert_eq!(written, generated);
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let dir = initialised_repo();
    let cfg = config_file(dir.path());
    fs::write(&cfg, "# my edits\n").unwrap();
    fs::remove_file(dir.path().join("deploy/docker/Dockerfile")).unwrap();
    let run = slipway(dir.path(), &["init", "--name", "demo"], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("refusing to overwrite"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read_to_string(&cfg).unwrap(), "# my edits\n");
    assert!(
        !dir.path().join("deploy/docker/Dockerfile").exists(),
        "nothing may be written"
    );
    let gitignore = fs::read_to_string(dir.path().join(".gitignore")).unwrap();
    assert!(gitignore.contains("deploy/config/environments/.env.*"));
    assert!(gitignore.contains("!deploy/config/environments/.env.*.example"));
}

#[test]
fn config_is_found_upwards_or_given_with_flag() {
    let dir = initialised_repo();
    let deep = dir.path().join("src/handlers");
    fs::create_dir_all(&deep).unwrap();
    assert_eq!(
        slipway(&deep, &["config", "validate", "staging"], &[]).code,
        0
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let run = slipway(elsewhere.path(), &["config", "validate", "staging"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("slipway init"), "{}", run.stderr);
    let flag = config_file(dir.path());
    let run = slipway(
        elsewhere.path(),
        &[
            "--config",
            flag.to_str().unwrap(),
            "config",
            "validate",
            "staging",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn malformed_yaml_names_the_position() {
    let dir = initialised_repo();
    edit_config(dir.path(), "  port: 8080 ", "  port: [8080 ");
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    let cfg = config_file(dir.path()).display().to_string();
    assert!(run.stderr.contains(&format!("{cfg}:")), "{}", run.stderr);
    assert!(run.stderr.contains("invalid YAML"), "{}", run.stderr);
}

#[test]
fn wrong_types_and_unknown_keys_are_all_reported_at_once() {
    let dir = initialised_repo();
    edit_config(
        dir.path(),
        "  healthy_threshold: 2",
        "  healthy_threshold: two",
    );
    edit_config(dir.path(), "  drain_timeout: 30s", "  drain_timout: 30s");
    edit_config(dir.path(), "  mode: container", "  mode: contaner");
    edit_config(dir.path(), "  keep_releases: 3", "  keep_releases: 0");
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    let cfg = config_file(dir.path()).display().to_string();
    let e = &run.stderr;
    assert!(
        e.contains(&format!(
            "{cfg}:29:22: error: `health.healthy_threshold` has the wrong type"
        )),
        "{e}"
    );
    assert!(e.contains("expected: integer"), "{e}");
    assert!(
        e.contains(&format!(
            "{cfg}:50:3: error: unknown key `drain_timout` in `deployment`"
        )),
        "{e}"
    );
    assert!(e.contains("did you mean `drain_timeout`?"), "{e}");
    assert!(
        e.contains(&format!(
            "{cfg}:33:9: error: `database.mode` is not an allowed value"
        )),
        "{e}"
    );
    assert!(e.contains("did you mean `container`?"), "{e}");
    assert!(
        e.contains(&format!(
            "{cfg}:52:18: error: `deployment.keep_releases` is too small"
        )),
        "{e}"
    );
    assert!(e.contains("has 4 errors"), "{e}");

    let json = slipway(
        dir.path(),
        &["--json", "config", "validate", "production"],
        &[],
    );
    assert_eq!(json.code, 2);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 4);
    assert!(
        v["errors"][0]["location"]
            .as_str()
            .unwrap()
            .starts_with(&cfg)
    );
}

#[test]
fn unknown_environment_and_provider_suggest_the_right_name() {
    let dir = initialised_repo();
    let run = slipway(dir.path(), &["config", "validate", "prodcution"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown environment `prodcution`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `production`?"),
        "{}",
        run.stderr
    );
    edit_config(dir.path(), "provider: docker", "provider: dokcer");
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown provider `dokcer`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("did you mean `docker`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_and_unreadable_files() {
    let dir = initialised_repo();
    // Missing .env: says how to create it from the template.
    fs::remove_file(dir.path().join("deploy/config/environments/.env.staging")).unwrap();
    let run = slipway(dir.path(), &["config", "validate", "staging"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains(".env.staging:1:1: error: the environment file is missing"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cp "), "{}", run.stderr);
    // Unreadable configuration (a directory where the file should be; tests
    // may run as root, for whom mode 000 is still readable).
    let bogus = dir.path().join("bogus.yml");
    fs::create_dir(&bogus).unwrap();
    let run = slipway(
        dir.path(),
        &[
            "--config",
            bogus.to_str().unwrap(),
            "config",
            "validate",
            "staging",
        ],
        &[],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot read the configuration"),
        "{}",
        run.stderr
    );
    // Missing migrations directory.
    fs::remove_dir_all(dir.path().join("migrations")).unwrap();
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("the migrations directory does not exist"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("deployment.yml:39:15"),
        "{}",
        run.stderr
    );
}

#[test]
fn unset_and_self_referencing_variables() {
    let dir = initialised_repo();
    edit_config(
        dir.path(),
        "    LOG_LEVEL: info",
        "    LOG_LEVEL: ${LOG_LEVEL_UNSET}",
    );
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(
            "deployment.yml:19:16: error: variable `LOG_LEVEL_UNSET` is referenced but not set"
        ),
        "{}",
        run.stderr
    );
    // The process environment satisfies it; a default does too.
    assert_eq!(
        slipway(
            dir.path(),
            &["config", "validate", "production"],
            &[("LOG_LEVEL_UNSET", "debug")]
        )
        .code,
        0
    );

    let env = dir
        .path()
        .join("deploy/config/environments/.env.production");
    let mut text = fs::read_to_string(&env).unwrap();
    text.push_str("LOOP_A=${LOOP_B}\nLOOP_B=${LOOP_A}\n");
    fs::write(&env, text).unwrap();
    edit_config(dir.path(), "${LOG_LEVEL_UNSET}", "${LOOP_A}");
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("references itself: LOOP_A -> LOOP_B -> LOOP_A"),
        "{}",
        run.stderr
    );
}

#[test]
fn readable_env_file_is_refused_for_production_and_warned_for_development() {
    let dir = initialised_repo();
    let env_dir = dir.path().join("deploy/config/environments");
    for env in ENVS {
        fs::set_permissions(
            env_dir.join(format!(".env.{env}")),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    for env in ["production", "staging"] {
        let run = slipway(dir.path(), &["config", "validate", env], &[]);
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(
            run.stderr
                .contains("readable by group or others (mode 644)"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(&format!(
            "chmod 600 {}",
            env_dir.join(format!(".env.{env}")).display()
        )));
    }
    let run = slipway(dir.path(), &["config", "validate", "development"], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("warning: the environment file is readable"),
        "{}",
        run.stderr
    );
}

#[test]
fn placeholder_secrets_and_secrets_in_the_file_are_refused() {
    let dir = initialised_repo();
    let env_dir = dir.path().join("deploy/config/environments");
    fill_env(&env_dir, "production", "CHANGE_ME");
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(
            ".env.production:13:12: error: required secret `JWT_SECRET` is still a placeholder"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`ADMIN_API_KEY` is still a placeholder"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`POSTGRES_PASSWORD` is still a placeholder"),
        "{}",
        run.stderr
    );

    let dir = initialised_repo();
    edit_config(
        dir.path(),
        "    LOG_LEVEL: info",
        &format!("    LOG_LEVEL: info\n    SESSION_SECRET: {CANARY}"),
    );
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("deployment.yml:20:21: error: `app.env.SESSION_SECRET` holds a secret written into deployment.yml"), "{}", run.stderr);
    assert!(!run.all().contains(CANARY), "{}", run.all());
}

#[test]
fn precedence_cli_over_process_over_env_file_over_sections() {
    let dir = initialised_repo();
    let env = dir
        .path()
        .join("deploy/config/environments/.env.production");
    let mut text = fs::read_to_string(&env).unwrap();
    text.push_str("SLIPWAY__DEPLOYMENT__KEEP_RELEASES=7\nSLIPWAY__DEPLOYMENT__DRAIN_TIMEOUT=11s\n");
    fs::write(&env, text).unwrap();
    let run = slipway(
        dir.path(),
        &[
            "--json",
            "--set",
            "deployment.drain_timeout=13s",
            "config",
            "show",
            "production",
        ],
        &[
            ("SLIPWAY__DEPLOYMENT__DRAIN_TIMEOUT", "12s"),
            ("SLIPWAY__HEALTH__HEALTHY_THRESHOLD", "4"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let s = &v["settings"];
    assert_eq!(s["deployment.drain_timeout"]["value"], "\"13s\"");
    assert_eq!(
        s["deployment.drain_timeout"]["origin"],
        "command-line flag --set deployment.drain_timeout"
    );
    assert_eq!(s["health.healthy_threshold"]["value"], "4");
    assert_eq!(
        s["health.healthy_threshold"]["origin"],
        "environment variable SLIPWAY__HEALTH__HEALTHY_THRESHOLD"
    );
    assert_eq!(s["deployment.keep_releases"]["value"], "7");
    assert!(
        s["deployment.keep_releases"]["origin"]
            .as_str()
            .unwrap()
            .ends_with(".env.production:24:36")
    );
    // environments.production overrides the shared public_port.
    assert_eq!(s["deployment.public_port"]["value"], "80");
    assert!(
        s["deployment.public_port"]["origin"]
            .as_str()
            .unwrap()
            .ends_with("deployment.yml:106:20")
    );
    assert_eq!(s["deployment.watch_window"]["value"], "\"60s\"");
    assert_eq!(v["app_env"]["JWT_SECRET"]["value"], "[redacted]");
}

#[test]
fn canary_secret_never_appears_in_any_output() {
    let dir = initialised_repo();
    let p = dir.path();
    let mut runs = Vec::new();
    for env in ENVS {
        for extra in [
            &[][..],
            &["--json"][..],
            &["-vv"][..],
            &["--log-format", "json", "-vv"][..],
        ] {
            for cmd in [["config", "validate"], ["config", "show"]] {
                let mut args: Vec<&str> = extra.to_vec();
                args.extend(cmd);
                args.push(env);
                runs.push(slipway(p, &args, &[("RUST_LOG", "trace")]));
            }
        }
    }
    runs.push(slipway(p, &["config", "schema"], &[]));
    runs.push(slipway(p, &["init"], &[]));
    // Failure paths with the canary in the files: bad permissions, a cycle
    // through a secret, a type error on a value that came from .env.
    let env = p.join("deploy/config/environments/.env.production");
    fs::set_permissions(&env, fs::Permissions::from_mode(0o640)).unwrap();
    runs.push(slipway(p, &["config", "validate", "production"], &[]));
    fs::set_permissions(&env, fs::Permissions::from_mode(0o600)).unwrap();
    let mut text = fs::read_to_string(&env).unwrap();
    text.push_str(&format!(
        "SLIPWAY__DEPLOYMENT__PUBLIC_PORT={CANARY}\nJWT_SECRET_2=${{JWT_SECRET_2}}{CANARY}\n"
    ));
    fs::write(&env, text).unwrap();
    runs.push(slipway(p, &["config", "validate", "production"], &[]));
    runs.push(slipway(
        p,
        &["--json", "config", "validate", "production"],
        &[],
    ));
    runs.push(slipway(
        p,
        &["config", "show", "production"],
        &[("DATABASE_URL", &format!("postgres://u:{CANARY}@db/x"))],
    ));
    assert!(runs.len() > 20);
    assert!(
        runs.iter().any(|r| r.code == 2),
        "the failure paths must have run"
    );
    assert!(
        runs.iter().any(|r| r.stdout.contains("JWT_SECRET")),
        "show must have listed the secret's name"
    );
    for run in &runs {
        assert!(!run.all().contains(CANARY), "canary leaked:\n{}", run.all());
    }
}

#[test]
fn a_wrong_shared_value_is_reported_even_where_an_environment_overrides_it() {
    let dir = initialised_repo();
    // Production sets its own public_port; the shared one is still wrong
    // for every environment that does not, and reported for each.
    edit_config(dir.path(), "  public_port: 8080", "  public_port: eighty");
    let cfg = config_file(dir.path()).display().to_string();
    for env in ENVS {
        let run = slipway(dir.path(), &["config", "validate", env], &[]);
        assert_eq!(run.code, 2, "{env}: {}", run.all());
        assert!(
            run.stderr.contains(&format!(
                "{cfg}:49:16: error: `deployment.public_port` has the wrong type"
            )),
            "{env}: {}",
            run.stderr
        );
        // Once, not twice, where the shared value is also the merged one.
        assert_eq!(
            run.stderr
                .matches("`deployment.public_port` has the wrong type")
                .count(),
            1,
            "{env}: {}",
            run.stderr
        );
    }
}

#[test]
fn read_only_commands_need_no_secrets_file_and_name_the_engine_they_tried() {
    let dir = initialised_repo();
    fs::remove_file(
        dir.path()
            .join("deploy/config/environments/.env.production"),
    )
    .unwrap();
    let socket = dir.path().join("no-engine-here.sock");
    let docker_host = format!("unix://{}", socket.display());
    let env = [("DOCKER_HOST", docker_host.as_str())];
    for args in [
        &["status", "production"][..],
        &["history", "production"],
        &["logs", "production"],
        &["lock", "status", "production"],
        &["agent", "status", "production"],
    ] {
        let run = slipway(dir.path(), args, &env);
        // Past the configuration (exit 2) to the engine (exit 4), which is
        // the one DOCKER_HOST names, in the message and in the hint.
        assert_eq!(run.code, 4, "{args:?}: {}", run.all());
        assert!(
            run.stderr
                .contains("going on without the environment's secrets"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stderr
                .contains("error: the environment file is missing"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("cannot reach the Docker Engine at {docker_host}")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("ls -l {}", socket.display())),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("/var/run/docker.sock"),
            "{}",
            run.stderr
        );
    }
    // Snapshots are listed from this machine's disk: no engine at all.
    let run = slipway(dir.path(), &["snapshot", "list", "production"], &env);
    assert_eq!(run.code, 0, "{}", run.all());
    // What changes something still needs the secrets, and says how to get them.
    for args in [
        &["deploy", "production", "--dry-run"][..],
        &["migrate", "status", "production"],
    ] {
        let run = slipway(dir.path(), args, &env);
        assert_eq!(run.code, 2, "{args:?}: {}", run.all());
        assert!(
            run.stderr
                .contains(".env.production:1:1: error: the environment file is missing"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn completions_and_manual_pages_come_from_the_command_line_definition() {
    let dir = tempfile::tempdir().unwrap();
    let bash = slipway(dir.path(), &["completions", "bash"], &[]);
    assert_eq!(bash.code, 0, "{}", bash.all());
    assert!(
        bash.stdout.contains("complete -F _slipway"),
        "{}",
        bash.stdout
    );
    assert!(bash.stdout.contains("--skip-migrations"), "{}", bash.stdout);
    let zsh = slipway(dir.path(), &["completions", "zsh"], &[]);
    assert!(zsh.stdout.starts_with("#compdef slipway"), "{}", zsh.stdout);
    let fish = slipway(dir.path(), &["completions", "fish"], &[]);
    assert!(
        fish.stdout.contains("complete -c slipway"),
        "{}",
        fish.stdout
    );
    let bad = slipway(dir.path(), &["completions", "tcsh"], &[]);
    assert_eq!(bad.code, 2, "{}", bad.all());

    let page = slipway(dir.path(), &["man"], &[]);
    assert_eq!(page.code, 0, "{}", page.all());
    assert!(page.stdout.contains(".TH slipway 1"), "{}", page.stdout);
    let man_dir = dir.path().join("man1");
    let run = slipway(
        dir.path(),
        &["man", "--dir", man_dir.to_str().unwrap()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let restore = fs::read_to_string(man_dir.join("slipway-snapshot-restore.1")).unwrap();
    assert!(
        restore.contains(".TH slipway-snapshot-restore 1"),
        "{restore}"
    );
    assert!(restore.contains("from\\-environment"), "{restore}");
    // One page per command: every subcommand `--help` lists has its page.
    let help = slipway(dir.path(), &["--help"], &[]);
    let commands: Vec<&str> = help
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A command's line, not a wrapped description (indented deeper).
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 10, "{commands:?}");
    for c in commands {
        assert!(
            man_dir.join(format!("slipway-{c}.1")).is_file(),
            "no page for {c}"
        );
    }
}

#[test]
fn hooks_are_checked_at_validate_with_positions_and_never_interpolated() {
    let dir = initialised_repo();
    let hooks = dir.path().join("deploy/hooks");
    fs::create_dir_all(&hooks).unwrap();
    fs::write(hooks.join("post-deploy"), "#!/bin/sh\n").unwrap(); // not executable
    edit_config(
        dir.path(),
        "hooks: {}\n",
        "hooks:\n  pre_deploy: [deploy/hooks/pre-deploy]\n  post_deploy: deploy/hooks/post-deploy --notify\n  pre_switch: [demo, selftest, \"${JWT_SECRET}\"]\n  timeout: 5 minutes\n",
    );
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    let cfg = config_file(dir.path()).display().to_string();
    let e = &run.stderr;
    let line = fs::read_to_string(config_file(dir.path()))
        .unwrap()
        .lines()
        .position(|l| l == "hooks:")
        .unwrap()
        + 1;
    assert!(
        e.contains(&format!(
            "{cfg}:{}:32: error: a hook cannot use `${{...}}` interpolation",
            line + 3
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{cfg}:{}:12: error: `hooks.timeout` is not in the expected form",
            line + 4
        )),
        "{e}"
    );
    // The interpolation is refused before the value is read: nothing of
    // .env.production reaches the output.
    assert!(!run.all().contains(CANARY), "{}", run.all());

    // With the form fixed, the operator-side programs are checked.
    edit_config(dir.path(), ", \"${JWT_SECRET}\"]", "]");
    edit_config(dir.path(), "timeout: 5 minutes", "timeout: 5m");
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 2, "{}", run.all());
    let e = &run.stderr;
    assert!(
        e.contains(&format!(
            "{cfg}:{}:16: error: the `hooks.pre_deploy` program does not exist",
            line + 1
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{cfg}:{}:16: error: the `hooks.post_deploy` program is not executable",
            line + 2
        )),
        "{e}"
    );
    assert!(e.contains("chmod +x deploy/hooks/post-deploy"), "{e}");
    assert!(e.contains("has 2 errors"), "{e}");

    fs::write(hooks.join("pre-deploy"), "#!/bin/sh\n").unwrap();
    for script in ["pre-deploy", "post-deploy"] {
        fs::set_permissions(hooks.join(script), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = slipway(dir.path(), &["config", "validate", "production"], &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let show = slipway(dir.path(), &["--json", "config", "show", "production"], &[]);
    assert_eq!(show.code, 0, "{}", show.all());
    assert!(
        show.stdout.contains("deploy/hooks/post-deploy --notify"),
        "{}",
        show.stdout
    );
}

#[test]
fn maintenance_settings_are_checked_and_a_shorter_migration_timeout_is_warned() {
    let dir = initialised_repo();
    let run = slipway(
        dir.path(),
        &[
            "--set",
            "deployment.maintenance.retry_after=0s",
            "--set",
            "deployment.maintenance.migration_timeout=0s",
            "config",
            "validate",
            "production",
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("`deployment.maintenance.retry_after` is 0s, outside 1s..24h"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`deployment.maintenance.migration_timeout` must be longer than zero"),
        "{}",
        run.stderr
    );
    let run = slipway(
        dir.path(),
        &[
            "--set",
            "database.migration.statement_timeout=1h",
            "--set",
            "deployment.maintenance.migration_timeout=10m",
            "config",
            "validate",
            "production",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains(
            "a `deploy --maintenance` migration would get less time than an ordinary one"
        ),
        "{}",
        run.stderr
    );
}

/// The workflow linters `scripts/setup.sh` installs (never skipped: a
/// machine without them fails here, naming the script that installs them).
fn workflow_linter(name: &str) -> PathBuf {
    let tools = std::env::var_os("SLIPWAY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/slipway/tools")
        });
    let path = tools.join("venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (it installs actionlint and check-jsonschema there)",
        path.display()
    );
    path
}

fn lint_workflows(dir: &Path) -> Vec<PathBuf> {
    let workflows: Vec<PathBuf> = ["test.yml", "deploy-staging.yml", "deploy-production.yml"]
        .iter()
        .map(|f| dir.join(".github/workflows").join(f))
        .collect();
    lint(dir, &workflows);
    workflows
}

fn lint(dir: &Path, workflows: &[PathBuf]) {
    for w in workflows {
        assert!(w.is_file(), "{} was not written", w.display());
    }
    let actionlint = Command::new(workflow_linter("actionlint"))
        .current_dir(dir)
        .args(["-no-color"])
        .args(workflows)
        .output()
        .expect("run actionlint");
    assert!(
        actionlint.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&actionlint.stdout),
        String::from_utf8_lossy(&actionlint.stderr)
    );
    let schema = Command::new(workflow_linter("check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(workflows)
        .output()
        .expect("run check-jsonschema");
    assert!(
        schema.status.success(),
        "check-jsonschema:\n{}{}",
        String::from_utf8_lossy(&schema.stdout),
        String::from_utf8_lossy(&schema.stderr)
    );
}

#[test]
fn slipway_s_own_release_workflow_passes_actionlint_and_the_schema() {
    let root = workspace_root();
    let release = root.join(".github/workflows/release.yml");
    lint(&root, std::slice::from_ref(&release));
    let text = fs::read_to_string(&release).unwrap();
    // The same build script the test suite runs (scripts/release/check.sh).
    assert!(text.contains("scripts/release/build.sh"), "{text}");
    for target in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "aarch64-apple-darwin",
    ] {
        assert!(text.contains(target), "{target} missing: {text}");
    }
    // The archive names the generated workflows download.
    let install =
        fs::read_to_string(root.join("crates/slipway/templates/github/deploy-steps.yml")).unwrap();
    assert!(install.contains("slipway-${SLIPWAY_VERSION}-${target}.tar.gz"));
    let build = fs::read_to_string(root.join("scripts/release/build.sh")).unwrap();
    assert!(build.contains("asset=\"slipway-${version}-${target}.tar.gz\""));
}

#[test]
fn init_ci_github_writes_workflows_that_pass_actionlint_and_the_schema() {
    // Go, Rust, Node and an unknown stack each get their own test steps.
    for (marker, test_step) in [
        (Some("go.mod"), "go test ./..."),
        (Some("Cargo.toml"), "cargo test --locked"),
        (Some("package.json"), "npm test"),
        (None, "make test"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        if let Some(m) = marker {
            fs::write(dir.path().join(m), "").unwrap();
        }
        let run = slipway(
            dir.path(),
            &["init", "--name", "demo", "--ci", "github"],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.all());
        let workflows = lint_workflows(dir.path());
        let text: Vec<String> = workflows
            .iter()
            .map(|w| fs::read_to_string(w).unwrap())
            .collect();
        let (test, staging, production) = (&text[0], &text[1], &text[2]);
        assert!(
            test.contains("pull_request:") && test.contains(test_step),
            "{test}"
        );
        assert!(staging.contains("branches: [main]") && staging.contains(test_step));
        assert!(
            staging.contains("needs: test") && staging.contains("slipway --json deploy staging")
        );
        assert!(
            staging.contains("group: slipway-deploy-staging"),
            "{staging}"
        );
        assert!(
            production.contains("workflow_dispatch:")
                && production.contains("environment: production")
        );
        assert!(
            production.contains("group: slipway-deploy-production"),
            "{production}"
        );
        for w in [staging, production] {
            assert!(w.contains("umask 077") && w.contains("chmod 600"), "{w}");
            assert!(w.contains("sha256sum --check"), "{w}");
            assert!(w.contains("cargo install --locked"), "{w}");
            assert!(w.contains("$GITHUB_STEP_SUMMARY") && w.contains("actions/upload-artifact"));
            assert!(!w.contains("echo \"$SLIPWAY_ENV_FILE\"") && !w.contains("set -x"));
            assert!(
                !w.replace("${{", "").contains("{{"),
                "a placeholder left: {w}"
            );
        }
        // Production's gate is on; the configuration it wrote is valid.
        let config = fs::read_to_string(config_file(dir.path())).unwrap();
        assert!(config.contains("require_ci:"), "{config}");
        fill_env(
            &dir.path().join("deploy/config/environments"),
            "production",
            CANARY,
        );
        let validate = slipway(dir.path(), &["config", "validate", "production"], &[]);
        assert_eq!(validate.code, 0, "{}", validate.all());
    }

    // An initialised repository: only the workflows are added, and a
    // second run refuses to overwrite them.
    let dir = initialised_repo();
    let before = fs::read_to_string(config_file(dir.path())).unwrap();
    let run = slipway(
        dir.path(),
        &["init", "--name", "demo", "--ci", "github"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("writing") || run.stdout.contains("wrote the GitHub Actions workflows"),
        "{}",
        run.all()
    );
    assert_eq!(fs::read_to_string(config_file(dir.path())).unwrap(), before);
    lint_workflows(dir.path());
    let again = slipway(
        dir.path(),
        &["init", "--name", "demo", "--ci", "github"],
        &[],
    );
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again
            .stderr
            .contains("refusing to overwrite existing files: .github/workflows/test.yml"),
        "{}",
        again.all()
    );
}
