//! The `docker` CLI, for what needs a terminal: `slipway exec` and
//! `slipway db shell` attach the operator's keyboard to a container, which
//! the CLI does well (raw mode, resize, signals) and the engine API would
//! make us rebuild. It is pointed at the engine this command connected to
//! (`DOCKER_HOST`), and secrets travel as `-e NAME` with the value in the
//! CLI's own environment, so `ps` never shows them.

use std::io::IsTerminal;
use std::process::Command;

use slipway_core::secret::Secret;

/// A `docker` invocation against one engine.
pub struct DockerCli {
    host: String,
}

impl DockerCli {
    pub fn new(engine_host: &str) -> Self {
        Self {
            host: engine_host.to_string(),
        }
    }

    /// `docker <args>` against the engine, with `env` passed by name.
    pub fn command(&self, args: &[String], env: &[(String, Secret)]) -> Command {
        let mut command = Command::new("docker");
        command.env("DOCKER_HOST", &self.host);
        let (head, tail) = args.split_at(args.len().min(1));
        command.args(head);
        for (name, value) in env {
            command.arg("-e").arg(name);
            command.env(name, value.expose());
        }
        command.args(tail);
        command
    }
}

/// `-i`, plus `-t` when both ends are terminals (a pipe must not get a
/// TTY: it would mangle binary output and line endings).
pub fn interactive_flags() -> Vec<String> {
    let mut flags = vec!["-i".to_string()];
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        flags.push("-t".to_string());
    }
    flags
}

/// What the exit status of `docker run|exec` means for the operator.
pub fn describe_exit(code: i32) -> Option<&'static str> {
    match code {
        125 => Some("docker could not run the container (see its message above)"),
        126 => Some("the command was found in the image but cannot be executed"),
        127 => Some("the command was not found in the image"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_passed_by_name_never_on_the_command_line() {
        let cli = DockerCli::new("unix:///x.sock");
        let cmd = cli.command(
            &["run".into(), "--rm".into(), "img".into()],
            &[(
                "DATABASE_URL".into(),
                Secret::new("postgres://u:hunter2@db/x"),
            )],
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["run", "-e", "DATABASE_URL", "--rm", "img"]);
        assert!(!args.iter().any(|a| a.contains("hunter2")));
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(
            envs.iter()
                .any(|(k, v)| *k == "DOCKER_HOST" && v.is_some_and(|v| v == "unix:///x.sock"))
        );
        assert!(envs.iter().any(|(k, _)| *k == "DATABASE_URL"));
    }
}
