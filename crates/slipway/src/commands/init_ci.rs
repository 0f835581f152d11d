//! `slipway init --ci github`: the GitHub Actions workflows, from the
//! templates in `templates/github/`. The test steps follow the repository's
//! language (Go, Rust, Node, else a `make test` to replace); the deploy
//! steps install Slipway from its release (checksum verified, a cached
//! cargo build as fallback), write `.env.<env>` and the SSH key from
//! secrets (mode 600, never echoed), deploy, and keep the JSON report as the
//! job summary and an artifact.

use std::path::{Path, PathBuf};

const TEST: &str = include_str!("../../templates/github/test.yml");
const DEPLOY_STAGING: &str = include_str!("../../templates/github/deploy-staging.yml");
const DEPLOY_PRODUCTION: &str = include_str!("../../templates/github/deploy-production.yml");
const DEPLOY_STEPS: &str = include_str!("../../templates/github/deploy-steps.yml");

/// Where Slipway's own releases are published (the workflows download
/// `slipway-<version>-<target>.tar.gz` from there; `SLIPWAY_REPO` in each
/// generated file can point elsewhere).
pub const RELEASES_REPOSITORY: &str = "slipway-deploy/slipway";

/// The application's language, as its files tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    Go,
    Rust,
    Node,
    Other,
}

impl Stack {
    pub fn detect(dir: &Path) -> Stack {
        if dir.join("go.mod").is_file() {
            Stack::Go
        } else if dir.join("Cargo.toml").is_file() {
            Stack::Rust
        } else if dir.join("package.json").is_file() {
            Stack::Node
        } else {
            Stack::Other
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stack::Go => "Go (go.mod)",
            Stack::Rust => "Rust (Cargo.toml)",
            Stack::Node => "Node (package.json)",
            Stack::Other => "unknown: `make test`, replace it with your test command",
        }
    }

    fn test_steps(self) -> &'static str {
        match self {
            Stack::Go => {
                "      - uses: actions/setup-go@v5
        with:
          go-version-file: go.mod
      - name: go test
        run: go test ./...
"
            }
            Stack::Rust => {
                "      - name: Cache cargo's registry and build
        uses: actions/cache@v4
        with:
          path: |
            ~/.cargo/registry
            ~/.cargo/git
            target
          key: cargo-${{ runner.os }}-${{ hashFiles('**/Cargo.lock') }}
          restore-keys: cargo-${{ runner.os }}-
      - name: cargo test
        run: cargo test --locked
"
            }
            Stack::Node => {
                "      - uses: actions/setup-node@v4
        with:
          node-version: lts/*
          cache: npm
      - run: npm ci
      - name: npm test
        run: npm test
"
            }
            Stack::Other => {
                "      # Replace with your application's test command.
      - name: Tests
        run: make test
"
            }
        }
    }
}

/// The workflow files, relative to the repository root.
pub fn workflows(stack: Stack, version: &str) -> Vec<(PathBuf, String)> {
    let common = |t: &str| {
        t.replace("{{test_steps}}", stack.test_steps().trim_end_matches('\n'))
            .replace("{{slipway_version}}", version)
            .replace("{{slipway_repo}}", RELEASES_REPOSITORY)
    };
    let deploy = |env: &str, deploy_env: &str, deploy_args: &str| {
        DEPLOY_STEPS
            .replace("{{deploy_env}}", deploy_env)
            .replace("{{deploy_args}}", deploy_args)
            .replace("{{env}}", env)
            .trim_end_matches('\n')
            .to_string()
    };
    let staging = common(DEPLOY_STAGING).replace("{{deploy_steps}}", &deploy("staging", "", ""));
    let production = common(DEPLOY_PRODUCTION).replace(
        "{{deploy_steps}}",
        &deploy(
            "production",
            "          REF: ${{ inputs.ref }}\n",
            "          if [ -n \"$REF\" ]; then args+=(--ref \"$REF\"); fi\n",
        ),
    );
    vec![
        (PathBuf::from(".github/workflows/test.yml"), common(TEST)),
        (
            PathBuf::from(".github/workflows/deploy-staging.yml"),
            staging,
        ),
        (
            PathBuf::from(".github/workflows/deploy-production.yml"),
            production,
        ),
    ]
}

/// The `deployment.yml` template with production's CI gate switched on:
/// only a commit whose `test` job passed on GitHub goes to production.
pub fn with_production_gate(deployment_yml: &str) -> String {
    deployment_yml.replacen(
        "  production:\n    deployment:\n",
        "  production:\n    deployment:\n      require_ci:               # only commits whose `test` job passed on GitHub\n        provider: github\n        checks: [test]\n",
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for stack in [Stack::Go, Stack::Rust, Stack::Node, Stack::Other] {
            for (path, text) in workflows(stack, "1.2.3") {
                assert!(
                    !text.replace("${{", "").contains("{{"),
                    "{}: {text}",
                    path.display()
                );
                assert!(text.ends_with('\n'), "{}", path.display());
            }
        }
        let (_, prod) = &workflows(Stack::Go, "1.2.3")[2];
        assert!(prod.contains("args+=(--ref \"$REF\")"), "{prod}");
        assert!(prod.contains("deploy production --yes"), "{prod}");
        assert!(prod.contains("SLIPWAY_VERSION: \"1.2.3\""), "{prod}");
    }

    #[test]
    fn the_production_gate_lands_in_production() {
        let template = include_str!("../../templates/deployment.yml");
        let gated = with_production_gate(template);
        assert_ne!(gated, template);
        let at = gated.find("  production:").expect("production section");
        assert!(gated[at..].contains("require_ci:"));
        assert!(!gated[..at].contains("\n      require_ci:"));
    }
}
