//! The migration files on disk, in golang-migrate's layout:
//! `NNNN_name.up.sql` / `NNNN_name.down.sql` in one directory.
//!
//! [`MigrationSet::load`] reads and validates the whole directory up front
//! (names, duplicates, the no-transaction marker), so a runner never starts
//! applying a set it would later find broken. Gaps between versions are fine,
//! as in golang-migrate (timestamps are common versions).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::MigrateError;
use super::sql_text;

/// First line that makes a file run outside a transaction (needed for
/// `CREATE INDEX CONCURRENTLY` and friends).
pub const NO_TRANSACTION_MARKER: &str = "-- slipway:no-transaction";

/// The marker without its comment dashes, for lenient matching.
const MARKER_WORD: &str = "slipway:no-transaction";

/// Direction of a migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
        })
    }
}

/// How a file's SQL is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransactionMode {
    /// Default: the file and its bookkeeping commit together or not at all.
    Transaction,
    /// First line `-- slipway:no-transaction`: statements run one by one in
    /// autocommit, the version is marked dirty until the file completes.
    NoTransaction,
    /// The file has its own top-level `BEGIN`/`COMMIT` (written for
    /// golang-migrate): run as-is, like golang-migrate, with the dirty mark.
    FileManaged,
}

/// One `.up.sql` or `.down.sql` file.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationFile {
    pub path: PathBuf,
    pub file_name: String,
    #[serde(skip)]
    pub sql: String,
    /// Hex SHA-256 of the file's bytes.
    pub checksum: String,
    pub mode: TransactionMode,
}

/// One version: its up file and, optionally, its down file.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    pub version: u64,
    /// The part of the up file's name between `NNNN_` and `.up.sql`.
    pub name: String,
    pub up: MigrationFile,
    pub down: Option<MigrationFile>,
}

/// A validated migrations directory, ordered by version.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationSet {
    pub dir: PathBuf,
    migrations: Vec<Migration>,
}

/// A file name split into golang-migrate's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName {
    pub version: u64,
    pub name: String,
    pub direction: Direction,
}

/// Parses `NNNN_name.up.sql` / `NNNN_name.down.sql`; the error says what is
/// wrong with the name.
pub fn parse_file_name(file_name: &str) -> Result<ParsedName, String> {
    let stem = file_name
        .strip_suffix(".sql")
        .ok_or_else(|| "it does not end in `.sql`".to_string())?;
    let (rest, direction) = if let Some(rest) = stem.strip_suffix(".up") {
        (rest, Direction::Up)
    } else if let Some(rest) = stem.strip_suffix(".down") {
        (rest, Direction::Down)
    } else {
        return Err("it ends in neither `.up.sql` nor `.down.sql`".to_string());
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 {
        return Err("it does not start with a version number".to_string());
    }
    let (digits, after) = rest.split_at(digits_end);
    let name = after
        .strip_prefix('_')
        .ok_or_else(|| "the version number is not followed by `_`".to_string())?;
    let version = digits
        .parse::<u64>()
        .map_err(|_| format!("version `{digits}` is too large"))?;
    // golang-migrate stores versions in a bigint column.
    if version > i64::MAX as u64 {
        return Err(format!(
            "version `{digits}` does not fit PostgreSQL's bigint"
        ));
    }
    Ok(ParsedName {
        version,
        name: name.to_string(),
        direction,
    })
}

/// Hex SHA-256 of `bytes`: the checksum recorded per applied file.
pub fn checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The transaction mode a file's text asks for, or the line of a misplaced
/// marker.
pub fn transaction_mode(sql: &str) -> Result<TransactionMode, usize> {
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    let mut lines = sql.lines();
    let first_is_marker = lines.next().is_some_and(is_marker_line);
    if first_is_marker {
        return Ok(TransactionMode::NoTransaction);
    }
    if let Some(n) = lines.position(is_marker_line) {
        // A marker below line 1 would be silently ignored: refuse instead.
        return Err(n + 2);
    }
    if sql_text::has_transaction_control(sql) {
        return Ok(TransactionMode::FileManaged);
    }
    Ok(TransactionMode::Transaction)
}

fn is_marker_line(line: &str) -> bool {
    line.trim()
        .strip_prefix("--")
        .is_some_and(|rest| rest.trim().eq_ignore_ascii_case(MARKER_WORD))
}

impl MigrationSet {
    /// Reads and validates every migration file in `dir`. Files not ending in
    /// `.sql` (README, .keep) are ignored; a `.sql` file whose name does not
    /// parse is an error naming it, since it was almost certainly meant to run.
    pub fn load(dir: &Path) -> Result<Self, MigrateError> {
        let entries = fs_err::read_dir(dir).map_err(|source| MigrateError::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut ups: BTreeMap<u64, (ParsedName, MigrationFile)> = BTreeMap::new();
        let mut downs: BTreeMap<u64, (ParsedName, MigrationFile)> = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| MigrateError::ReadDir {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if !file_name.ends_with(".sql") {
                tracing::debug!(file = %file_name, "ignoring non-.sql file in migrations directory");
                continue;
            }
            let parsed =
                parse_file_name(&file_name).map_err(|reason| MigrateError::BadFileName {
                    file: path.clone(),
                    reason,
                })?;
            let bytes = fs_err::read(&path).map_err(|source| MigrateError::ReadFile {
                path: path.clone(),
                source,
            })?;
            let checksum = checksum(&bytes);
            let sql = String::from_utf8(bytes)
                .map_err(|_| MigrateError::NotUtf8 { file: path.clone() })?;
            let mode = transaction_mode(&sql).map_err(|line| MigrateError::MisplacedMarker {
                file: path.clone(),
                line,
            })?;
            let file = MigrationFile {
                path,
                file_name,
                sql,
                checksum,
                mode,
            };
            let slot = match parsed.direction {
                Direction::Up => &mut ups,
                Direction::Down => &mut downs,
            };
            if let Some((_, existing)) = slot.get(&parsed.version) {
                // Keep the error stable whatever order read_dir returns.
                let (first, second) = if existing.file_name <= file.file_name {
                    (existing.file_name.clone(), file.file_name.clone())
                } else {
                    (file.file_name.clone(), existing.file_name.clone())
                };
                return Err(MigrateError::DuplicateVersion {
                    version: parsed.version,
                    direction: parsed.direction,
                    first,
                    second,
                });
            }
            slot.insert(parsed.version, (parsed, file));
        }
        if let Some((version, (_, down))) = downs.iter().find(|(v, _)| !ups.contains_key(v)) {
            return Err(MigrateError::MissingUp {
                version: *version,
                down: down.file_name.clone(),
            });
        }
        let migrations = ups
            .into_iter()
            .map(|(version, (parsed, up))| Migration {
                version,
                name: parsed.name,
                up,
                down: downs.remove(&version).map(|(_, f)| f),
            })
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            migrations,
        })
    }

    /// The highest version, if the directory has any migration.
    pub fn latest_version(&self) -> Option<u64> {
        self.migrations.last().map(|m| m.version)
    }

    /// All migrations, lowest version first.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    pub fn get(&self, version: u64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// The highest version strictly below `version` (where a `down` lands).
    pub fn previous_version(&self, version: u64) -> Option<u64> {
        self.migrations
            .iter()
            .rev()
            .find(|m| m.version < version)
            .map(|m| m.version)
    }

    /// Migrations above `current` (all of them for a fresh database), in order:
    /// golang-migrate's notion of "pending".
    pub fn pending_after(&self, current: Option<u64>) -> impl Iterator<Item = &Migration> {
        self.migrations
            .iter()
            .filter(move |m| current.is_none_or(|c| m.version > c))
    }

    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    pub fn len(&self) -> usize {
        self.migrations.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        fs_err::write(dir.join(name), body).expect("write test file");
    }

    #[test]
    fn parses_golang_migrate_names() {
        let p = parse_file_name("0001_create_events.up.sql").expect("valid name");
        assert_eq!(
            p,
            ParsedName {
                version: 1,
                name: "create_events".into(),
                direction: Direction::Up
            }
        );
        let p = parse_file_name("20240101120000_add.index.down.sql").expect("valid name");
        assert_eq!(p.version, 20240101120000);
        assert_eq!(p.name, "add.index");
        assert_eq!(p.direction, Direction::Down);
        assert_eq!(
            parse_file_name("7_.up.sql")
                .expect("empty name is allowed")
                .name,
            ""
        );
    }

    #[test]
    fn rejects_bad_names_with_a_reason() {
        for (name, reason) in [
            ("create_events.up.sql", "version number"),
            ("0001-create.up.sql", "followed by `_`"),
            ("0001_create.sql", "neither"),
            ("0001_create.up.txt", "`.sql`"),
            ("99999999999999999999_x.up.sql", "too large"),
            ("9223372036854775808_x.up.sql", "bigint"),
        ] {
            let err = parse_file_name(name).expect_err(name);
            assert!(err.contains(reason), "{name}: {err}");
        }
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            checksum(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(checksum(b"SELECT 1;"), checksum(b"SELECT 1; "));
    }

    #[test]
    fn transaction_mode_from_first_line() {
        assert_eq!(
            transaction_mode("-- slipway:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);"),
            Ok(TransactionMode::NoTransaction)
        );
        assert_eq!(
            transaction_mode("\u{feff}--Slipway:No-Transaction  \nSELECT 1;"),
            Ok(TransactionMode::NoTransaction)
        );
        assert_eq!(
            transaction_mode("CREATE TABLE t();"),
            Ok(TransactionMode::Transaction)
        );
        assert_eq!(
            transaction_mode("BEGIN;\nCREATE TABLE t();\nCOMMIT;"),
            Ok(TransactionMode::FileManaged)
        );
        assert_eq!(
            transaction_mode("CREATE TABLE t();\n\n-- slipway:no-transaction\n"),
            Err(3)
        );
    }

    #[test]
    fn load_orders_pairs_and_ignores_non_sql() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "0002_b.up.sql", "SELECT 2;");
        write(dir.path(), "0010_c.up.sql", "SELECT 10;");
        write(dir.path(), "0001_a.up.sql", "SELECT 1;");
        write(dir.path(), "0001_a.down.sql", "SELECT -1;");
        write(dir.path(), "README.md", "not a migration");
        let set = MigrationSet::load(dir.path()).expect("valid set");
        let versions: Vec<u64> = set.migrations().iter().map(|m| m.version).collect();
        assert_eq!(versions, vec![1, 2, 10]);
        assert_eq!(set.latest_version(), Some(10));
        assert!(set.get(1).and_then(|m| m.down.as_ref()).is_some());
        assert!(set.get(2).and_then(|m| m.down.as_ref()).is_none());
        assert_eq!(set.previous_version(10), Some(2));
        assert_eq!(set.previous_version(1), None);
        let pending: Vec<u64> = set.pending_after(Some(1)).map(|m| m.version).collect();
        assert_eq!(pending, vec![2, 10]);
        assert_eq!(set.pending_after(None).count(), 3);
        assert_eq!(
            set.get(1).map(|m| m.up.checksum.clone()),
            Some(checksum(b"SELECT 1;"))
        );
    }

    #[test]
    fn load_rejects_duplicates_naming_both_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "0001_a.up.sql", "SELECT 1;");
        write(dir.path(), "1_b.up.sql", "SELECT 1;");
        let err = MigrationSet::load(dir.path()).expect_err("duplicate");
        let msg = err.to_string();
        assert!(
            msg.contains("0001_a.up.sql") && msg.contains("1_b.up.sql"),
            "{msg}"
        );
    }

    #[test]
    fn load_rejects_unparsable_sql_names_and_orphan_downs() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "0001_a.up.sql", "SELECT 1;");
        write(dir.path(), "create_users.sql", "SELECT 1;");
        let msg = MigrationSet::load(dir.path())
            .expect_err("bad name")
            .to_string();
        assert!(msg.contains("create_users.sql"), "{msg}");

        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "0001_a.up.sql", "SELECT 1;");
        write(dir.path(), "0002_b.down.sql", "SELECT 1;");
        let msg = MigrationSet::load(dir.path())
            .expect_err("orphan down")
            .to_string();
        assert!(msg.contains("0002_b.down.sql"), "{msg}");
    }

    #[test]
    fn load_rejects_misplaced_marker_and_missing_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "0001_a.up.sql",
            "SELECT 1;\n-- slipway:no-transaction\n",
        );
        let msg = MigrationSet::load(dir.path())
            .expect_err("marker")
            .to_string();
        assert!(
            msg.contains("0001_a.up.sql") && msg.contains("line 2"),
            "{msg}"
        );

        let missing = dir.path().join("nope");
        let msg = MigrationSet::load(&missing)
            .expect_err("missing")
            .to_string();
        assert!(msg.contains("nope"), "{msg}");
    }
}
