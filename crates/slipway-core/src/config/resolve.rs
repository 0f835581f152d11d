//! Precedence, in one place. Most specific wins:
//!
//! ```text
//! CLI flag (--set a.b=v)  >  process environment (SLIPWAY__A__B=v)
//!   >  .env.<env> (SLIPWAY__A__B=v)  >  environments.<env> section  >  shared section
//! ```
//!
//! [`merge`] applies that order to configuration keys; [`app_environment`]
//! applies the same order to the service's own variables (`app.env` in the
//! file < `.env.<env>` < process environment for declared names).

use std::collections::BTreeMap;

use super::dotenv::EnvEntry;
use super::interpolate::Variables;
use super::origin::Origin;
use super::problem::Problem;
use super::raw::{Key, Node, Value};
use crate::secret::Secret;

/// Prefix of variables that override configuration keys:
/// `SLIPWAY__DEPLOYMENT__DRAIN_TIMEOUT=45s` sets `deployment.drain_timeout`.
pub const OVERRIDE_PREFIX: &str = "SLIPWAY__";

/// One override of a configuration key.
#[derive(Clone, Debug)]
pub struct Override {
    pub path: Vec<String>,
    pub value: Node,
}

/// The layers of one environment, least specific first.
pub struct Layers {
    pub shared: Node,
    pub environment: Option<Node>,
    pub dotenv: Vec<Override>,
    pub process: Vec<Override>,
    pub cli: Vec<Override>,
}

/// THE precedence function: merges the layers, most specific last so it wins.
pub fn merge(layers: Layers) -> Node {
    let mut tree = layers.shared;
    if let Some(env) = layers.environment {
        deep_merge(&mut tree, env);
    }
    for o in layers
        .dotenv
        .into_iter()
        .chain(layers.process)
        .chain(layers.cli)
    {
        set_path(&mut tree, &o.path, o.value);
    }
    tree
}

fn deep_merge(base: &mut Node, over: Node) {
    match (&mut base.value, over.value) {
        (Value::Map(base_entries), Value::Map(over_entries)) => {
            for (key, value) in over_entries {
                match base_entries.iter_mut().find(|(k, _)| k.name == key.name) {
                    Some((_, existing)) => deep_merge(existing, value),
                    None => base_entries.push((key, value)),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.origin = over.origin;
        }
    }
}

fn set_path(tree: &mut Node, path: &[String], value: Node) {
    let Some((first, rest)) = path.split_first() else {
        *tree = value;
        return;
    };
    if !matches!(tree.value, Value::Map(_)) {
        tree.value = Value::Map(Vec::new());
        tree.origin = value.origin.clone();
    }
    if let Value::Map(entries) = &mut tree.value {
        let index = match entries.iter().position(|(k, _)| &k.name == first) {
            Some(i) => i,
            None => {
                let key = Key {
                    name: first.clone(),
                    origin: value.origin.clone(),
                };
                entries.push((key, Node::new(Value::Map(Vec::new()), value.origin.clone())));
                entries.len() - 1
            }
        };
        set_path(&mut entries[index].1, rest, value);
    }
}

/// Turns `SLIPWAY__A__B` variables into overrides of `a.b`.
pub fn overrides_from_vars<'a>(
    vars: impl IntoIterator<Item = (&'a str, &'a str, Origin)>,
) -> Vec<Override> {
    vars.into_iter()
        .filter_map(|(name, value, origin)| {
            let rest = name.strip_prefix(OVERRIDE_PREFIX)?;
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            Some(Override {
                path,
                value: scalar(value, origin),
            })
        })
        .collect()
}

/// Parses `--set a.b=value` flags.
pub fn overrides_from_flags(flags: &[String]) -> Result<Vec<Override>, Box<Problem>> {
    flags
        .iter()
        .map(|flag| {
            let origin = Origin::CliFlag {
                flag: format!("--set {}", flag.split('=').next().unwrap_or("")),
            };
            let (key, value) = flag.split_once('=').ok_or_else(|| {
                Box::new(
                    Problem::error(origin.clone(), format!("`--set {flag}` has no `=`")).expected(
                        "--set <key.path>=<value>, e.g. --set deployment.drain_timeout=45s",
                    ),
                )
            })?;
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            if path.iter().any(String::is_empty) {
                return Err(Box::new(
                    Problem::error(origin, format!("`{key}` is not a key path"))
                        .expected("dot-separated keys, e.g. deployment.drain_timeout"),
                ));
            }
            Ok(Override {
                path,
                value: scalar(value, origin),
            })
        })
        .collect()
}

/// An override's text typed as YAML would type it: booleans, integers,
/// `[a, b]` lists, otherwise a string.
fn scalar(text: &str, origin: Origin) -> Node {
    let value = if let Ok(b) = text.parse::<bool>() {
        Value::Bool(b)
    } else if let Ok(i) = text.parse::<i64>() {
        Value::Int(i)
    } else if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Value::Seq(
            inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| scalar(s, origin.clone()))
                .collect(),
        )
    } else {
        Value::String(text.to_string())
    };
    Node::new(value, origin)
}

/// One variable of the service's environment.
#[derive(Clone, Debug)]
pub struct EnvVar {
    pub value: EnvValue,
    pub origin: Origin,
}

#[derive(Clone, Debug)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl EnvValue {
    /// For the container's environment only; never for output.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(s) => s,
            EnvValue::Secret(s) => s.expose(),
        }
    }

    /// What output may show.
    pub fn display(&self) -> String {
        match self {
            EnvValue::Plain(s) => s.clone(),
            EnvValue::Secret(s) => s.to_string(),
        }
    }
}

/// The service's environment: `app.env` (already merged) < `.env.<env>` <
/// process environment (only for names declared in one of the former).
/// `is_secret` decides which values are wrapped in [`Secret`].
pub fn app_environment(
    app_env: &Node,
    dotenv: &[EnvEntry],
    vars: &Variables<'_>,
    is_secret: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, EnvVar>, Vec<Problem>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let wrap = |name: &str, v: String| {
        if is_secret(name) {
            EnvValue::Secret(Secret::new(v))
        } else {
            EnvValue::Plain(v)
        }
    };
    if let Value::Map(entries) = &app_env.value {
        for (key, node) in entries {
            let text = match &node.value {
                Value::String(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(f) => f.to_string(),
                _ => continue, // the schema reports non-scalars
            };
            let (value, origin) = match vars.process.get(&key.name) {
                Some(p) => (
                    p.clone(),
                    Origin::ProcessEnv {
                        name: key.name.clone(),
                    },
                ),
                None => (text, node.origin.clone()),
            };
            out.insert(
                key.name.clone(),
                EnvVar {
                    value: wrap(&key.name, value),
                    origin,
                },
            );
        }
    }
    for entry in dotenv
        .iter()
        .filter(|e| !e.name.starts_with(OVERRIDE_PREFIX))
    {
        match vars.lookup(&entry.name) {
            Ok(Some(resolved)) => {
                out.insert(
                    entry.name.clone(),
                    EnvVar {
                        value: wrap(&entry.name, resolved.value),
                        origin: resolved.origin,
                    },
                );
            }
            Ok(None) => {}
            Err(e) => problems.push(Problem::error(
                entry.origin.clone(),
                format!("`{}`: {e}", entry.name),
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn yaml(text: &str) -> Node {
        super::super::raw::parse(text, &Arc::new(PathBuf::from("d.yml"))).unwrap()
    }

    fn get<'a>(n: &'a Node, p: &str) -> &'a Node {
        n.at_pointer(p).unwrap()
    }

    #[test]
    fn most_specific_layer_wins_for_every_pair() {
        let shared = yaml(
            "deployment:\n  drain_timeout: 10s\n  watch_window: 1m\n  keep_releases: 3\n  public_port: 80\napp: {name: x}\n",
        );
        let env = yaml("deployment:\n  watch_window: 2m\n  keep_releases: 4\n  public_port: 81\n");
        let o = |path: &str, v: &str, origin: Origin| Override {
            path: path.split('.').map(String::from).collect(),
            value: scalar(v, origin),
        };
        let dotenv_origin = Origin::EnvFile {
            path: Arc::new(PathBuf::from(".env.production")),
            line: 3,
            column: 1,
            name: "SLIPWAY__DEPLOYMENT__KEEP_RELEASES".into(),
        };
        let process_origin = Origin::ProcessEnv {
            name: "SLIPWAY__DEPLOYMENT__PUBLIC_PORT".into(),
        };
        let merged = merge(Layers {
            shared,
            environment: Some(env),
            dotenv: vec![
                o("deployment.keep_releases", "5", dotenv_origin.clone()),
                o("deployment.public_port", "82", dotenv_origin.clone()),
            ],
            process: vec![
                o("deployment.public_port", "83", process_origin.clone()),
                o("deployment.drain_timeout", "20s", process_origin.clone()),
            ],
            cli: vec![o(
                "deployment.drain_timeout",
                "30s",
                Origin::CliFlag {
                    flag: "--set deployment.drain_timeout".into(),
                },
            )],
        });
        // shared only
        assert_eq!(get(&merged, "/app/name").value, Value::String("x".into()));
        assert_eq!(get(&merged, "/app/name").origin.to_string(), "d.yml:6:13");
        // env section > shared
        assert_eq!(
            get(&merged, "/deployment/watch_window").value,
            Value::String("2m".into())
        );
        assert_eq!(
            get(&merged, "/deployment/watch_window").origin.to_string(),
            "d.yml:2:17"
        );
        // .env > env section
        assert_eq!(
            get(&merged, "/deployment/keep_releases").value,
            Value::Int(5)
        );
        assert_eq!(
            get(&merged, "/deployment/keep_releases").origin,
            dotenv_origin
        );
        // process > .env
        assert_eq!(
            get(&merged, "/deployment/public_port").value,
            Value::Int(83)
        );
        assert_eq!(
            get(&merged, "/deployment/public_port").origin,
            process_origin
        );
        // CLI > process
        assert_eq!(
            get(&merged, "/deployment/drain_timeout").value,
            Value::String("30s".into())
        );
        assert!(matches!(
            get(&merged, "/deployment/drain_timeout").origin,
            Origin::CliFlag { .. }
        ));
    }

    #[test]
    fn override_names_and_flags() {
        let o = overrides_from_vars([
            ("SLIPWAY__HEALTH__HEALTHY_THRESHOLD", "3", Origin::Default),
            ("PATH", "/bin", Origin::Default),
        ]);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].path, vec!["health", "healthy_threshold"]);
        assert_eq!(o[0].value.value, Value::Int(3));
        let f = overrides_from_flags(&["database.extensions=[postgis, vector]".into()]).unwrap();
        assert!(matches!(&f[0].value.value, Value::Seq(items) if items.len() == 2));
        assert!(overrides_from_flags(&["novalue".into()]).is_err());
        assert!(overrides_from_flags(&["a..b=1".into()]).is_err());
    }

    #[test]
    fn app_environment_precedence_and_secrets() {
        let app_env = yaml("LOG_LEVEL: info\nFEATURE: on\n");
        let dotenv = super::super::dotenv::parse(
            "LOG_LEVEL=debug\nJWT_SECRET=abc\nUNDECLARED_IN_PROCESS=1\n",
            &Arc::new(PathBuf::from(".env.staging")),
        )
        .unwrap();
        let process = BTreeMap::from([
            ("FEATURE".to_string(), "off".to_string()),
            ("OTHER".to_string(), "ignored".to_string()),
        ]);
        let vars = Variables {
            process: &process,
            dotenv: &dotenv,
        };
        let env = app_environment(&app_env, &dotenv, &vars, |n| n.contains("SECRET")).unwrap();
        assert_eq!(env["LOG_LEVEL"].value.expose(), "debug");
        assert_eq!(env["FEATURE"].value.expose(), "off");
        assert!(!env.contains_key("OTHER"));
        assert!(matches!(env["JWT_SECRET"].value, EnvValue::Secret(_)));
        assert_eq!(env["JWT_SECRET"].value.display(), "[redacted]");
    }
}
