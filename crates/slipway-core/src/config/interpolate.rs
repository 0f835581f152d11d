//! `${VAR}` and `${VAR:-default}` in configuration values; `$$` is a literal
//! `$`. Variables come from the process environment first, then the
//! environment's `.env` file, whose own values may reference other
//! variables; a chain that comes back to itself is an error, not a hang.

use std::collections::BTreeMap;

use super::dotenv::EnvEntry;
use super::origin::Origin;

/// The variables interpolation can see, in precedence order.
pub struct Variables<'a> {
    pub process: &'a BTreeMap<String, String>,
    pub dotenv: &'a [EnvEntry],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterpolationError {
    Unset { name: String },
    Cycle { chain: Vec<String> },
    Syntax { message: String },
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unset { name } => write!(
                f,
                "variable `{name}` is referenced but not set (set it in the .env file or the environment, or write `${{{name}:-default}}`)"
            ),
            Self::Cycle { chain } => {
                write!(f, "variable references itself: {}", chain.join(" -> "))
            }
            Self::Syntax { message } => f.write_str(message),
        }
    }
}

/// A resolved variable: its final value and where it was defined.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub value: String,
    pub origin: Origin,
}

impl Variables<'_> {
    /// Looks a variable up (process environment wins over `.env`), expanding
    /// references inside `.env` values.
    pub fn lookup(&self, name: &str) -> Result<Option<Resolved>, InterpolationError> {
        self.lookup_inner(name, &mut Vec::new())
    }

    fn lookup_inner(
        &self,
        name: &str,
        stack: &mut Vec<String>,
    ) -> Result<Option<Resolved>, InterpolationError> {
        if let Some(value) = self.process.get(name) {
            return Ok(Some(Resolved {
                value: value.clone(),
                origin: Origin::ProcessEnv {
                    name: name.to_string(),
                },
            }));
        }
        let Some(entry) = self.dotenv.iter().find(|e| e.name == name) else {
            return Ok(None);
        };
        if entry.literal {
            return Ok(Some(Resolved {
                value: entry.value.clone(),
                origin: entry.origin.clone(),
            }));
        }
        if stack.iter().any(|s| s == name) {
            let mut chain = stack.clone();
            chain.push(name.to_string());
            return Err(InterpolationError::Cycle { chain });
        }
        stack.push(name.to_string());
        let value = self.expand_inner(&entry.value, stack)?;
        stack.pop();
        Ok(Some(Resolved {
            value,
            origin: entry.origin.clone(),
        }))
    }

    /// Expands every `${...}` in `text`.
    pub fn expand(&self, text: &str) -> Result<String, InterpolationError> {
        self.expand_inner(text, &mut Vec::new())
    }

    fn expand_inner(
        &self,
        text: &str,
        stack: &mut Vec<String>,
    ) -> Result<String, InterpolationError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(body) = after.strip_prefix('{') {
                let end = body.find('}').ok_or_else(|| InterpolationError::Syntax {
                    message: "`${` without a closing `}`".into(),
                })?;
                let expr = &body[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if !super::dotenv::is_valid_name(name) {
                    return Err(InterpolationError::Syntax {
                        message: format!("`${{{expr}}}` does not name a variable"),
                    });
                }
                match (self.lookup_inner(name, stack)?, default) {
                    (Some(r), Some(d)) if r.value.is_empty() => {
                        out.push_str(&self.expand_inner(d, stack)?)
                    }
                    (Some(r), _) => out.push_str(&r.value),
                    (None, Some(d)) => out.push_str(&self.expand_inner(d, stack)?),
                    (None, None) => {
                        return Err(InterpolationError::Unset {
                            name: name.to_string(),
                        });
                    }
                }
                rest = &body[end + 1..];
            } else {
                // A lone `$` (e.g. in a password pattern) is kept as written.
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The names a text references, for reporting which variables a value uses.
pub fn references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let body = &rest[i + 2..];
        let Some(end) = body.find('}') else { break };
        let expr = &body[..end];
        names.push(expr.split_once(":-").map_or(expr, |(n, _)| n).to_string());
        rest = &body[end + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn dotenv(text: &str) -> Vec<EnvEntry> {
        super::super::dotenv::parse(text, &Arc::new(PathBuf::from(".env.x"))).unwrap()
    }

    #[test]
    fn process_wins_and_defaults_apply() {
        let process = BTreeMap::from([("PORT".to_string(), "9000".to_string())]);
        let d = dotenv("PORT=8080\nHOST=db\n");
        let v = Variables {
            process: &process,
            dotenv: &d,
        };
        assert_eq!(v.expand("${HOST}:${PORT}").unwrap(), "db:9000");
        assert_eq!(v.expand("${MISSING:-x}-$$-${HOST:-y}").unwrap(), "x-$-db");
        assert_eq!(
            v.expand("${NOPE}").unwrap_err(),
            InterpolationError::Unset {
                name: "NOPE".into()
            }
        );
    }

    #[test]
    fn dotenv_values_reference_each_other_and_cycles_fail() {
        let process = BTreeMap::new();
        let d = dotenv("PW=s3\nURL=postgres://u:${PW}@db/x\nA=${B}\nB=${A}\nSELF=${SELF}\n");
        let v = Variables {
            process: &process,
            dotenv: &d,
        };
        assert_eq!(v.expand("${URL}").unwrap(), "postgres://u:s3@db/x");
        assert!(matches!(
            v.expand("${A}"),
            Err(InterpolationError::Cycle { .. })
        ));
        let err = v.expand("${SELF}").unwrap_err();
        assert_eq!(
            err,
            InterpolationError::Cycle {
                chain: vec!["SELF".into(), "SELF".into()]
            }
        );
    }

    #[test]
    fn syntax_errors() {
        let process = BTreeMap::new();
        let v = Variables {
            process: &process,
            dotenv: &[],
        };
        assert!(matches!(
            v.expand("${OPEN"),
            Err(InterpolationError::Syntax { .. })
        ));
        assert!(matches!(
            v.expand("${1x}"),
            Err(InterpolationError::Syntax { .. })
        ));
        assert_eq!(references("a ${X} b ${Y:-1}"), vec!["X", "Y"]);
    }
}
