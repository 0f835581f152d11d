//! `slipway config validate|show|schema`.

use slipway_core::config::SecretsNeed;
use std::collections::BTreeMap;

use serde_json::json;
use slipway_core::config::ResolvedConfig;
use slipway_core::config::json_schema;
use slipway_core::config::raw::{Node, Value};
use slipway_core::config::resolve::EnvValue;
use slipway_core::config::secrets::is_secret_name;
use slipway_core::secret::REDACTED;

use super::{load_config, load_options};
use crate::cli::{ConfigCommand, GlobalArgs};
use crate::exit::CliError;
use crate::output::Printer;

pub fn run(cmd: &ConfigCommand, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    match cmd {
        ConfigCommand::Validate(args) => validate(&args.env, global, printer),
        ConfigCommand::Show(args) => show(&args.env, global, printer),
        ConfigCommand::Schema => {
            printer.line(json_schema::file_schema_text().trim_end());
            Ok(())
        }
    }
}

fn validate(env: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    if !printer.json() {
        let config = load_config(global, env, SecretsNeed::Required, printer)?;
        printer.success(&format!(
            "configuration for `{env}` is valid ({} + {})",
            config.config_path.display(),
            config.env_file.display()
        ));
        return Ok(());
    }
    match slipway_core::config::load(&load_options(global, env, SecretsNeed::Required)?) {
        Ok(config) => {
            printer.json_value(&json!({
                "valid": true, "environment": env, "errors": [], "warnings": config.warnings,
            }));
            Ok(())
        }
        Err(problems) => {
            let (errors, warnings): (Vec<_>, Vec<_>) =
                problems.0.iter().partition(|p| p.is_error());
            printer.json_value(&json!({
                "valid": false, "environment": env, "errors": errors, "warnings": warnings,
            }));
            Err(CliError::bad_input(format!(
                "the configuration for `{env}` has {} errors",
                errors.len()
            )))
        }
    }
}

fn show(env: &str, global: &GlobalArgs, printer: &Printer) -> Result<(), CliError> {
    let config = load_config(global, env, SecretsNeed::Required, printer)?;
    let secret_values: Vec<&str> = config
        .app_env
        .values()
        .filter_map(|v| match &v.value {
            EnvValue::Secret(s) if !s.is_empty() => Some(s.expose()),
            _ => None,
        })
        .collect();
    let mut leaves = Vec::new();
    flatten(
        &config.tree,
        &mut String::new(),
        &config,
        &secret_values,
        &mut leaves,
    );
    if printer.json() {
        let settings: BTreeMap<_, _> = leaves
            .iter()
            .map(|(k, v, o)| (k.clone(), json!({"value": v, "origin": o})))
            .collect();
        let env_vars: BTreeMap<_, _> = config
            .app_env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    json!({"value": v.value.display(), "origin": v.origin.to_string()}),
                )
            })
            .collect();
        printer.json_value(&json!({
            "environment": env,
            "config_path": config.config_path,
            "env_file": config.env_file,
            "settings": settings,
            "app_env": env_vars,
        }));
        return Ok(());
    }
    printer.line(format!(
        "# {env}: {} + {}",
        config.config_path.display(),
        config.env_file.display()
    ));
    let width = leaves
        .iter()
        .map(|(k, v, _)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0)
        .min(70);
    for (key, value, origin) in &leaves {
        let text = format!("{key} = {value}");
        printer.line(format!("{text:<width$}  # {origin}"));
    }
    printer.line("");
    printer.line("# service environment (app.env < .env file < process environment)");
    for (name, var) in &config.app_env {
        let text = format!("{name} = {}", var.value.display());
        printer.line(format!("{text:<width$}  # {}", var.origin));
    }
    Ok(())
}

/// Leaves of the merged tree as (dotted key, printable value, origin),
/// secrets redacted by key name and by value.
fn flatten(
    node: &Node,
    path: &mut String,
    config: &ResolvedConfig,
    secrets: &[&str],
    out: &mut Vec<(String, String, String)>,
) {
    match &node.value {
        Value::Map(entries) if !entries.is_empty() => {
            for (key, child) in entries {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.name);
                flatten(child, path, config, secrets, out);
                path.truncate(len);
            }
        }
        _ => {
            let last = path.rsplit('.').next().unwrap_or_default();
            let rendered = render(node);
            // `app.secrets` lists names, not values.
            let names_only = path == "app.secrets";
            let secret = (!names_only && is_secret_name(last))
                || config.secret_names.iter().any(|s| s == last)
                || secrets.iter().any(|s| rendered.contains(s));
            let value = if secret {
                REDACTED.to_string()
            } else {
                rendered
            };
            out.push((path.clone(), value, node.origin.to_string()));
        }
    }
}

fn render(node: &Node) -> String {
    match &node.value {
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(_) => "{}".into(),
        _ => node.describe(),
    }
}
