//! Whether a release has migrations to apply, decided before the snapshot
//! and in milliseconds: one `psql` exec in the database container reads
//! `schema_migrations` and `slipway_migrations` (local connections are
//! trusted, so no password), compared with the release's migration files
//! this machine has. Starting the one-off migrate container only to hear
//! "nothing pending" took about a second.
//!
//! The answer is `Nothing` only when the runner itself would do nothing:
//! not dirty, no file after the current version, every applied file
//! recorded with the same checksum. Anything else (pending files, a dirty
//! or edited state, versions to adopt, an external database, a database
//! without the tables yet) sends the deploy down the full path, where the
//! runner applies, adopts or refuses with its own message.

use std::collections::BTreeMap;
use std::path::Path;

use slipway_core::config::schema::DatabaseMode;
use slipway_core::migrate::MigrationSet;
use slipway_core::migrate::schema_migrations::{SCHEMA_MIGRATIONS, SLIPWAY_MIGRATIONS};

use super::TaskContext;

/// Where a release's migrations stand against the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// The runner would apply nothing: the database is at `version`.
    Nothing { version: Option<u64> },
    /// These versions would be applied, from `from`.
    Some {
        from: Option<u64>,
        versions: Vec<u64>,
    },
    /// Not decided here; the migrate step's runner decides (and says why).
    Unknown { reason: String },
}

/// One round trip: both tables' existence, then their rows, tagged.
const SCRIPT: &str = "SELECT to_regclass('schema_migrations') IS NOT NULL \
     AND to_regclass('slipway_migrations') IS NOT NULL AS ready \\gset\n\
     \\if :ready\n\
     (SELECT 'v', version::text, dirty::text FROM schema_migrations LIMIT 1)\n\
     UNION ALL (SELECT 'r', version::text, checksum FROM slipway_migrations);\n\
     \\else\n\
     SELECT 'none';\n\
     \\endif\n";

/// Where the release's migrations in `dir` stand against the environment's
/// database. Never fails: what cannot be decided here is `Unknown`.
pub async fn pending_migrations(ctx: &TaskContext<'_>, dir: &Path) -> Pending {
    let unknown = |reason: String| Pending::Unknown { reason };
    let db = &ctx.config.settings.database;
    if db.mode != DatabaseMode::Container {
        return unknown("an external database is read by the migrate step".into());
    }
    let set = match MigrationSet::load(dir) {
        Ok(set) => set,
        Err(e) => return unknown(format!("the migration files do not load here: {e}")),
    };
    let container = ctx.names.database();
    let out = ctx
        .engine
        .exec(
            &container,
            &psql_command(&db.user, &db.name),
            Some(SCRIPT.as_bytes()),
        )
        .await;
    let out = match out {
        Ok(out) if out.code == 0 => out.stdout_text(),
        Ok(out) => {
            let stderr = out.stderr_text();
            if stderr.contains(&format!("database \"{}\" does not exist", db.name)) {
                return fresh(&set);
            }
            return unknown(format!(
                "reading {SCHEMA_MIGRATIONS} in {container} failed: {}",
                stderr.trim()
            ));
        }
        Err(e) => return unknown(format!("reading {SCHEMA_MIGRATIONS} failed: {e}")),
    };
    match parse(&out) {
        Some(Rows::NoTables) => fresh(&set),
        Some(Rows::Tables {
            version,
            dirty,
            checksums,
        }) => decide(&set, version, dirty, &checksums),
        None => unknown(format!(
            "unexpected answer reading {SCHEMA_MIGRATIONS}: {}",
            out.trim()
        )),
    }
}

/// A database without the bookkeeping tables: every file is pending, and
/// with no files the runner still creates the tables, so it runs.
fn fresh(set: &MigrationSet) -> Pending {
    let versions: Vec<u64> = set.migrations().iter().map(|m| m.version).collect();
    if versions.is_empty() {
        return Pending::Unknown {
            reason: format!("{SCHEMA_MIGRATIONS} and {SLIPWAY_MIGRATIONS} do not exist yet"),
        };
    }
    Pending::Some {
        from: None,
        versions,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Rows {
    NoTables,
    Tables {
        version: Option<u64>,
        dirty: bool,
        checksums: BTreeMap<u64, String>,
    },
}

/// psql's tab-separated, tagged rows.
fn parse(out: &str) -> Option<Rows> {
    let mut version = None;
    let mut dirty = false;
    let mut checksums = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["none"] => return Some(Rows::NoTables),
            ["v", v, d] => {
                // -1 is golang-migrate's "no version" (kept when dirty).
                version = v.parse::<i64>().ok().and_then(|v| u64::try_from(v).ok());
                dirty = *d == "true";
            }
            ["r", v, sum] => {
                checksums.insert(v.parse().ok()?, sum.to_string());
            }
            _ => return None,
        }
    }
    Some(Rows::Tables {
        version,
        dirty,
        checksums,
    })
}

/// The runner's own rules for `up`, minus the writing.
fn decide(
    set: &MigrationSet,
    version: Option<u64>,
    dirty: bool,
    checksums: &BTreeMap<u64, String>,
) -> Pending {
    let unknown = |reason: &str| Pending::Unknown {
        reason: reason.into(),
    };
    if dirty {
        return unknown("the database is dirty");
    }
    let edited = checksums
        .iter()
        .any(|(v, sum)| set.get(*v).is_some_and(|m| &m.up.checksum != sum));
    if edited {
        return unknown("an applied migration file was edited");
    }
    let to_adopt = set
        .migrations()
        .iter()
        .any(|m| version.is_some_and(|c| m.version <= c) && !checksums.contains_key(&m.version));
    if to_adopt {
        return unknown("versions applied before Slipway are to be recorded");
    }
    let versions: Vec<u64> = set.pending_after(version).map(|m| m.version).collect();
    if versions.is_empty() {
        Pending::Nothing { version }
    } else {
        Pending::Some {
            from: version,
            versions,
        }
    }
}

/// `psql` as `user` on `db` over the container's unix socket, reading the
/// script from stdin: tab-separated, unaligned rows, stopping at the first
/// error.
fn psql_command<'a>(user: &'a str, db: &'a str) -> [&'a str; 11] {
    [
        "psql",
        "-X",
        "-At",
        "-F",
        "\t",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        user,
        "-d",
        db,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, sql) in files {
            fs_err::write(dir.path().join(name), sql).expect("write");
        }
        let set = MigrationSet::load(dir.path()).expect("loads");
        (dir, set)
    }

    #[test]
    fn nothing_is_pending_only_where_the_runner_would_do_nothing() {
        let (_d, s) = set(&[
            ("0001_a.up.sql", "SELECT 1;\n"),
            ("0002_b.up.sql", "SELECT 2;\n"),
        ]);
        let sums: BTreeMap<u64, String> = s
            .migrations()
            .iter()
            .map(|m| (m.version, m.up.checksum.clone()))
            .collect();
        assert_eq!(
            decide(&s, Some(2), false, &sums),
            Pending::Nothing { version: Some(2) }
        );
        let one: BTreeMap<u64, String> = sums.clone().into_iter().take(1).collect();
        assert_eq!(
            decide(&s, Some(1), false, &one),
            Pending::Some {
                from: Some(1),
                versions: vec![2]
            }
        );
        assert!(matches!(
            decide(&s, Some(2), true, &sums),
            Pending::Unknown { .. }
        ));
        let mut edited = sums.clone();
        edited.insert(1, "0".repeat(64));
        assert!(matches!(
            decide(&s, Some(2), false, &edited),
            Pending::Unknown { .. }
        ));
        assert!(matches!(
            decide(&s, Some(2), false, &one),
            Pending::Unknown { .. }
        ));
        // The database ahead of the files (an older release): nothing to apply.
        assert_eq!(
            decide(&s, Some(7), false, &sums),
            Pending::Nothing { version: Some(7) }
        );
        assert_eq!(
            fresh(&s),
            Pending::Some {
                from: None,
                versions: vec![1, 2]
            }
        );
    }

    #[test]
    fn psql_rows_parse_by_tag() {
        assert_eq!(parse("none\n"), Some(Rows::NoTables));
        let rows = parse("v\t4\tfalse\nr\t1\tabc\nr\t4\tdef\n").expect("parses");
        assert_eq!(
            rows,
            Rows::Tables {
                version: Some(4),
                dirty: false,
                checksums: BTreeMap::from([(1, "abc".into()), (4, "def".into())]),
            }
        );
        let dirty = parse("v\t-1\ttrue\n").expect("parses");
        assert!(matches!(
            dirty,
            Rows::Tables {
                version: None,
                dirty: true,
                ..
            }
        ));
        assert_eq!(parse("garbage\n"), None);
    }

    /// Real engine, real PostgreSQL: the script runs in psql as written.
    #[tokio::test]
    async fn the_script_reads_both_tables_in_one_exec() {
        let pg = slipway_testkit::PgContainer::start();
        let engine = crate::providers::docker::Engine::connect(None)
            .await
            .expect("local engine");
        let name = pg.container_name();
        pg.create_database("app");
        let run = |sql: &'static str| {
            let engine = &engine;
            async move {
                let out = engine
                    .exec(name, &psql_command("postgres", "app"), Some(sql.as_bytes()))
                    .await
                    .expect("exec");
                assert_eq!(out.code, 0, "{}", out.stderr_text());
                out.stdout_text()
            }
        };
        assert_eq!(parse(&run(SCRIPT).await), Some(Rows::NoTables));
        run("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
             CREATE TABLE slipway_migrations (version bigint PRIMARY KEY, checksum text NOT NULL);
             INSERT INTO schema_migrations VALUES (3, false);
             INSERT INTO slipway_migrations VALUES (3, 'abc');")
        .await;
        assert_eq!(
            parse(&run(SCRIPT).await),
            Some(Rows::Tables {
                version: Some(3),
                dirty: false,
                checksums: BTreeMap::from([(3, "abc".into())]),
            })
        );
    }
}
