//! `.env.<env>` files: `KEY=value` lines, parsed with their line numbers so
//! errors and `config show` can name `file:line`.
//!
//! Hand-written rather than `dotenvy` because we need each entry's position
//! and must never echo a value in an error. Supported: `#` comments, an
//! optional `export ` prefix, single quotes (literal), double quotes
//! (`\n`, `\"`, `\\` escapes), unquoted values (trimmed, ` #` starts a comment).

use std::path::PathBuf;
use std::sync::Arc;

use super::origin::Origin;

#[derive(Clone, Debug, PartialEq)]
pub struct EnvEntry {
    pub name: String,
    /// Raw value: interpolation (`${VAR}`) is applied later, except inside
    /// single quotes, which are literal.
    pub value: String,
    pub literal: bool,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnvParseError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

pub fn parse(text: &str, path: &Arc<PathBuf>) -> Result<Vec<EnvEntry>, Vec<EnvParseError>> {
    let mut entries: Vec<EnvEntry> = Vec::new();
    let mut errors = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line_no = index as u64 + 1;
        let line = raw_line.trim_start();
        let indent = (raw_line.len() - line.len()) as u64;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, rest)) = line.split_once('=') else {
            errors.push(EnvParseError {
                line: line_no,
                column: indent + 1,
                message: "expected KEY=value (no `=` on this line)".into(),
            });
            continue;
        };
        let name = name.trim_end();
        if !is_valid_name(name) {
            errors.push(EnvParseError {
                line: line_no,
                column: indent + 1,
                message: format!(
                    "`{name}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
                ),
            });
            continue;
        }
        let value_column = (raw_line.len() - rest.len()) as u64 + 1;
        match parse_value(rest.trim_start()) {
            Ok((value, literal)) => {
                let origin = Origin::EnvFile {
                    path: path.clone(),
                    line: line_no,
                    column: value_column,
                    name: name.to_string(),
                };
                // A later line wins, as in shells and docker compose.
                entries.retain(|e| e.name != name);
                entries.push(EnvEntry {
                    name: name.to_string(),
                    value,
                    literal,
                    origin,
                });
            }
            Err(message) => errors.push(EnvParseError {
                line: line_no,
                column: value_column,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(rest: &str) -> Result<(String, bool), String> {
    if let Some(body) = rest.strip_prefix('\'') {
        let end = body.find('\'').ok_or("unterminated single quote")?;
        check_trailing(&body[end + 1..])?;
        return Ok((body[..end].to_string(), true));
    }
    if let Some(body) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    check_trailing(&body[i + 1..])?;
                    return Ok((out, false));
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other @ ('"' | '\\' | '$')) => {
                        if other == '$' {
                            // Keep `$$` so interpolation sees an escaped dollar.
                            out.push('$');
                        }
                        out.push(other)
                    }
                    Some(other) => {
                        out.push('\\');
                        out.push(other)
                    }
                    None => return Err("unterminated double quote".into()),
                },
                c => out.push(c),
            }
        }
        return Err("unterminated double quote".into());
    }
    let value = match rest.find(" #") {
        Some(i) => &rest[..i],
        None => rest,
    };
    Ok((value.trim_end().to_string(), false))
}

fn check_trailing(after: &str) -> Result<(), String> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Arc<PathBuf> {
        Arc::new(PathBuf::from(".env.production"))
    }

    #[test]
    fn parses_forms_with_positions() {
        let text =
            "# c\nA=1\nexport B = two words # note\nC='lit ${X}'\nD=\"q \\\"x\\\" \\n\"\nA=again\n";
        let e = parse(text, &p()).unwrap();
        let get = |n: &str| e.iter().find(|x| x.name == n).unwrap();
        assert_eq!(get("A").value, "again");
        assert_eq!(get("A").origin.to_string(), ".env.production:6:3");
        assert_eq!(get("B").value, "two words");
        assert!(get("C").literal);
        assert_eq!(get("C").value, "lit ${X}");
        assert_eq!(get("D").value, "q \"x\" \n");
    }

    #[test]
    fn errors_name_line_and_never_the_value() {
        let errs = parse(
            "GOOD=1\nno equals sign secret-canary\n1BAD=x\nQ=\"open\n",
            &p(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].line, 2);
        assert_eq!(errs[1].line, 3);
        assert_eq!(errs[2].line, 4);
        assert!(errs.iter().all(|e| !e.message.contains("secret-canary")));
    }
}
