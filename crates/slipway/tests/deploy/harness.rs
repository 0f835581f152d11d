//! A throwaway application repository deployed by the real `slipway`
//! binary to the real Docker Engine: events-server's migrations and
//! Dockerfile, a git history of its own, a build command that stages the
//! already-built events-server binary (so a deploy takes seconds, not a
//! release compile), unique names and ports, and a guard that removes
//! everything it created.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

pub const SECRET: &str = "e2e-canary-secret-0123456789abcdef0123456789";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the binaries the deploy needs (no-op when up to date) and the
/// local images.
pub fn prepare() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "events-server", "-p", "slipway-agent"])
            .current_dir(workspace_root())
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "building events-server and slipway-agent failed"
        );
        let status = Command::new(workspace_root().join("scripts/images/build.sh"))
            .status()
            .expect("images");
        assert!(status.success(), "scripts/images/build.sh failed");
    });
}

#[path = "../common/run.rs"]
mod run;
pub use run::Run;

pub struct App {
    pub dir: tempfile::TempDir,
    // Outside the repository, so snapshots never make the tree dirty.
    _snapshot_dir: tempfile::TempDir,
    pub name: String,
    pub env: String,
    pub port: u16,
    pub snapshots: PathBuf,
    /// More `--set key=value` for every command.
    pub sets: std::cell::RefCell<Vec<String>>,
}

static NEXT: AtomicU16 = AtomicU16::new(0);

impl App {
    /// A new repository, committed once.
    pub fn new(tag: &str) -> App {
        prepare();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id() % 10_000;
        let name = format!("e2e{tag}-{pid}-{n}");
        let port = 21_000 + (pid % 400) as u16 * 10 + n;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let example = workspace_root().join("apps/events-server");
        copy_dir(&example.join("migrations"), &root.join("migrations"));
        fs::create_dir_all(root.join("deploy/config/environments")).unwrap();
        fs::create_dir_all(root.join("deploy/docker")).unwrap();
        for f in ["Dockerfile", "Dockerfile.postgres"] {
            fs::copy(
                example.join("deploy/docker").join(f),
                root.join("deploy/docker").join(f),
            )
            .unwrap();
        }
        // Beside the slipway binary under test: wherever CARGO_TARGET_DIR puts it.
        let bin = Path::new(env!("CARGO_BIN_EXE_slipway")).with_file_name("events-server");
        let config = fs::read_to_string(example.join("deploy/config/deployment.yml")).unwrap();
        // Same configuration, but a build command that stages the prebuilt
        // binary, and this test's own name.
        let start = config.find("    command: >-").unwrap();
        let end = config[start..].find("    context:").unwrap() + start;
        let command = format!(
            "    command: rm -rf ctx && mkdir -p ctx && cp {} ctx/events-server && cp -R migrations ctx/migrations\n",
            bin.display()
        );
        let config = format!("{}{}{}", &config[..start], command, &config[end..])
            .replace("context: .slipway/build-context", "context: ctx")
            .replace("name: events-server", &format!("name: {name}"));
        fs::write(root.join("deploy/config/deployment.yml"), config).unwrap();
        let env = "development".to_string();
        let env_file = root.join(format!("deploy/config/environments/.env.{env}"));
        fs::write(
            &env_file,
            format!("ENVIRONMENT={env}\nPOSTGRES_PASSWORD={SECRET}-pg\nJWT_SECRET={SECRET}\nADMIN_API_KEY={SECRET}-admin\n"),
        )
        .unwrap();
        fs::set_permissions(&env_file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(
            root.join(".gitignore"),
            "ctx/\ndeploy/config/environments/.env.*\n",
        )
        .unwrap();
        let snapshot_dir = tempfile::tempdir().unwrap();
        let snapshots = snapshot_dir.path().join("snapshots");
        let app = App {
            dir,
            _snapshot_dir: snapshot_dir,
            name,
            env,
            port,
            snapshots,
            sets: Default::default(),
        };
        app.git(&["init", "-q", "-b", "main"]);
        app.commit_all("initial");
        app
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn commit_file(&self, path: &str, content: &str, message: &str) {
        fs::write(self.root().join(path), content).unwrap();
        self.commit_all(message);
    }

    /// Commits every change of the work tree.
    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&[
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@example.org",
            "commit",
            "-qm",
            message,
        ]);
    }

    /// Flags every command gets: this test's port, snapshot dir, short windows.
    fn base_args(&self) -> Vec<String> {
        vec![
            "--set".into(),
            format!("deployment.public_port={}", self.port),
            "--set".into(),
            format!("database.snapshots.dir={}", self.snapshots.display()),
        ]
        .into_iter()
        .chain(
            self.sets
                .borrow()
                .iter()
                .flat_map(|s| ["--set".to_string(), s.clone()]),
        )
        .collect()
    }

    /// Adds `--set key=value` to every later command.
    pub fn set(&self, assignment: impl Into<String>) {
        self.sets.borrow_mut().push(assignment.into());
    }

    pub fn command(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.current_dir(self.root())
            .env("NO_COLOR", "1")
            .args(self.base_args())
            .args(args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn slipway(&self, args: &[&str]) -> Run {
        self.slipway_env(args, &[])
    }

    pub fn slipway_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let run = Run::from_output(self.command(args, extra_env).output().unwrap());
        assert!(
            !run.all().contains(SECRET),
            "a secret leaked into slipway's output:\n{}",
            run.all()
        );
        run
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn deploy(&self) -> Run {
        self.slipway(&["deploy", &self.env])
    }

    pub fn status_json(&self) -> serde_json::Value {
        let run = self.slipway(&["--json", "status", &self.env]);
        assert_eq!(run.code, 0, "{}", run.all());
        serde_json::from_str(&run.stdout).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The release the public port serves now (agent's release header).
    pub fn serving(&self) -> Option<String> {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "-m",
                "3",
                &self.url("/version"),
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-slipway-release:")
                .map(|v| v.trim().to_string())
        })
    }

    pub fn head(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(self.root())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim()[..12].to_string()
    }

    pub fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let label = format!("label=slipway.app={}", self.name);
        let ids = self.docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            self.docker(&args);
        }
        for kind in ["volume", "network"] {
            let list = self.docker(&[kind, "ls", "-q", "--filter", &label]);
            for item in list.split_whitespace() {
                self.docker(&[kind, "rm", item]);
            }
        }
        let images = self.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}", &self.name]);
        for image in images.split_whitespace() {
            self.docker(&["rmi", "-f", image]);
        }
    }
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
