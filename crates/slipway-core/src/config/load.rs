//! Loading one environment: read `deployment.yml` and `.env.<env>`, check
//! permissions, interpolate, merge (see [`super::resolve`]), validate, decode.
//! Collects every problem before giving up, so one run shows them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dotenv::{self, EnvEntry};
use super::interpolate::Variables;
use super::json_schema;
use super::origin::Origin;
use super::problem::{Problem, Problems, did_you_mean};
use super::raw::{self, Node, Value};
use super::resolve::{self, EnvVar, Layers};
use super::schema::{DatabaseMode, KNOWN_PROVIDERS, SUPPORTED_PROVIDERS, Settings};
use super::secrets;
use super::validate;

/// Environments whose `.env` must not be readable by group or others.
pub const PROTECTED_ENVIRONMENTS: &[&str] = &["staging", "production"];

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Path of `deployment.yml`.
    pub config_path: PathBuf,
    pub environment: String,
    /// The process environment (passed in so the core stays pure and testable).
    pub process_env: BTreeMap<String, String>,
    /// `--set key.path=value` flags.
    pub cli_overrides: Vec<String>,
    /// Whether the command needs the environment's secrets.
    pub secrets: SecretsNeed,
}

/// Whether a command needs `.env.<env>` and the secrets in it. Read-only
/// commands (status, history, logs...) do not, so a teammate or a CI job
/// without the secrets can still look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretsNeed {
    #[default]
    Required,
    /// A missing `.env.<env>` or required secret is a warning, not an error.
    NotNeeded,
}

/// One environment's configuration, validated and resolved.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    pub environment: String,
    pub config_path: PathBuf,
    /// The repository root: paths in the configuration are relative to it.
    pub root: PathBuf,
    pub env_file: PathBuf,
    pub settings: Settings,
    /// The merged tree with each value's origin, for `config show`.
    pub tree: Node,
    /// The service's environment (secrets wrapped).
    pub app_env: BTreeMap<String, EnvVar>,
    /// Names whose values are secret.
    pub secret_names: Vec<String>,
    pub warnings: Vec<Problem>,
}

impl ResolvedConfig {
    /// A path from the configuration, made absolute against the repository root.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

/// The repository root for a `deployment.yml`: three levels up from
/// `<root>/deploy/config/deployment.yml`, else the file's own directory.
pub fn repository_root(config_path: &Path) -> PathBuf {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let is_standard = dir.file_name().is_some_and(|n| n == "config")
        && dir
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "deploy");
    if is_standard {
        dir.parent()
            .and_then(Path::parent)
            .unwrap_or(dir)
            .to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The `.env.<env>` file next to a `deployment.yml`.
pub fn env_file_path(config_path: &Path, environment: &str) -> PathBuf {
    config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("environments")
        .join(format!(".env.{environment}"))
}

pub fn load(opts: &LoadOptions) -> Result<ResolvedConfig, Problems> {
    let mut problems = Vec::new();
    let config_path = Arc::new(opts.config_path.clone());
    let file_origin = |line, column| Origin::Yaml {
        path: config_path.clone(),
        line,
        column,
    };

    let text = fs_err::read_to_string(&opts.config_path).map_err(|e| {
        Problems(vec![
            Problem::error(
                file_origin(1, 1),
                format!("cannot read the configuration: {}", io_reason(&e)),
            )
            .hint(
                "run `slipway init` in your repository, or pass --config <path to deployment.yml>",
            ),
        ])
    })?;
    let document = raw::parse(&text, &config_path).map_err(|e| {
        Problems(vec![
            Problem::error(
                file_origin(e.line, e.column),
                format!("invalid YAML: {}", e.message),
            )
            .hint(
                "fix the syntax at this position (indentation, a missing `:` or closing bracket)",
            ),
        ])
    })?;
    if !matches!(document.value, Value::Map(_)) {
        return Err(Problems(vec![
            Problem::error(
                document.origin.clone(),
                "the configuration must be a mapping of keys",
            )
            .found(document.describe()),
        ]));
    }

    // Split the shared section from the environment sections.
    let (mut shared, environments) = split_environments(document);
    let env_names: Vec<String> = environments.iter().map(|(k, _)| k.name.clone()).collect();
    let mut env_section = None;
    for (key, section) in environments {
        if key.name == opts.environment {
            env_section = Some(section);
        } else {
            // Other environments: structure only (their variables are not loaded).
            problems.extend(validate::schema_problems(
                &section,
                &json_schema::partial_schema(),
                true,
            ));
        }
    }
    if env_section.is_none() {
        let mut p = Problem::error(
            file_origin(1, 1),
            format!("unknown environment `{}`", opts.environment),
        )
        .expected(if env_names.is_empty() {
            "an `environments:` section naming it".to_string()
        } else {
            format!("one of: {}", env_names.join(", "))
        });
        p = match did_you_mean(&opts.environment, env_names.iter().map(String::as_str)) {
            Some(hint) => p.hint(hint),
            None => p.hint(format!(
                "add `environments: {{{}: {{}}}}` to deployment.yml",
                opts.environment
            )),
        };
        problems.push(p);
    }

    // The .env file: permissions, then entries.
    let env_file = env_file_path(&opts.config_path, &opts.environment);
    let env_file_arc = Arc::new(env_file.clone());
    let dotenv_entries = read_env_file(&env_file, &opts.environment, opts.secrets, &mut problems);

    // Secrets literally written into the file (before interpolation).
    let declared_secrets = string_list(shared.get("app").and_then(|a| a.get("secrets")));
    problems.extend(validate::secrets_in_file(&shared, &declared_secrets));
    if let Some(section) = &env_section {
        problems.extend(validate::secrets_in_file(section, &declared_secrets));
    }

    // Hooks are printed as written: no `${VAR}` from .env.<env> in them.
    problems.extend(super::hooks::interpolation_problems(&shared));
    if let Some(section) = &env_section {
        problems.extend(super::hooks::interpolation_problems(section));
    }

    // Interpolate ${VAR} in the shared and selected sections.
    let vars = Variables {
        process: &opts.process_env,
        dotenv: &dotenv_entries,
    };
    interpolate_tree(&mut shared, &vars, &mut problems);
    if let Some(section) = env_section.as_mut() {
        interpolate_tree(section, &vars, &mut problems);
    }
    // The shared section's values on their own: one an environment
    // overrides is still wrong for every environment that does not.
    let shared_problems = validate::schema_problems(&shared, &json_schema::partial_schema(), false);

    // Merge every layer (the one precedence function).
    // `.env` overrides carry their interpolated value (process variables win).
    let dotenv_values: Vec<(String, String, Origin)> = dotenv_entries
        .iter()
        .filter(|e| e.name.starts_with(resolve::OVERRIDE_PREFIX))
        .filter_map(|e| {
            Some((
                e.name.clone(),
                vars.lookup(&e.name).ok()??.value,
                e.origin.clone(),
            ))
        })
        .collect();
    let dotenv_overrides = resolve::overrides_from_vars(
        dotenv_values
            .iter()
            .map(|(n, v, o)| (n.as_str(), v.as_str(), o.clone())),
    );
    let process_overrides = resolve::overrides_from_vars(opts.process_env.iter().map(|(n, v)| {
        (
            n.as_str(),
            v.as_str(),
            Origin::ProcessEnv { name: n.clone() },
        )
    }));
    let cli_overrides = match resolve::overrides_from_flags(&opts.cli_overrides) {
        Ok(o) => o,
        Err(p) => {
            problems.push(*p);
            Vec::new()
        }
    };
    let tree = resolve::merge(Layers {
        shared,
        environment: env_section,
        dotenv: dotenv_overrides,
        process: process_overrides,
        cli: cli_overrides,
    });

    let merged_problems = validate::schema_problems(&tree, &json_schema::settings_schema(), false);
    problems.extend(
        merged_problems
            .into_iter()
            .filter(|p| !shared_problems.contains(p)),
    );
    problems.extend(shared_problems);
    if problems.iter().any(Problem::is_error) {
        return Err(Problems(problems));
    }
    let settings: Settings = serde_json::from_value(tree.to_json()).map_err(|e| {
        Problems(vec![Problem::error(
            tree.origin.clone(),
            format!("cannot decode the configuration: {e}"),
        )])
    })?;

    let root = repository_root(&opts.config_path);
    semantic_checks(&settings, &tree, &root, &mut problems);

    // The service's environment and its secrets.
    let mut secret_names: Vec<String> = settings.app.secrets.clone();
    secret_names.extend(
        required_by_database(&settings)
            .iter()
            .map(|s| s.to_string()),
    );
    let is_secret =
        |name: &str| secrets::is_secret_name(name) || secret_names.iter().any(|s| s == name);
    let app_env_node = tree
        .get("app")
        .and_then(|a| a.get("env"))
        .cloned()
        .unwrap_or_else(|| Node::new(Value::Map(Vec::new()), Origin::Default));
    let app_env = match resolve::app_environment(&app_env_node, &dotenv_entries, &vars, is_secret) {
        Ok(env) => env,
        // Without the secrets a read-only command never starts the app, so
        // its environment may stay unresolved.
        Err(_) if opts.secrets == SecretsNeed::NotNeeded => BTreeMap::new(),
        Err(ps) => {
            problems.extend(ps);
            BTreeMap::new()
        }
    };
    if opts.secrets == SecretsNeed::Required {
        check_required_secrets(
            &secret_names,
            &app_env,
            &env_file_arc,
            &opts.environment,
            &mut problems,
        );
    }

    if problems.iter().any(Problem::is_error) {
        return Err(Problems(problems));
    }
    Ok(ResolvedConfig {
        environment: opts.environment.clone(),
        config_path: opts.config_path.clone(),
        root,
        env_file,
        settings,
        tree,
        app_env,
        secret_names,
        warnings: problems,
    })
}

/// Secrets the database mode needs from `.env.<env>`.
pub fn required_by_database(settings: &Settings) -> &'static [&'static str] {
    match settings.database.mode {
        DatabaseMode::Container => &["POSTGRES_PASSWORD"],
        DatabaseMode::External => &["DATABASE_URL"],
    }
}

fn split_environments(document: Node) -> (Node, Vec<(raw::Key, Node)>) {
    let origin = document.origin.clone();
    let Value::Map(entries) = document.value else {
        unreachable!("checked to be a mapping")
    };
    let mut shared = Vec::new();
    let mut environments = Vec::new();
    for (key, value) in entries {
        if key.name == "environments" {
            if let Value::Map(envs) = value.value {
                environments = envs;
            }
        } else {
            shared.push((key, value));
        }
    }
    (Node::new(Value::Map(shared), origin), environments)
}

fn read_env_file(
    path: &Path,
    environment: &str,
    secrets: SecretsNeed,
    problems: &mut Vec<Problem>,
) -> Vec<EnvEntry> {
    let arc = Arc::new(path.to_path_buf());
    let origin = Origin::EnvFile {
        path: arc.clone(),
        line: 1,
        column: 1,
        name: String::new(),
    };
    let example = path.with_file_name(format!(".env.{environment}.example"));
    let text = match fs_err::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && secrets == SecretsNeed::NotNeeded => {
            problems.push(Problem::warning(
                origin,
                format!(
                    "no {} here: going on without the environment's secrets (this command only reads)",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
            return Vec::new();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(
                Problem::error(origin, format!("the environment file is missing ({})", io_reason(&e))).hint(format!(
                    "create it from the template: cp {} {} && chmod 600 {}, then fill in every CHANGE_ME",
                    example.display(),
                    path.display(),
                    path.display()
                )),
            );
            return Vec::new();
        }
        Err(e) => {
            problems.push(
                Problem::error(
                    origin,
                    format!("cannot read the environment file: {}", io_reason(&e)),
                )
                .hint("check the file's owner and permissions (it should be yours, mode 600)"),
            );
            return Vec::new();
        }
    };
    check_permissions(path, environment, &origin, problems);
    match dotenv::parse(&text, &arc) {
        Ok(entries) => entries,
        Err(errors) => {
            for e in errors {
                problems.push(Problem::error(
                    Origin::EnvFile {
                        path: arc.clone(),
                        line: e.line,
                        column: e.column,
                        name: String::new(),
                    },
                    e.message,
                ));
            }
            Vec::new()
        }
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, environment: &str, origin: &Origin, problems: &mut Vec<Problem>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs_err::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return;
    }
    let message = format!("the environment file is readable by group or others (mode {mode:03o})");
    let hint = format!("run: chmod 600 {}", path.display());
    if PROTECTED_ENVIRONMENTS.contains(&environment) {
        problems.push(
            Problem::error(origin.clone(), message)
                .expected("mode 600")
                .hint(hint),
        );
    } else {
        problems.push(
            Problem::warning(origin.clone(), message)
                .expected("mode 600")
                .hint(hint),
        );
    }
}

#[cfg(not(unix))]
fn check_permissions(_: &Path, _: &str, _: &Origin, _: &mut Vec<Problem>) {}

fn interpolate_tree(node: &mut Node, vars: &Variables<'_>, problems: &mut Vec<Problem>) {
    match &mut node.value {
        Value::String(text) if text.contains('$') => match vars.expand(text) {
            Ok(expanded) => {
                *text = expanded;
                node.interpolated = true;
            }
            Err(e) => problems.push(Problem::error(node.origin.clone(), e.to_string()).hint(
                "define the variable in the environment's .env file or the process environment",
            )),
        },
        Value::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, v)| interpolate_tree(v, vars, problems)),
        Value::Seq(items) => items
            .iter_mut()
            .for_each(|v| interpolate_tree(v, vars, problems)),
        _ => {}
    }
}

fn string_list(node: Option<&Node>) -> Vec<String> {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn semantic_checks(settings: &Settings, tree: &Node, root: &Path, problems: &mut Vec<Problem>) {
    let origin_of = |pointer: &str| {
        tree.at_pointer(pointer)
            .map_or(Origin::Default, |n| n.origin.clone())
    };
    let provider = settings.provider.as_str();
    if !KNOWN_PROVIDERS.contains(&provider) {
        let mut p = Problem::error(
            origin_of("/provider"),
            format!("unknown provider `{provider}`"),
        )
        .expected(format!("one of: {}", KNOWN_PROVIDERS.join(", ")));
        if let Some(h) = did_you_mean(provider, KNOWN_PROVIDERS.iter().copied()) {
            p = p.hint(h);
        }
        problems.push(p);
    } else if !SUPPORTED_PROVIDERS.contains(&provider) {
        problems.push(
            Problem::error(
                origin_of("/provider"),
                format!("provider `{provider}` is reserved but not supported yet"),
            )
            .expected(format!("one of: {}", SUPPORTED_PROVIDERS.join(", ")))
            .hint("use `provider: docker` (one host, local or over SSH)"),
        );
    }
    if let Some(host) = settings
        .providers
        .docker
        .as_ref()
        .and_then(|d| d.host.as_deref())
        && !(host.starts_with("unix://")
            || host.starts_with("ssh://")
            || host.starts_with("tcp://"))
    {
        problems.push(
            Problem::error(
                origin_of("/providers/docker/host"),
                "`providers.docker.host` is not an engine address",
            )
            .found(format!("{host:?}"))
            .expected("unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376"),
        );
    }
    // With a build command, the context (and a Dockerfile inside it) may
    // only exist once the command has run.
    let prepared_by_command = settings.app.build.command.is_some();
    let dir_checks = [
        (
            "/database/migrations",
            &settings.database.migrations,
            true,
            "the migrations directory",
            false,
        ),
        (
            "/app/build/context",
            &settings.app.build.context,
            true,
            "the build context",
            prepared_by_command,
        ),
        (
            "/app/build/dockerfile",
            &settings.app.build.dockerfile,
            false,
            "the Dockerfile",
            false,
        ),
    ];
    for (pointer, relative, is_dir, what, skip) in dir_checks {
        if skip {
            continue;
        }
        check_exists(root, relative, is_dir, what, origin_of(pointer), problems);
    }
    if let Some(df) = &settings.database.dockerfile
        && !root.join(df).is_file()
    {
        problems.push(
            Problem::error(
                origin_of("/database/dockerfile"),
                format!(
                    "the database Dockerfile does not exist: {}",
                    root.join(df).display()
                ),
            )
            .hint(format!(
                "paths are relative to the repository root {}",
                root.display()
            )),
        );
    }
    https_checks(settings, root, &origin_of, problems);
    super::notify_checks::check(settings, &origin_of, problems);
    super::hooks::check(&settings.hooks, root, &origin_of, problems);
    maintenance_checks(settings, &origin_of, problems);
    for (pointer, d) in [
        ("/health/interval", &settings.health.interval),
        ("/health/timeout", &settings.health.timeout),
        ("/health/start_timeout", &settings.health.start_timeout),
    ] {
        if d.0.is_zero() {
            problems.push(Problem::error(
                origin_of(pointer),
                format!("`{}` must be longer than zero", validate::dotted(pointer)),
            ));
        }
    }
}

/// `deployment.maintenance`: values the agent accepts, and a migration
/// timeout that really is the longer one.
fn maintenance_checks(
    settings: &Settings,
    origin_of: &dyn Fn(&str) -> Origin,
    problems: &mut Vec<Problem>,
) {
    use crate::maintenance::{MAX_MESSAGE_CHARS, MAX_RETRY_AFTER_SECS};
    let m = &settings.deployment.maintenance;
    if m.migration_timeout.0.is_zero() {
        problems.push(
            Problem::error(
                origin_of("/deployment/maintenance/migration_timeout"),
                "`deployment.maintenance.migration_timeout` must be longer than zero",
            )
            .expected("a duration such as 30m"),
        );
    }
    let retry = m.retry_after.0.as_secs();
    if retry == 0 || retry > MAX_RETRY_AFTER_SECS {
        problems.push(
            Problem::error(
                origin_of("/deployment/maintenance/retry_after"),
                format!(
                    "`deployment.maintenance.retry_after` is {}, outside 1s..24h",
                    super::schema::format_duration(m.retry_after.0)
                ),
            )
            .expected("whole seconds from 1s to 24h, such as 60s"),
        );
    }
    if let Some(message) = &m.message {
        let chars = message.chars().count();
        if chars > MAX_MESSAGE_CHARS || message.chars().any(|c| c.is_control() && c != '\n') {
            problems.push(
                Problem::error(
                    origin_of("/deployment/maintenance/message"),
                    format!(
                        "`deployment.maintenance.message` must be plain text of at most \
                         {MAX_MESSAGE_CHARS} characters (it has {chars})"
                    ),
                )
                .hint("say briefly what happens and when the service is back"),
            );
        }
    }
    if let Some(ordinary) = &settings.database.migration.statement_timeout
        && ordinary.0 > m.migration_timeout.0
    {
        problems.push(
            Problem::warning(
                origin_of("/deployment/maintenance/migration_timeout"),
                "`deployment.maintenance.migration_timeout` is shorter than \
                 `database.migration.statement_timeout`: a `deploy --maintenance` migration \
                 would get less time than an ordinary one",
            )
            .hint("raise migration_timeout (default 30m) above the ordinary statement_timeout"),
        );
    }
}

/// A path of the configuration, relative to the repository root, must name
/// an existing directory (`is_dir`) or file.
fn check_exists(
    root: &Path,
    relative: &str,
    is_dir: bool,
    what: &str,
    origin: Origin,
    problems: &mut Vec<Problem>,
) {
    let path = root.join(relative);
    let ok = if is_dir {
        path.is_dir()
    } else {
        path.is_file()
    };
    if !ok {
        problems.push(
            Problem::error(origin, format!("{what} does not exist: {}", path.display()))
                .found(format!("{relative:?}"))
                .hint(format!(
                    "paths are relative to the repository root {}",
                    root.display()
                )),
        );
    }
}

/// `deployment.hostnames`, `deployment.tls` and `acme`: names a CA can
/// issue for, files that exist, a directory that is a URL.
fn https_checks(
    settings: &Settings,
    root: &Path,
    origin_of: &dyn Fn(&str) -> Origin,
    problems: &mut Vec<Problem>,
) {
    use super::schema::Tls;
    let deployment = &settings.deployment;
    for host in deployment.all_hostnames() {
        if let Some(why) = hostname_problem(&host) {
            problems.push(
                Problem::error(
                    origin_of("/deployment/hostnames"),
                    format!("`{host}` cannot be a hostname here: {why}"),
                )
                .expected(
                    "a domain name such as api.example.org (no scheme, port, path or wildcard)",
                ),
            );
        }
    }
    let mut files = Vec::new();
    if let Tls::Custom(c) = &deployment.tls {
        files.push(("/deployment/tls/cert", &c.cert, "the certificate file"));
        files.push(("/deployment/tls/key", &c.key, "the private key file"));
    }
    if let Some(ca) = &settings.acme.ca_root {
        files.push(("/acme/ca_root", ca, "the ACME root certificate"));
    }
    for (pointer, relative, what) in files {
        check_exists(root, relative, false, what, origin_of(pointer), problems);
    }
    let directory = settings.acme.directory_url();
    if !(directory.starts_with("https://") || directory.starts_with("http://")) {
        problems.push(
            Problem::error(
                origin_of("/acme/directory"),
                "`acme.directory` is not an ACME directory",
            )
            .found(format!("{:?}", settings.acme.directory))
            .expected("letsencrypt, letsencrypt-staging, or the directory's https:// URL"),
        );
    }
    if deployment.tls != Tls::default() && deployment.all_hostnames().is_empty() {
        problems.push(
            Problem::warning(
                origin_of("/deployment/tls"),
                "`deployment.tls` applies only to `deployment.hostnames`, and there are none",
            )
            .hint("add `hostnames: [your.domain]`, or remove `tls`"),
        );
    }
}

/// Why `host` is not a name a certificate can be issued for, if it is not.
fn hostname_problem(host: &str) -> Option<&'static str> {
    if host.contains("://") || host.contains('/') {
        Some("it has a scheme or a path")
    } else if host.contains(':') {
        Some("it has a port (the entry point's ports are providers.docker.entry_point)")
    } else if host.contains('*') {
        Some("wildcards are for certificates (deployment.tls), list each name")
    } else if host.parse::<std::net::IpAddr>().is_ok() {
        Some("it is an IP address")
    } else if host.len() > 253
        || host.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || label.starts_with('-')
                || label.ends_with('-')
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        Some("it is not a valid domain name")
    } else {
        None
    }
}

fn check_required_secrets(
    names: &[String],
    app_env: &BTreeMap<String, EnvVar>,
    env_file: &Arc<PathBuf>,
    environment: &str,
    problems: &mut Vec<Problem>,
) {
    for name in names {
        match app_env.get(name) {
            None => problems.push(
                Problem::error(
                    Origin::EnvFile {
                        path: env_file.clone(),
                        line: 1,
                        column: 1,
                        name: name.clone(),
                    },
                    format!("required secret `{name}` is not set"),
                )
                .hint(format!(
                    "add `{name}=<value>` to .env.{environment} (see .env.{environment}.example)"
                )),
            ),
            Some(var) if secrets::is_placeholder(var.value.expose()) => problems.push(
                Problem::error(
                    var.origin.clone(),
                    format!("required secret `{name}` is still a placeholder or empty"),
                )
                .found(crate::secret::REDACTED)
                .expected("the real value")
                .hint(format!(
                    "replace CHANGE_ME with the real value for `{name}`"
                )),
            ),
            Some(_) => {}
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::hostname_problem;

    #[test]
    fn only_names_a_ca_can_issue_for_are_hostnames() {
        for ok in [
            "api.example.org",
            "staging.togather.foundation",
            "localhost",
            "a-b.c1.io",
        ] {
            assert_eq!(hostname_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("https://api.example.org", "scheme"),
            ("api.example.org:8443", "port"),
            ("*.example.org", "wildcard"),
            ("10.0.0.1", "IP"),
            ("-x.example.org", "valid"),
            ("a..b", "valid"),
            ("under_score.example.org", "valid"),
        ] {
            let problem = hostname_problem(bad).unwrap_or_default();
            assert!(problem.contains(why), "{bad}: {problem:?}");
        }
    }
}
