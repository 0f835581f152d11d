//! Who deploys (FR-019: status and history show it). The first of these
//! that exists wins, so "unknown" appears only when none does:
//!
//! 1. `SLIPWAY_DEPLOYER`, as given (a team's own convention);
//! 2. the forge's actor when running in CI (GitHub Actions, GitLab CI,
//!    Forgejo/Gitea Actions, CircleCI, Buildkite), with the forge named;
//! 3. git's `user.name <user.email>` as the repository sees it;
//! 4. the login name, with this machine's name.

use std::path::Path;
use std::process::Command;

/// The deployer of a command run in the repository at `repo_root`.
pub fn deployer(repo_root: &Path) -> String {
    let env = |name: &str| std::env::var(name).ok();
    let git = |key: &str| {
        let out = Command::new("git")
            .arg("-C")
            .arg(repo_root)
            .args(["config", "--get", key])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let login = env("USER")
        .or_else(|| env("LOGNAME"))
        .or_else(|| Some(whoami::username()).filter(|u| !u.is_empty()));
    deployer_from(&env, &git, login, &crate::owner::hostname())
}

/// [`deployer`] from its sources, for the tests.
pub fn deployer_from(
    env: &dyn Fn(&str) -> Option<String>,
    git: &dyn Fn(&str) -> Option<String>,
    login: Option<String>,
    host: &str,
) -> String {
    let set = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(who) = set("SLIPWAY_DEPLOYER") {
        return who;
    }
    if let Some(who) = ci_actor(&set) {
        return who;
    }
    let name = git("user.name").filter(|v| !v.is_empty());
    let email = git("user.email").filter(|v| !v.is_empty());
    match (name, email) {
        (Some(name), Some(email)) => return format!("{name} <{email}>"),
        (Some(name), None) => return name,
        (None, Some(email)) => return format!("<{email}>"),
        (None, None) => {}
    }
    match login
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
    {
        Some(user) => format!("{user}@{host}"),
        None => format!("unknown@{host}"),
    }
}

/// `actor (forge)` when a CI system says who started the run.
fn ci_actor(set: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    // Forgejo and Gitea set GITHUB_* too; their own variable names them.
    let forges: [(&str, &[&str], &str); 6] = [
        (
            "GITEA_ACTIONS",
            &["GITEA_ACTOR", "GITHUB_ACTOR"],
            "Gitea Actions",
        ),
        (
            "FORGEJO_ACTIONS",
            &["FORGEJO_ACTOR", "GITHUB_ACTOR"],
            "Forgejo Actions",
        ),
        (
            "GITHUB_ACTIONS",
            &["GITHUB_TRIGGERING_ACTOR", "GITHUB_ACTOR"],
            "GitHub Actions",
        ),
        (
            "GITLAB_CI",
            &["GITLAB_USER_LOGIN", "GITLAB_USER_NAME"],
            "GitLab CI",
        ),
        ("CIRCLECI", &["CIRCLE_USERNAME"], "CircleCI"),
        (
            "BUILDKITE",
            &["BUILDKITE_BUILD_CREATOR", "BUILDKITE_BUILD_AUTHOR"],
            "Buildkite",
        ),
    ];
    forges.iter().find_map(|(marker, actors, forge)| {
        set(marker)?;
        let actor = actors.iter().find_map(|a| set(a))?;
        Some(format!("{actor} ({forge})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn who(env: &[(&str, &str)], git: &[(&str, &str)], login: Option<&str>) -> String {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let git: HashMap<String, String> = git
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        deployer_from(
            &|k| env.get(k).cloned(),
            &|k| git.get(k).cloned(),
            login.map(str::to_string),
            "vm",
        )
    }

    const GIT: &[(&str, &str)] = &[
        ("user.name", "Ada Lovelace"),
        ("user.email", "ada@example.org"),
    ];

    #[test]
    fn slipway_deployer_wins_over_everything() {
        let env = [
            ("SLIPWAY_DEPLOYER", "release-bot"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octocat"),
        ];
        assert_eq!(who(&env, GIT, Some("root")), "release-bot");
    }

    #[test]
    fn the_forge_actor_in_ci_wins_over_git() {
        let env = [("GITHUB_ACTIONS", "true"), ("GITHUB_ACTOR", "octocat")];
        assert_eq!(who(&env, GIT, Some("runner")), "octocat (GitHub Actions)");
        let env = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_TRIGGERING_ACTOR", "hubot"),
        ];
        assert_eq!(who(&env, GIT, None), "hubot (GitHub Actions)");
        let env = [("GITLAB_CI", "true"), ("GITLAB_USER_LOGIN", "ada")];
        assert_eq!(who(&env, &[], None), "ada (GitLab CI)");
        let env = [
            ("GITHUB_ACTIONS", "true"),
            ("GITEA_ACTIONS", "true"),
            ("GITHUB_ACTOR", "gitea-user"),
        ];
        assert_eq!(who(&env, &[], None), "gitea-user (Gitea Actions)");
    }

    #[test]
    fn an_actor_variable_without_its_ci_marker_is_ignored() {
        let env = [("GITHUB_ACTOR", "octocat")];
        assert_eq!(who(&env, GIT, None), "Ada Lovelace <ada@example.org>");
    }

    #[test]
    fn git_identity_then_login_then_unknown() {
        assert_eq!(who(&[], GIT, Some("ada")), "Ada Lovelace <ada@example.org>");
        assert_eq!(who(&[], &[("user.name", "Ada")], Some("ada")), "Ada");
        assert_eq!(who(&[], &[], Some("ada")), "ada@vm");
        assert_eq!(
            who(&[("SLIPWAY_DEPLOYER", "  ")], &[], Some(" ")),
            "unknown@vm"
        );
    }
}
