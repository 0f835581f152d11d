//! Snapshot formats and compressions on the real PostgreSQL 17 image: a
//! snapshot in each format (custom with the default zstd, directory with
//! parallel jobs as one tar, custom with gzip as older servers get) restores
//! to an identical database, compared by row count and checksum of every
//! table and the sequences; a parallel restore that fails leaves the live
//! database as it was and no side database behind.

use std::collections::BTreeMap;

use slipway_core::migrate::{MigrationSet, Runner, RunnerOptions};
use slipway_core::snapshot::restore::RestoreMethod;
use slipway_core::snapshot::{
    self, ArchiveFormat, Compression, CreateOptions, DumpSite, RestoreOptions, Sidecar,
};
use tokio_postgres::Client;

use crate::support::{TestDb, migrations, scalar_i64, test_db};

/// Extensions, several tables of different shapes (geography, vector,
/// jsonb, a foreign key, an empty table) and a sequence moved past its rows.
async fn seed(db: &TestDb) {
    let dir = migrations(&[
        (
            "0001_extensions.up.sql",
            "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pg_trgm;",
        ),
        (
            "0002_schema.up.sql",
            "CREATE TABLE events (id bigserial PRIMARY KEY, title text NOT NULL, starts_at timestamptz NOT NULL,
                                  location geography(Point, 4326), embedding vector(8));
             CREATE INDEX events_title_trgm ON events USING gin (title gin_trgm_ops);
             CREATE TABLE tags (id serial PRIMARY KEY, name text UNIQUE NOT NULL, meta jsonb);
             CREATE TABLE event_tags (event_id bigint REFERENCES events(id), tag_id int REFERENCES tags(id), PRIMARY KEY (event_id, tag_id));
             CREATE TABLE audit_empty (id bigserial PRIMARY KEY, note text);",
        ),
    ]);
    let set = MigrationSet::load(dir.path()).expect("load");
    let mut runner = Runner::connect(&db.url, RunnerOptions::default())
        .await
        .expect("connect");
    runner.up(&set, None).await.expect("up");
    let (client, _t) = db.client().await;
    client
        .batch_execute(
            "INSERT INTO events (title, starts_at, location, embedding)
             SELECT 'event ' || g || ' ' || md5(g::text), timestamptz '2025-01-01' + g * interval '1 minute',
                    ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326)::geography,
                    ARRAY[g, g * 0.5, -g, 1, 2, 3, 4, g % 7]::real[]::vector
               FROM generate_series(1, 3000) g;
             INSERT INTO tags (name, meta) SELECT 'tag' || g, jsonb_build_object('n', g, 'even', g % 2 = 0) FROM generate_series(1, 50) g;
             INSERT INTO event_tags SELECT e, 1 + e % 50 FROM generate_series(1, 3000) e;
             SELECT setval('audit_empty_id_seq', 41);",
        )
        .await
        .expect("seed rows");
}

/// Row count and md5 of every user table (rows ordered by their text), and
/// every sequence's last value: equal fingerprints, identical contents.
async fn fingerprint(client: &Client) -> BTreeMap<String, String> {
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
              ORDER BY 1",
            &[],
        )
        .await
        .expect("list tables");
    let mut out = BTreeMap::new();
    for row in tables {
        let name: String = row.get(0);
        let kind: String = row.get(1);
        let sql = if kind == "S" {
            format!("SELECT last_value::text || '/' || is_called::text FROM {name}")
        } else {
            format!(
                "SELECT count(*)::text || '/' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {name} t"
            )
        };
        let value: String = client.query_one(&sql, &[]).await.expect(&sql).get(0);
        out.insert(name, value);
    }
    out
}

/// `pg_restore --list` of an archive, run in the database container (the
/// directory format unpacked there first): its header names the compression.
fn archive_listing(container: &str, path: &std::path::Path, format: ArchiveFormat) -> String {
    let script = match format {
        ArchiveFormat::Custom => "pg_restore --list",
        ArchiveFormat::Directory => {
            "set -e; d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; tar -xf - -C \"$d\"; pg_restore --list \"$d\""
        }
    };
    let out = std::process::Command::new("docker")
        .args(["exec", "-i", container, "sh", "-c", script])
        .stdin(
            fs_err::File::open(path)
                .expect("open archive")
                .into_parts()
                .0,
        )
        .output()
        .expect("docker exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Slipway's restore side databases of `db` (other tests share the server).
async fn side_databases(client: &Client, db: &str) -> i64 {
    scalar_i64(
        client,
        &format!("SELECT count(*) FROM pg_database WHERE datname IN ('{db}_slipway_restore', '{db}_slipway_replaced')"),
    )
    .await
}

/// Damage after the snapshot: rows gone, a table dropped, a row added.
async fn damage(client: &Client) {
    client
        .batch_execute(
            "DELETE FROM event_tags WHERE event_id > 100; DROP TABLE audit_empty;
             UPDATE tags SET meta = NULL; INSERT INTO tags (name) VALUES ('after-snapshot');",
        )
        .await
        .expect("damage");
}

async fn round_trip(prefix: &str, format: ArchiveFormat, compression: Compression) {
    let db = test_db(prefix);
    seed(&db).await;
    let (client, _t) = db.client().await;
    let before = fingerprint(&client).await;
    assert!(
        before.len() >= 8,
        "tables and sequences fingerprinted: {before:?}"
    );
    assert_eq!(before["public.events"].split('/').next(), Some("3000"));

    let dir = tempfile::tempdir().expect("tempdir");
    let site = DumpSite::container(db.pg.container_name());
    let mut opts = CreateOptions::new(dir.path(), "abc1234", "test");
    opts.format = format;
    opts.compression = compression;
    opts.jobs = 2;
    let snap = snapshot::create(&site, &db.url, &opts)
        .await
        .expect("create");
    let sidecar = Sidecar::read(&snap.sidecar_path).expect("sidecar");
    assert_eq!(sidecar.archive_format, format);
    let bytes = fs_err::read(&snap.path).expect("read archive");
    assert_eq!(sidecar.size_bytes, bytes.len() as u64);
    assert_eq!(
        sidecar.sha256,
        slipway_core::migrate::source::checksum(&bytes)
    );
    match format {
        ArchiveFormat::Custom => {
            assert!(bytes.starts_with(b"PGDMP"));
            assert_eq!(sidecar.jobs, None);
        }
        ArchiveFormat::Directory => {
            assert_eq!(&bytes[257..262], b"ustar", "one tar on disk");
            assert_eq!(sidecar.jobs, Some(2));
        }
    }
    assert!(snap.toc_entries > 10, "{}", snap.toc_entries);
    let expected_label = match compression {
        Compression::Auto => "zstd:1".to_string(),
        other => other.to_string(),
    };
    assert_eq!(
        sidecar.compression.as_deref(),
        Some(expected_label.as_str())
    );
    // The archive says the same about itself.
    let header = archive_listing(db.pg.container_name(), &snap.path, format).to_lowercase();
    let method = expected_label.split(':').next().unwrap_or_default();
    assert!(
        header.contains(&format!("compression: {method}")),
        "{header}"
    );

    damage(&client).await;
    assert_ne!(fingerprint(&client).await, before);
    drop(client);

    let report = snapshot::restore(&site, &db.url, &snap.path, &RestoreOptions::default())
        .await
        .expect("restore");
    assert!(report.checksum_verified);
    assert_eq!(report.format, format);
    assert_eq!(report.schema_version, Some(2));
    match format {
        ArchiveFormat::Custom => {
            assert_eq!(report.method, RestoreMethod::SingleTransaction);
            assert_eq!(report.jobs, 1);
        }
        ArchiveFormat::Directory => {
            assert_eq!(report.method, RestoreMethod::NewDatabaseSwapped);
            assert_eq!(report.jobs, 2);
        }
    }
    let (client, _t) = db.client().await;
    assert_eq!(
        fingerprint(&client).await,
        before,
        "identical after restore"
    );
    assert_eq!(
        scalar_i64(
            &client,
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_title_trgm'"
        )
        .await,
        1
    );
    assert_eq!(
        side_databases(&client, &db.name).await,
        0,
        "no side database left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_format_with_default_zstd_restores_to_an_identical_database() {
    round_trip("fmt_custom", ArchiveFormat::Custom, Compression::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_format_with_parallel_jobs_restores_to_an_identical_database() {
    round_trip("fmt_dir", ArchiveFormat::Directory, Compression::Auto).await;
}

/// What an older server gets (`auto` falls back to gzip level 1 there, in
/// the `-Z 1` syntax those versions take): the same syntax on the real
/// pg_dump makes a gzip archive that restores identically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gzip_fallback_restores_to_an_identical_database() {
    let old = snapshot::format::choose(Compression::Auto, "pg_dump (PostgreSQL) 15.8");
    assert_eq!(old.arg, "1", "pre-16 syntax");
    round_trip(
        "fmt_gzip",
        ArchiveFormat::Custom,
        Compression::Gzip(Some(1)),
    )
    .await;
    round_trip(
        "fmt_gzip_dir",
        ArchiveFormat::Directory,
        Compression::Gzip(Some(1)),
    )
    .await;
}

/// A directory archive missing a table's data file: pg_restore fails in the
/// side database, which is dropped; the live database keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_parallel_restore_leaves_the_live_database_as_it_was() {
    let db = test_db("fmt_dir_fail");
    seed(&db).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let site = DumpSite::container(db.pg.container_name());
    let mut opts = CreateOptions::new(dir.path(), "abc1234", "test");
    opts.format = ArchiveFormat::Directory;
    let snap = snapshot::create(&site, &db.url, &opts)
        .await
        .expect("create");

    // Copy the tar without its largest data file (the events table's).
    let damaged = dir.path().join("damaged.dump");
    {
        let mut archive = tar::Archive::new(fs_err::File::open(&snap.path).expect("open"));
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).expect("read member");
            members.push((name, data));
        }
        let largest = members
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| !n.ends_with("toc.dat"))
            .max_by_key(|(_, (_, d))| d.len())
            .map(|(i, _)| i)
            .expect("a data file");
        members.remove(largest);
        let mut builder = tar::Builder::new(fs_err::File::create(&damaged).expect("create"));
        for (name, data) in &members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            header.set_cksum();
            builder
                .append_data(&mut header, name, data.as_slice())
                .expect("append");
        }
        builder.finish().expect("finish");
    }

    let (client, _t) = db.client().await;
    damage(&client).await;
    let live = fingerprint(&client).await;
    let err = snapshot::restore(
        &site,
        &db.url,
        &damaged,
        &RestoreOptions {
            verify_checksum: false,
            jobs: 2,
        },
    )
    .await
    .expect_err("a data file is missing");
    let msg = err.to_string();
    assert!(msg.contains("pg_restore"), "{msg}");
    assert!(msg.contains("was not touched"), "{msg}");
    assert!(!msg.contains(db.password()), "{msg}");
    assert_eq!(fingerprint(&client).await, live, "live database unchanged");
    assert_eq!(
        side_databases(&client, &db.name).await,
        0,
        "side database dropped"
    );
}
