//! `hooks`: the operator's own commands at three points of a deploy.
//!
//! - `pre_deploy` runs on the operator's machine after the lock is taken and
//!   before the build; failing refuses the deploy before anything changes.
//! - `pre_switch` runs inside the new release's container once it is
//!   healthy, before traffic moves (smoke tests, cache warm-up); failing
//!   removes the new container and leaves traffic where it was.
//! - `post_deploy` runs on the operator's machine at the very end, whatever
//!   the outcome; its failure is a warning and never changes the result.
//!
//! A hook is a list (the program and its arguments, run as they are: what an
//! image without a shell needs) or a string (run by `sh -c`). On the
//! operator's machine a program with a `/` is relative to the repository
//! root; one without is looked up on `PATH`.
//!
//! Hooks are never interpolated: `${NAME}` would put a value of `.env.<env>`
//! on a command line that the progress output prints. A hook reads what it
//! needs at run time instead (`$NAME` in a string is the shell's).

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::origin::Origin;
use super::problem::Problem;
use super::raw::{Node, Value};
use super::schema::DurationText;

/// `hooks`: commands run at points of the deploy; see the README's "Hooks".
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// On this machine, after the lock and before the build, from the
    /// repository root; failing refuses the deploy (nothing changed).
    #[serde(default)]
    pub pre_deploy: Option<Hook>,
    /// Inside the new release's container once it is healthy, before the
    /// switch (`docker exec`); failing removes it, traffic stays.
    #[serde(default)]
    pub pre_switch: Option<Hook>,
    /// On this machine at the very end, after success or failure (with
    /// `SLIPWAY_DEPLOY_STATUS`); failing is only a warning.
    #[serde(default)]
    pub post_deploy: Option<Hook>,
    /// How long one hook may run; past it, it is killed and fails.
    #[serde(default = "default_hook_timeout")]
    pub timeout: DurationText,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            pre_deploy: None,
            pre_switch: None,
            post_deploy: None,
            timeout: default_hook_timeout(),
        }
    }
}

/// The default of `hooks.timeout`.
pub const DEFAULT_HOOK_TIMEOUT_SECS: u64 = 300;

fn default_hook_timeout() -> DurationText {
    DurationText(std::time::Duration::from_secs(DEFAULT_HOOK_TIMEOUT_SECS))
}

/// One hook: `["program", "arg", ...]` run as is, or a string run by `sh -c`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Hook {
    Argv(Vec<String>),
    Shell(String),
}

/// The points a hook runs at, in deploy order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookPoint {
    PreDeploy,
    PreSwitch,
    PostDeploy,
}

impl HookPoint {
    pub const ALL: [HookPoint; 3] = [
        HookPoint::PreDeploy,
        HookPoint::PreSwitch,
        HookPoint::PostDeploy,
    ];

    /// The configuration key (`pre_deploy`), also `SLIPWAY_HOOK`'s value.
    pub fn key(self) -> &'static str {
        match self {
            HookPoint::PreDeploy => "pre_deploy",
            HookPoint::PreSwitch => "pre_switch",
            HookPoint::PostDeploy => "post_deploy",
        }
    }

    /// The deploy step's name (`pre-deploy hook`).
    pub fn step(self) -> &'static str {
        match self {
            HookPoint::PreDeploy => "pre-deploy hook",
            HookPoint::PreSwitch => "pre-switch hook",
            HookPoint::PostDeploy => "post-deploy hook",
        }
    }

    /// Whether it runs on the operator's machine (else in the container).
    pub fn on_host(self) -> bool {
        self != HookPoint::PreSwitch
    }
}

impl Hooks {
    pub fn get(&self, point: HookPoint) -> Option<&Hook> {
        match point {
            HookPoint::PreDeploy => self.pre_deploy.as_ref(),
            HookPoint::PreSwitch => self.pre_switch.as_ref(),
            HookPoint::PostDeploy => self.post_deploy.as_ref(),
        }
    }

    /// The configured hooks, in deploy order.
    pub fn configured(&self) -> impl Iterator<Item = (HookPoint, &Hook)> {
        HookPoint::ALL
            .into_iter()
            .filter_map(|p| self.get(p).map(|h| (p, h)))
    }
}

impl Hook {
    /// What is executed: the list as is, or `sh -c <string>`.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Hook::Argv(argv) => argv.clone(),
            Hook::Shell(command) => vec!["sh".into(), "-c".into(), command.clone()],
        }
    }

    /// As the operator wrote it, for progress and `--dry-run`.
    pub fn display(&self) -> String {
        match self {
            Hook::Argv(argv) => argv
                .iter()
                .map(|a| {
                    if !a.is_empty() && a.chars().all(is_plain) {
                        a.clone()
                    } else {
                        format!("{a:?}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            Hook::Shell(command) => command.clone(),
        }
    }

    /// The file a hook on the operator's machine names, relative to the
    /// repository root: a list's program, or a string's first word, when
    /// it is a path (has a `/`) written without shell syntax.
    pub fn program_path(&self) -> Option<&str> {
        let program = match self {
            Hook::Argv(argv) => argv.first()?.as_str(),
            Hook::Shell(command) => {
                let first = command.split_whitespace().next()?;
                if !first.chars().all(is_plain) {
                    return None;
                }
                first
            }
        };
        program.contains('/').then_some(program)
    }
}

/// Characters that need no quoting in a shell word.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/-:=+,@%".contains(c)
}

/// Refuses `${...}` interpolation in a `hooks` section (run before
/// interpolation, on the file as written; `$$` stays a literal `$`).
pub fn interpolation_problems(section: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(hooks) = section.get("hooks") else {
        return problems;
    };
    let mut visit = |node: &Node| {
        if let Some(text) = node.as_str()
            && has_interpolation(text)
        {
            problems.push(
                Problem::error(node.origin.clone(), "a hook cannot use `${...}` interpolation")
                    .expected("the command as written, e.g. deploy/hooks/post-deploy")
                    .hint("`${NAME}` would put a value of .env.<env> on a command line Slipway prints; \
                           read it in the hook instead: in a string hook `$NAME` (no braces) is the shell's, \
                           from your own environment (write `$${NAME}` for a literal `${NAME}`)"),
            );
        }
    };
    if let Value::Map(entries) = &hooks.value {
        for (_, node) in entries {
            match &node.value {
                Value::Seq(items) => items.iter().for_each(&mut visit),
                _ => visit(node),
            }
        }
    }
    problems
}

/// Whether `text` holds a `${` that interpolation would expand.
fn has_interpolation(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            match chars.peek() {
                Some('$') => {
                    chars.next();
                }
                Some('{') => return true,
                _ => {}
            }
        }
    }
    false
}

/// Checks a schema cannot express: a list that names a program, a timeout
/// above zero, and an operator-side program that exists and may be run.
pub fn check(
    hooks: &Hooks,
    root: &Path,
    origin_of: &dyn Fn(&str) -> Origin,
    problems: &mut Vec<Problem>,
) {
    if hooks.timeout.0.is_zero() {
        problems.push(
            Problem::error(origin_of("/hooks/timeout"), "`hooks.timeout` is zero")
                .expected("a duration such as 5m: how long one hook may run"),
        );
    }
    for (point, hook) in hooks.configured() {
        let pointer = format!("/hooks/{}", point.key());
        let key = format!("hooks.{}", point.key());
        let empty = match hook {
            Hook::Argv(argv) => argv.first().is_none_or(|p| p.trim().is_empty()),
            Hook::Shell(command) => command.trim().is_empty(),
        };
        if empty {
            problems.push(
                Problem::error(origin_of(&pointer), format!("`{key}` runs nothing"))
                    .expected("a program and its arguments, e.g. [\"deploy/hooks/check\", \"--quick\"], or a shell command")
                    .hint(format!("remove `{}:` to run no hook there", point.key())),
            );
            continue;
        }
        if !point.on_host() {
            continue; // a path inside the image: only the container knows it
        }
        let Some(program) = hook.program_path() else {
            continue;
        };
        let origin = match hook {
            Hook::Argv(_) => origin_of(&format!("{pointer}/0")),
            Hook::Shell(_) => origin_of(&pointer),
        };
        let path = root.join(program);
        if !path.is_file() {
            problems.push(
                Problem::error(
                    origin,
                    format!("the `{key}` program does not exist: {}", path.display()),
                )
                .found(format!("{program:?}"))
                .hint(format!(
                    "paths are relative to the repository root {}; create the script (and commit it)",
                    root.display()
                )),
            );
        } else if !is_executable(&path) {
            problems.push(
                Problem::error(
                    origin,
                    format!("the `{key}` program is not executable: {}", path.display()),
                )
                .found(format!("{program:?}"))
                .hint(format!(
                    "run: chmod +x {program} (and commit the mode: git add --chmod=+x {program})"
                )),
            );
        }
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn yaml(text: &str) -> Node {
        super::super::raw::parse(text, &Arc::new(PathBuf::from("d.yml"))).unwrap()
    }

    #[test]
    fn a_hook_is_a_list_or_a_shell_string() {
        let hooks: Hooks = serde_json::from_value(serde_json::json!({
            "pre_deploy": ["deploy/hooks/pre-deploy", "--strict"],
            "pre_switch": ["events-server", "selftest"],
            "post_deploy": "deploy/hooks/post-deploy >> deploys.log",
        }))
        .unwrap();
        assert_eq!(hooks.timeout.0.as_secs(), DEFAULT_HOOK_TIMEOUT_SECS);
        assert_eq!(
            hooks.pre_switch.as_ref().unwrap().argv(),
            vec!["events-server", "selftest"]
        );
        let post = hooks.post_deploy.as_ref().unwrap();
        assert_eq!(
            post.argv(),
            vec!["sh", "-c", "deploy/hooks/post-deploy >> deploys.log"]
        );
        assert_eq!(post.program_path(), Some("deploy/hooks/post-deploy"));
        let pre = hooks.pre_deploy.as_ref().unwrap();
        assert_eq!(pre.program_path(), Some("deploy/hooks/pre-deploy"));
        assert_eq!(pre.display(), "deploy/hooks/pre-deploy --strict");
        assert_eq!(
            Hook::Argv(vec!["echo".into(), "two words".into()]).display(),
            "echo \"two words\""
        );
        // Not paths: looked up on PATH, or shell syntax first.
        assert_eq!(Hook::Shell("git diff --quiet".into()).program_path(), None);
        assert_eq!(Hook::Shell("$HOME/bin/x".into()).program_path(), None);
        let order: Vec<&str> = hooks.configured().map(|(p, _)| p.step()).collect();
        assert_eq!(
            order,
            ["pre-deploy hook", "pre-switch hook", "post-deploy hook"]
        );
        assert!(serde_json::from_value::<Hooks>(serde_json::json!({"pre_deploy": 3})).is_err());
        assert!(serde_json::from_value::<Hooks>(serde_json::json!({"post": "x"})).is_err());
    }

    #[test]
    fn operator_programs_must_exist_and_be_executable() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("deploy/hooks");
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("ok"), "#!/bin/sh\n").unwrap();
        fs_err::set_permissions(dir.join("ok"), std::fs::Permissions::from_mode(0o755)).unwrap();
        fs_err::write(dir.join("not-x"), "#!/bin/sh\n").unwrap();
        let tree = yaml(
            "hooks:\n  pre_deploy: [deploy/hooks/missing]\n  post_deploy: deploy/hooks/not-x --flag\n  pre_switch: [/bin/only-in-the-image]\n",
        );
        let origin_of = |p: &str| {
            tree.at_pointer(p)
                .map_or(Origin::Default, |n| n.origin.clone())
        };
        let check_of = |hooks: &Hooks| {
            let mut problems = Vec::new();
            check(hooks, root.path(), &origin_of, &mut problems);
            problems
        };
        let problems = check_of(&Hooks {
            pre_deploy: Some(Hook::Argv(vec!["deploy/hooks/missing".into()])),
            post_deploy: Some(Hook::Shell("deploy/hooks/not-x --flag".into())),
            pre_switch: Some(Hook::Argv(vec!["/bin/only-in-the-image".into()])),
            ..Hooks::default()
        });
        let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
        assert_eq!(problems.len(), 2, "{all}");
        assert!(
            all.contains("d.yml:2:16: error: the `hooks.pre_deploy` program does not exist"),
            "{all}"
        );
        assert!(
            all.contains("d.yml:3:16: error: the `hooks.post_deploy` program is not executable"),
            "{all}"
        );
        assert!(all.contains("chmod +x deploy/hooks/not-x"), "{all}");
        let fine = check_of(&Hooks {
            pre_deploy: Some(Hook::Argv(vec!["deploy/hooks/ok".into(), "x".into()])),
            post_deploy: Some(Hook::Shell("./deploy/hooks/ok | tee log".into())),
            pre_switch: Some(Hook::Shell("curl -fs localhost:8080/health".into())),
            ..Hooks::default()
        });
        assert_eq!(fine, vec![]);
        let empty = check_of(&Hooks {
            pre_deploy: Some(Hook::Argv(vec![])),
            pre_switch: Some(Hook::Shell("  ".into())),
            timeout: DurationText(std::time::Duration::ZERO),
            ..Hooks::default()
        });
        let all: String = empty.iter().map(|p| format!("{p}\n")).collect();
        assert_eq!(empty.len(), 3, "{all}");
        assert!(all.contains("`hooks.pre_deploy` runs nothing"), "{all}");
        assert!(all.contains("`hooks.timeout` is zero"), "{all}");
    }

    #[test]
    fn a_hook_of_the_wrong_shape_is_named_with_both_forms() {
        use crate::config::json_schema::settings_schema;
        let tree = yaml(
            "app:\n  name: events\n  build:\n    dockerfile: Dockerfile\ndatabase:\n  mode: container\n  image: pg\n  migrations: m\nhooks:\n  pre_deploy: 3\n  post_deploy: [a, 1]\n  pre_swich: x\n",
        );
        let problems = super::super::validate::schema_problems(&tree, &settings_schema(), false);
        let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
        assert_eq!(problems.len(), 3, "{all}");
        assert!(
            all.contains("d.yml:10:15: error: `hooks.pre_deploy` is not a hook"),
            "{all}"
        );
        assert!(all.contains("`hooks.post_deploy` is not a hook"), "{all}");
        assert!(all.contains("a list of strings"), "{all}");
        assert!(all.contains("did you mean `pre_switch`?"), "{all}");
    }

    #[test]
    fn interpolation_is_refused_in_hooks_only() {
        let tree = yaml(
            "app:\n  env:\n    A: ${X}\nhooks:\n  post_deploy: curl -d hi ${SLACK_URL}\n  pre_deploy: [deploy/x, \"${TOKEN}\"]\n  pre_switch: echo $$HOME $PATH $${LITERAL}\n",
        );
        let problems = interpolation_problems(&tree);
        let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
        assert_eq!(problems.len(), 2, "{all}");
        assert!(all.contains("d.yml:5:16"), "{all}");
        assert!(all.contains("d.yml:6:26"), "{all}");
        assert!(all.contains("`$NAME` (no braces)"), "{all}");
        assert!(interpolation_problems(&yaml("app: {}\n")).is_empty());
    }
}
