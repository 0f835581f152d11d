//! What a snapshot archive is made of: its format (`pg_dump -Fc`, or
//! `pg_dump -Fd -j N` kept as one tar) and its compression, chosen from what
//! the dump site's `pg_dump` supports.
//!
//! The default, [`Compression::Auto`], is zstd at level 1 on PostgreSQL 16
//! and later: measured on the events shape it is about nine times faster
//! than `-Fc`'s default gzip level 6 for the same archive size. Older
//! `pg_dump`s know only gzip, so there it falls back to gzip level 1 with a
//! note; an explicit zstd or lz4 on such a server falls back the same way
//! with a warning rather than failing the deploy.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The first `pg_dump` major version with `-Z METHOD[:LEVEL]` (zstd, lz4).
pub const FIRST_WITH_ZSTD: u32 = 16;

/// The level `auto` uses for zstd: fast, and as small as gzip 6 here.
pub const AUTO_ZSTD_LEVEL: u8 = 1;
/// The level `auto` uses for gzip on servers before 16.
pub const AUTO_GZIP_LEVEL: u8 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
/// `custom`: one `pg_dump -Fc` file, restored in one transaction.
/// `directory`: `pg_dump -Fd -j jobs`, kept on disk as one tar; restored with `-j jobs`
/// into a new database that replaces the old one only when the restore succeeded.
// Variant docs would turn the schema into `oneOf` consts; one enum list gives better errors.
pub enum ArchiveFormat {
    #[default]
    Custom,
    Directory,
}

impl ArchiveFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Custom => "custom",
            ArchiveFormat::Directory => "directory",
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compression as written in `database.snapshots.compression`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// zstd:1 where pg_dump has it (16+), else gzip:1.
    #[default]
    Auto,
    None,
    Gzip(Option<u8>),
    Zstd(Option<u8>),
    Lz4(Option<u8>),
}

/// The JSON-schema pattern of a compression: the same set [`Compression`]
/// parses, so `config validate` refuses what pg_dump would.
pub const COMPRESSION_PATTERN: &str =
    r"^(auto|none|gzip(:[1-9])?|zstd(:([1-9]|1[0-9]|2[0-2]))?|lz4(:([1-9]|1[0-2]))?)$";

impl FromStr for Compression {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}` is not a snapshot compression (write auto, none, zstd[:1-22], gzip[:1-9] or lz4[:1-12])"
            )
        };
        let (method, level) = match text.split_once(':') {
            Some((m, l)) => (m, Some(l.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let within = |max: u8| match level {
            Some(l) if !(1..=max).contains(&l) => Err(bad()),
            _ => Ok(level),
        };
        match method {
            "auto" if level.is_none() => Ok(Compression::Auto),
            "none" if level.is_none() => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip(within(9)?)),
            "zstd" => Ok(Compression::Zstd(within(22)?)),
            "lz4" => Ok(Compression::Lz4(within(12)?)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, level) = match self {
            Compression::Auto => return f.write_str("auto"),
            Compression::None => return f.write_str("none"),
            Compression::Gzip(l) => ("gzip", l),
            Compression::Zstd(l) => ("zstd", l),
            Compression::Lz4(l) => ("lz4", l),
        };
        match level {
            Some(l) => write!(f, "{method}:{l}"),
            None => f.write_str(method),
        }
    }
}

impl TryFrom<String> for Compression {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Compression> for String {
    fn from(c: Compression) -> String {
        c.to_string()
    }
}

impl Serialize for Compression {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Compression {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Compression".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": COMPRESSION_PATTERN,
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// The compression a dump will use, decided for one `pg_dump`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The `-Z` argument, in the syntax that pg_dump understands.
    pub arg: String,
    /// What was used, as `method:level` (for the sidecar and messages).
    pub label: String,
    /// Said to the operator when the choice is not what was asked for, or
    /// is the slower fallback.
    pub note: Option<String>,
}

/// The major version in `pg_dump --version` output:
/// `pg_dump (PostgreSQL) 17.2 (Debian ...)` → 17, `... 9.6.24` → 9,
/// `... 16beta1` → 16.
pub fn pg_major(version: &str) -> Option<u32> {
    let number = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Chooses the `-Z` argument for `requested` on the `pg_dump` that printed
/// `pg_dump_version`. A version that cannot be read counts as old: gzip
/// works everywhere.
pub fn choose(requested: Compression, pg_dump_version: &str) -> Chosen {
    let major = pg_major(pg_dump_version);
    let modern = major.is_some_and(|m| m >= FIRST_WITH_ZSTD);
    let which = match major {
        Some(m) => format!("pg_dump {m}"),
        None => format!("`{}` (version not recognised)", pg_dump_version.trim()),
    };
    let gzip = |level: u8, note: Option<String>| Chosen {
        arg: if modern {
            format!("gzip:{level}")
        } else {
            level.to_string()
        },
        label: format!("gzip:{level}"),
        note,
    };
    match requested {
        Compression::Auto if modern => Chosen {
            arg: format!("zstd:{AUTO_ZSTD_LEVEL}"),
            label: format!("zstd:{AUTO_ZSTD_LEVEL}"),
            note: None,
        },
        Compression::Auto => gzip(
            AUTO_GZIP_LEVEL,
            Some(format!(
                "{which} has no zstd (PostgreSQL 16 and later): compressing with gzip level {AUTO_GZIP_LEVEL}, which is several times slower on large databases"
            )),
        ),
        Compression::None => Chosen {
            arg: if modern { "none".into() } else { "0".into() },
            label: "none".into(),
            note: None,
        },
        Compression::Gzip(level) => gzip(level.unwrap_or(6), None),
        Compression::Zstd(_) | Compression::Lz4(_) if !modern => gzip(
            AUTO_GZIP_LEVEL,
            Some(format!(
                "database.snapshots.compression is `{requested}`, but {which} supports only gzip (zstd and lz4 need PostgreSQL 16 or later): compressing with gzip level {AUTO_GZIP_LEVEL}. Set it to `auto` or `gzip` to silence this"
            )),
        ),
        other => Chosen {
            arg: other.to_string(),
            label: other.to_string(),
            note: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_are_read_from_real_version_lines() {
        assert_eq!(
            pg_major("pg_dump (PostgreSQL) 17.12 (Debian 17.12-0+deb13u1)"),
            Some(17)
        );
        assert_eq!(
            pg_major("pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)"),
            Some(15)
        );
        assert_eq!(pg_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(pg_major("pg_dump (PostgreSQL) 16beta1"), Some(16));
        assert_eq!(pg_major("something else"), None);
    }

    #[test]
    fn auto_is_zstd_1_from_16_on() {
        for v in ["pg_dump (PostgreSQL) 16.4", "pg_dump (PostgreSQL) 17.2"] {
            let c = choose(Compression::Auto, v);
            assert_eq!((c.arg.as_str(), c.label.as_str()), ("zstd:1", "zstd:1"));
            assert_eq!(c.note, None);
        }
    }

    #[test]
    fn older_servers_fall_back_to_gzip_in_their_own_syntax_with_a_note() {
        let old = "pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)";
        let c = choose(Compression::Auto, old);
        assert_eq!((c.arg.as_str(), c.label.as_str()), ("1", "gzip:1"));
        assert!(
            c.note
                .as_deref()
                .is_some_and(|n| n.contains("pg_dump 15 has no zstd")),
            "{c:?}"
        );
        // An explicit zstd there is not a failed deploy: gzip, and a warning
        // that names the setting.
        let c = choose(Compression::Zstd(Some(3)), old);
        assert_eq!(c.arg, "1");
        assert!(
            c.note.as_deref().is_some_and(
                |n| n.contains("`zstd:3`") && n.contains("database.snapshots.compression")
            ),
            "{c:?}"
        );
        assert_eq!(choose(Compression::Lz4(None), old).label, "gzip:1");
        assert_eq!(choose(Compression::Gzip(Some(9)), old).arg, "9");
        assert_eq!(choose(Compression::Gzip(None), old).arg, "6");
        assert_eq!(choose(Compression::None, old).arg, "0");
        // Unreadable versions are treated as old.
        let c = choose(Compression::Auto, "pg_dump (EnterpriseDB)");
        assert_eq!(c.arg, "1");
        assert!(c.note.is_some_and(|n| n.contains("not recognised")));
    }

    #[test]
    fn explicit_choices_pass_through_on_new_servers() {
        let v = "pg_dump (PostgreSQL) 17.2";
        assert_eq!(choose(Compression::Zstd(Some(5)), v).arg, "zstd:5");
        assert_eq!(choose(Compression::Zstd(None), v).arg, "zstd");
        assert_eq!(choose(Compression::Lz4(None), v).arg, "lz4");
        assert_eq!(choose(Compression::Gzip(None), v).arg, "gzip:6");
        assert_eq!(choose(Compression::None, v).arg, "none");
    }

    #[test]
    fn parse_and_display_round_trip_and_match_the_schema_pattern() {
        let pattern = schema_accepts;
        for text in [
            "auto", "none", "gzip", "gzip:9", "zstd", "zstd:1", "zstd:22", "lz4", "lz4:12",
        ] {
            let c: Compression = text.parse().expect(text);
            assert_eq!(c.to_string(), text);
            assert!(pattern(text), "{text} must match the schema pattern");
        }
        for text in [
            "", "zstd:0", "zstd:23", "gzip:10", "lz4:13", "auto:1", "none:1", "brotli", "6",
            "zstd:", "ZSTD",
        ] {
            let err = text.parse::<Compression>().expect_err(text);
            assert!(err.contains("auto, none, zstd"), "{err}");
            assert!(!pattern(text), "{text} must not match the schema pattern");
        }
    }

    /// The schema pattern checked with the same validator `config validate`
    /// uses.
    fn schema_accepts(text: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": COMPRESSION_PATTERN});
        jsonschema::validator_for(&schema)
            .expect("valid pattern")
            .is_valid(&serde_json::json!(text))
    }
}
