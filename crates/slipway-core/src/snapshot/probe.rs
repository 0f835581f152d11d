//! Small questions asked at the dump site with `psql`/`pg_dump`: the schema
//! version in the database (for the sidecar and after a restore) and the
//! client tool's version. Asked where the dump runs, so they need no network
//! path from the caller to the database.

use super::error::SnapshotError;
use super::site::{DumpSite, PgConn};

/// golang-migrate's version, read without failing when `schema_migrations`
/// does not exist (query_to_xml runs the inner query only when the CASE
/// reaches it, so a missing table is not a parse error).
const SCHEMA_VERSION_SQL: &str = "SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN '' \
ELSE coalesce((xpath('/row/v/text()', query_to_xml('SELECT version::text || ''|'' || dirty::text AS v FROM schema_migrations LIMIT 1', false, true, '')))[1]::text, '') END";

/// (version, dirty) as `schema_migrations` holds it; `(None, false)` when the
/// table is missing or empty.
pub async fn schema_version(
    site: &DumpSite,
    conn: &PgConn,
) -> Result<(Option<u64>, bool), SnapshotError> {
    let out = site
        .run_small(
            conn,
            "psql",
            &[
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                SCHEMA_VERSION_SQL,
            ],
        )
        .await?;
    Ok(parse_schema_version(&out))
}

/// `pg_dump --version` at the site, e.g. `pg_dump (PostgreSQL) 17.2`.
pub async fn pg_dump_version(site: &DumpSite, conn: &PgConn) -> Result<String, SnapshotError> {
    let out = site.run_small(conn, "pg_dump", &["--version"]).await?;
    Ok(out.trim().to_string())
}

/// Parses `psql -At` output of [`SCHEMA_VERSION_SQL`]: `12|false`, or empty.
pub fn parse_schema_version(out: &str) -> (Option<u64>, bool) {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let Some((version, dirty)) = line.split_once('|') else {
        return (None, false);
    };
    let dirty = matches!(dirty, "true" | "t");
    // -1 is golang-migrate's "no version" (kept when dirty).
    (version.parse::<u64>().ok(), dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_psql_output() {
        assert_eq!(parse_schema_version("12|false\n"), (Some(12), false));
        assert_eq!(parse_schema_version("3|true"), (Some(3), true));
        assert_eq!(parse_schema_version("-1|true"), (None, true));
        assert_eq!(parse_schema_version("\n"), (None, false));
        assert_eq!(parse_schema_version(""), (None, false));
    }
}
