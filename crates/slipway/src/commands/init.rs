//! `slipway init`: scaffold `deploy/` in an application repository.
//! Checks every target first and writes nothing if any file exists, so a
//! second run can never clobber an operator's edits.

use std::path::{Path, PathBuf};

use slipway_core::config::json_schema;

use super::init_ci;
use crate::cli::{CiForge, InitArgs};
use crate::exit::CliError;
use crate::output::Printer;

const DEPLOYMENT_YML: &str = include_str!("../../templates/deployment.yml");
const ENV_EXAMPLE: &str = include_str!("../../templates/env.example");
const DOCKERFILE: &str = include_str!("../../templates/Dockerfile");
const DOCKERFILE_POSTGRES: &str = include_str!("../../templates/Dockerfile.postgres");
const GITIGNORE: &str = include_str!("../../templates/gitignore");

/// The environments `init` scaffolds.
pub const ENVIRONMENTS: &[&str] = &["development", "staging", "production"];

pub fn run(args: &InitArgs, printer: &Printer) -> Result<(), CliError> {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(CliError::bad_input(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(dir)?,
    };
    if !valid_name(&name) {
        return Err(CliError::bad_input(format!("`{name}` is not a valid application name"))
            .hint("use lower-case letters, digits and `-`, starting with a letter (at most 41), e.g. --name events-server"));
    }
    let stack = init_ci::Stack::detect(dir);
    let already = dir.join("deploy/config/deployment.yml").is_file();
    let files = match args.ci {
        // An initialised repository gets only the workflows.
        Some(CiForge::Github) if already => init_ci::workflows(stack, env!("CARGO_PKG_VERSION")),
        Some(CiForge::Github) => {
            let mut files = scaffold(&name, true);
            files.extend(init_ci::workflows(stack, env!("CARGO_PKG_VERSION")));
            files
        }
        None => scaffold(&name, false),
    };
    let existing: Vec<String> = files
        .iter()
        .filter(|(path, _)| dir.join(path).exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(CliError::bad_input(format!(
            "refusing to overwrite existing files: {}",
            existing.join(", ")
        ))
        .hint("nothing was written; move those files aside (or edit them by hand) and run `slipway init` again"));
    }
    for (path, content) in &files {
        write_new(&dir.join(path), content)?;
        printer.note(&format!("  created {}", path.display()));
    }
    if args.ci.is_some() {
        printer.note(&format!(
            "  GitHub Actions: tests for {}; staging deploys on every push to main; production \
             by hand (Actions → deploy-production), in the GitHub environment `production`: give it \
             required reviewers. Each environment needs the secrets SLIPWAY_ENV_FILE (its .env file) \
             and, for a remote engine, SSH_PRIVATE_KEY and SSH_KNOWN_HOSTS",
            stack.name()
        ));
        if already {
            printer.note(
                "  deploy/ was already there; to let only tested commits reach production add to \
                 environments.production.deployment: `require_ci: {provider: github, checks: [test]}`",
            );
            printer.success(&format!(
                "wrote the GitHub Actions workflows in {}",
                dir.display()
            ));
            return Ok(());
        }
    }
    let migrations = dir.join("migrations");
    if !migrations.exists() {
        fs_err::create_dir_all(&migrations).map_err(io)?;
        write_new(&migrations.join(".gitkeep"), "")?;
        printer.note("  created migrations/");
    }
    append_gitignore(dir)?;
    printer.success(&format!(
        "initialised Slipway for `{name}` in {}",
        dir.display()
    ));
    printer.note(
        "next: cp deploy/config/environments/.env.development.example deploy/config/environments/.env.development \
         && chmod 600 deploy/config/environments/.env.development, fill in CHANGE_ME, then `slipway config validate development`",
    );
    Ok(())
}

/// `deploy/`; with `gate`, production's CI gate is on (`--ci`).
fn scaffold(name: &str, gate: bool) -> Vec<(PathBuf, String)> {
    let db_name = name.replace('-', "_");
    let fill = |t: &str| t.replace("{{name}}", name).replace("{{db_name}}", &db_name);
    let deployment = if gate {
        init_ci::with_production_gate(&fill(DEPLOYMENT_YML))
    } else {
        fill(DEPLOYMENT_YML)
    };
    let mut files = vec![
        (PathBuf::from("deploy/config/deployment.yml"), deployment),
        (
            PathBuf::from("deploy/config/deployment.schema.json"),
            json_schema::file_schema_text(),
        ),
        (PathBuf::from("deploy/docker/Dockerfile"), fill(DOCKERFILE)),
        (
            PathBuf::from("deploy/docker/Dockerfile.postgres"),
            fill(DOCKERFILE_POSTGRES),
        ),
    ];
    for env in ENVIRONMENTS {
        files.push((
            PathBuf::from(format!("deploy/config/environments/.env.{env}.example")),
            fill(ENV_EXAMPLE).replace("{{env}}", env),
        ));
    }
    files
}

fn write_new(path: &Path, content: &str) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent).map_err(io)?;
    }
    // create_new: even a file that appeared since the check is not clobbered.
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    std::io::Write::write_all(&mut file, content.as_bytes()).map_err(io)
}

fn append_gitignore(dir: &Path) -> Result<(), CliError> {
    let path = dir.join(".gitignore");
    let current = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let missing: Vec<&str> = GITIGNORE
        .lines()
        .filter(|l| !l.starts_with('#') && !current.lines().any(|c| c.trim() == l.trim()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(GITIGNORE.lines().next().unwrap_or("# Slipway"));
    text.push('\n');
    for line in missing {
        text.push_str(line);
        text.push('\n');
    }
    fs_err::write(&path, text).map_err(io)
}

fn default_name(dir: &Path) -> Result<String, CliError> {
    let abs = fs_err::canonicalize(dir).map_err(io)?;
    let raw = abs.file_name().and_then(|n| n.to_str()).unwrap_or("app");
    Ok(raw.to_ascii_lowercase().replace(['_', ' ', '.'], "-"))
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 41
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn io(e: std::io::Error) -> CliError {
    CliError::bad_input(e.to_string()).hint("check the directory's permissions and free space")
}
