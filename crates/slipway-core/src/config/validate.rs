//! Checks a merged configuration tree: every schema violation at once, each
//! mapped back to the `file:line:column` its value came from, with "did you
//! mean" for unknown keys and enum values; then the checks a schema cannot
//! express (unknown environment or provider, missing directories, secrets).

use jsonschema::error::ValidationErrorKind;
use serde_json::Value as Json;

use super::origin::Origin;
use super::problem::{Problem, did_you_mean};
use super::raw::{Node, Value};
use super::secrets;

/// Validates `tree` against `schema` (inline, as [`super::json_schema`]
/// makes them). With `only_unknown_keys`, reports just unknown keys (used for
/// the sections of environments not being loaded).
pub fn schema_problems(tree: &Node, schema: &Json, only_unknown_keys: bool) -> Vec<Problem> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(e) => {
            return vec![Problem::error(
                Origin::Default,
                format!("internal: invalid schema: {e}"),
            )];
        }
    };
    let instance = tree.to_json();
    let mut problems = Vec::new();
    for error in validator.iter_errors(&instance) {
        let pointer = error.instance_path().as_str().to_string();
        let schema_pointer = error.schema_path().as_str().to_string();
        let node = tree.at_pointer(&pointer).unwrap_or(tree);
        let dotted = dotted(&pointer);
        let secret =
            is_secret_path(&pointer) || node.interpolated || from_environment(&node.origin);
        let found = if secret {
            crate::secret::REDACTED.to_string()
        } else {
            node.describe()
        };
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = schema_pointer.trim_end_matches("/additionalProperties");
                let allowed: Vec<String> = schema
                    .pointer(parent)
                    .and_then(|s| s.get("properties"))
                    .and_then(Json::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for key in unexpected {
                    let key_pointer =
                        format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                    let origin = tree
                        .key_at_pointer(&key_pointer)
                        .map_or_else(|| node.origin.clone(), |k| k.origin.clone());
                    let place = if dotted.is_empty() {
                        "at the top level".to_string()
                    } else {
                        format!("in `{dotted}`")
                    };
                    let mut p = Problem::error(origin, format!("unknown key `{key}` {place}"))
                        .expected(format!("one of: {}", allowed.join(", ")));
                    if let Some(hint) = did_you_mean(key, allowed.iter().map(String::as_str)) {
                        p = p.hint(hint);
                    }
                    problems.push(p);
                }
            }
            _ if only_unknown_keys => {}
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let full = if dotted.is_empty() {
                    name.to_string()
                } else {
                    format!("{dotted}.{name}")
                };
                let origin = tree
                    .key_at_pointer(&pointer)
                    .map_or_else(|| node.origin.clone(), |k| k.origin.clone());
                problems.push(
                    Problem::error(origin, format!("missing required key `{full}`"))
                        .hint(format!("add `{name}:` here, in the shared section or in every environment's section")),
                );
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    jsonschema::error::TypeKind::Single(t) => t.to_string(),
                    jsonschema::error::TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                problems.push(
                    Problem::error(
                        node.origin.clone(),
                        format!("`{dotted}` has the wrong type"),
                    )
                    .expected(expected)
                    .found(found),
                );
            }
            ValidationErrorKind::Enum { options } => {
                let opts: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut p = Problem::error(
                    node.origin.clone(),
                    format!("`{dotted}` is not an allowed value"),
                )
                .expected(format!("one of: {}", opts.join(", ")))
                .found(found);
                if let Some(text) = node.as_str()
                    && let Some(hint) = did_you_mean(text, opts.iter().map(String::as_str))
                {
                    p = p.hint(hint);
                }
                problems.push(p);
            }
            ValidationErrorKind::Pattern { pattern } => {
                let expected = if pattern.contains("ms|s|m|h") {
                    "a duration such as 500ms, 30s, 5m or 1h".to_string()
                } else if pattern == crate::snapshot::format::COMPRESSION_PATTERN {
                    "a compression: auto, none, zstd[:1-22], gzip[:1-9] or lz4[:1-12]".to_string()
                } else {
                    format!("text matching `{pattern}`")
                };
                problems.push(
                    Problem::error(
                        node.origin.clone(),
                        format!("`{dotted}` is not in the expected form"),
                    )
                    .expected(expected)
                    .found(found),
                );
            }
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => {
                problems.push(
                    Problem::error(node.origin.clone(), format!("`{dotted}` is too small"))
                        .expected(format!("at least {limit}"))
                        .found(found),
                );
            }
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => {
                problems.push(
                    Problem::error(node.origin.clone(), format!("`{dotted}` is too large"))
                        .expected(format!("at most {limit}"))
                        .found(found),
                );
            }
            ValidationErrorKind::AnyOf { .. } if pointer.starts_with("/hooks/") => {
                problems.push(
                    Problem::error(node.origin.clone(), format!("`{dotted}` is not a hook"))
                        .expected("a list of strings, the program and its arguments (e.g. [deploy/hooks/check, --quick]), or a shell command as one string")
                        .found(found),
                );
            }
            _ => {
                // Other keywords: the library's message with the value masked.
                problems.push(Problem::error(
                    node.origin.clone(),
                    format!("`{dotted}`: {}", error.masked()),
                ));
            }
        }
    }
    problems
}

/// Refuses secrets written into `deployment.yml` (before interpolation, so
/// `${JWT_SECRET}` is fine and a literal is not).
pub fn secrets_in_file(tree: &Node, declared_secrets: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(tree, &mut String::new(), &mut |path, key, node| {
        let Some(text) = node.as_str() else { return };
        let interpolated_only = text.trim().starts_with("${") && text.trim().ends_with('}');
        let named_secret =
            secrets::is_secret_name(key) || declared_secrets.iter().any(|s| s == key);
        if (named_secret && !interpolated_only && !text.trim().is_empty())
            || secrets::url_has_password(text)
        {
            problems.push(
                Problem::error(node.origin.clone(), format!("`{path}` holds a secret written into deployment.yml"))
                    .found(crate::secret::REDACTED)
                    .expected("a reference such as `${NAME}`, with the value in .env.<env>")
                    .hint("move the value into deploy/config/environments/.env.<env> (git-ignored, mode 600) and reference it here as ${NAME}; if it was committed, rotate it"),
            );
        }
    });
    problems
}

fn walk(node: &Node, path: &mut String, f: &mut impl FnMut(&str, &str, &Node)) {
    match &node.value {
        Value::Map(entries) => {
            for (key, child) in entries {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.name);
                f(path, &key.name, child);
                walk(child, path, f);
                path.truncate(len);
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| walk(i, path, f)),
        _ => {}
    }
}

/// `/app/build/context` → `app.build.context`.
pub fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn is_secret_path(pointer: &str) -> bool {
    pointer
        .rsplit('/')
        .next()
        .is_some_and(secrets::is_secret_name)
}

/// Values from `.env` files and the process environment are never echoed:
/// those are where secrets live, whatever the variable is called.
fn from_environment(origin: &Origin) -> bool {
    matches!(origin, Origin::EnvFile { .. } | Origin::ProcessEnv { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::json_schema::settings_schema;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn yaml(text: &str) -> Node {
        super::super::raw::parse(text, &Arc::new(PathBuf::from("d.yml"))).unwrap()
    }

    const VALID: &str = "app:\n  name: events\n  build:\n    dockerfile: Dockerfile\ndatabase:\n  mode: container\n  image: pg\n  migrations: migrations\n";

    #[test]
    fn valid_tree_has_no_problems() {
        assert_eq!(
            schema_problems(&yaml(VALID), &settings_schema(), false),
            vec![]
        );
    }

    #[test]
    fn every_error_at_once_with_positions() {
        let text = "app:\n  name: events\n  prot: 8080\n  build:\n    dockerfile: Dockerfile\ndatabase:\n  mode: contaner\n  image: pg\n  migrations: migrations\nhealth:\n  healthy_threshold: many\n  interval: 5 seconds\ndeployment:\n  keep_releases: 0\n";
        let problems = schema_problems(&yaml(text), &settings_schema(), false);
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let all = rendered.join("\n");
        assert_eq!(problems.len(), 5, "{all}");
        assert!(
            all.contains("d.yml:3:3: error: unknown key `prot` in `app`"),
            "{all}"
        );
        assert!(all.contains("did you mean `port`?"), "{all}");
        assert!(
            all.contains("d.yml:7:9: error: `database.mode` is not an allowed value"),
            "{all}"
        );
        assert!(all.contains("did you mean `container`?"), "{all}");
        assert!(
            all.contains("d.yml:11:22: error: `health.healthy_threshold` has the wrong type"),
            "{all}"
        );
        assert!(all.contains("d.yml:12:13"), "{all}");
        assert!(all.contains("a duration such as"), "{all}");
        assert!(
            all.contains("d.yml:14:18: error: `deployment.keep_releases` is too small"),
            "{all}"
        );
    }

    #[test]
    fn snapshot_when_takes_one_of_its_two_values() {
        let with = |when: &str| format!("{VALID}  snapshots:\n    when: {when}\n");
        for ok in ["when_migrating", "always"] {
            assert_eq!(
                schema_problems(&yaml(&with(ok)), &settings_schema(), false),
                vec![]
            );
        }
        let problems = schema_problems(&yaml(&with("allways")), &settings_schema(), false);
        let all: String = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 1, "{all}");
        assert!(
            all.contains("d.yml:10:11: error: `database.snapshots.when` is not an allowed value"),
            "{all}"
        );
        assert!(all.contains("one of: when_migrating, always"), "{all}");
        assert!(all.contains("did you mean `always`?"), "{all}");
    }

    #[test]
    fn snapshot_compression_and_format_are_checked_with_their_choices() {
        let text = format!(
            "{VALID}  snapshots:\n    compression: zstd:30\n    format: dir\n    jobs: 0\n"
        );
        let problems = schema_problems(&yaml(&text), &settings_schema(), false);
        let all: String = problems.iter().map(|p| format!("{p}\n")).collect();
        assert_eq!(problems.len(), 3, "{all}");
        assert!(
            all.contains(
                "d.yml:10:18: error: `database.snapshots.compression` is not in the expected form"
            ),
            "{all}"
        );
        assert!(
            all.contains("auto, none, zstd[:1-22], gzip[:1-9] or lz4[:1-12]"),
            "{all}"
        );
        assert!(
            all.contains("`database.snapshots.format` is not an allowed value"),
            "{all}"
        );
        assert!(all.contains("one of: custom, directory"), "{all}");
        assert!(
            all.contains("`database.snapshots.jobs` is too small"),
            "{all}"
        );
        let ok = format!(
            "{VALID}  snapshots:\n    compression: gzip:6\n    format: directory\n    jobs: 4\n"
        );
        assert_eq!(
            schema_problems(&yaml(&ok), &settings_schema(), false),
            vec![]
        );
    }

    #[test]
    fn missing_required_key_points_at_parent() {
        let problems = schema_problems(
            &yaml("app:\n  name: x\n  build: {dockerfile: D}\n"),
            &settings_schema(),
            false,
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .message
                .contains("missing required key `database`")
        );
    }

    #[test]
    fn literal_secrets_in_file_are_refused_and_not_shown() {
        let tree = yaml(
            "app:\n  env:\n    JWT_SECRET: canary-literal\n    API_TOKEN: ${API_TOKEN}\n    LOG_LEVEL: info\n    UPSTREAM: postgres://u:canary-pw@db/x\n",
        );
        let problems = secrets_in_file(&tree, &[]);
        assert_eq!(problems.len(), 2);
        let all: String = problems.iter().map(|p| p.to_string()).collect();
        assert!(!all.contains("canary"), "{all}");
        assert!(all.contains("d.yml:3:17"), "{all}");
    }
}
