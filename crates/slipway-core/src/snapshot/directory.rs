//! The directory format (`pg_dump -Fd -j N`) kept as one file: at the dump
//! site pg_dump writes the directory into a temporary directory with N
//! parallel jobs, then `tar` streams it out and the directory is removed; on
//! this side it is one `.dump` file like any other, so retention, checksums
//! and listing do not know the difference.
//!
//! Verifying does not send the archive back: the tar is read through here
//! (every member whole), its `toc.dat` alone goes to `pg_restore --list` at
//! the site, and every `TABLE DATA` entry of that listing must have its data
//! file in the tar. Restoring streams the tar into the site, unpacks it in a
//! temporary directory and runs `pg_restore -Fd` on it (see
//! [`super::restore`]).
//!
//! The site needs free space for the compressed archive in its temporary
//! directory (`$TMPDIR`, else `/tmp`) while a dump or a restore runs.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::dump::CHUNK;
use super::error::SnapshotError;
use super::site::{DumpSite, PgConn, collect_stderr, spawn};

/// pg_dump -Fd -j "$1" -Z "$2" into a temporary directory, then the
/// directory as a tar on stdout. The directory is removed however it ends.
const DUMP_SCRIPT: &str = r#"set -e
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
pg_dump -Fd -j "$1" -Z "$2" --no-password -f "$d/archive"
cd "$d/archive"
tar -cf - .
"#;

/// A tar on stdin unpacked into a temporary directory, then
/// `pg_restore "$@" <dir>`. Used for `--list` and for restores.
const RESTORE_SCRIPT: &str = r#"set -e
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
tar -xf - -C "$d"
pg_restore "$@" "$d"
"#;

/// The name of the archive's table of contents in a directory archive.
const TOC: &str = "toc.dat";

/// The command that streams a directory-format dump out as a tar.
pub fn dump_command(site: &DumpSite, conn: &PgConn, compression_arg: &str, jobs: u32) -> Command {
    let jobs = jobs.max(1).to_string();
    site.command(
        conn,
        "sh",
        &["-c", DUMP_SCRIPT, "sh", &jobs, compression_arg],
        false,
    )
}

/// The command that unpacks a tar from stdin at the site and runs
/// `pg_restore <args> <dir>` on it.
pub fn restore_command(site: &DumpSite, conn: &PgConn, pg_restore_args: &[&str]) -> Command {
    let mut args = vec!["-c", RESTORE_SCRIPT, "sh"];
    args.extend_from_slice(pg_restore_args);
    site.command(conn, "sh", &args, true)
}

/// What a tar holds: the table of contents and the names of its files.
struct TarContents {
    toc: Vec<u8>,
    files: HashSet<String>,
}

/// Verifies a directory-format archive written at `path` (see the module
/// docs). Returns the number of TOC entries.
pub async fn verify(site: &DumpSite, conn: &PgConn, path: &Path) -> Result<usize, SnapshotError> {
    let fail = |reason: String| SnapshotError::Verify {
        path: path.to_path_buf(),
        stderr: reason,
    };
    let owned = path.to_path_buf();
    let contents = tokio::task::spawn_blocking(move || read_tar(&owned))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|e| fail(format!("the tar is damaged: {e}")))?;
    let listing = list_toc(site, conn, &contents.toc)
        .await
        .map_err(|e| match e {
            SnapshotError::ToolFailed { status, stderr, .. } => fail(format!("{status}: {stderr}")),
            other => fail(other.to_string()),
        })?;
    let missing = missing_data_files(&listing, &contents.files);
    if !missing.is_empty() {
        return Err(fail(format!(
            "the table of contents names data files the tar lacks: {}",
            missing.join(", ")
        )));
    }
    Ok(toc_entries(&listing))
}

/// Reads the whole tar through one buffer: every member must be as long as
/// its header says; `toc.dat` is kept.
fn read_tar(path: &Path) -> std::io::Result<TarContents> {
    let file = std::io::BufReader::with_capacity(CHUNK, std::fs::File::open(path)?);
    let mut archive = tar::Archive::new(file);
    let mut toc = None;
    let mut files = HashSet::new();
    let mut sink = vec![0u8; CHUNK];
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let expected = entry.size();
        let mut read: u64 = 0;
        if name == TOC {
            let mut bytes = Vec::new();
            read = entry.read_to_end(&mut bytes)? as u64;
            toc = Some(bytes);
        } else {
            loop {
                let n = entry.read(&mut sink)?;
                if n == 0 {
                    break;
                }
                read += n as u64;
            }
        }
        if read != expected {
            return Err(std::io::Error::other(format!(
                "`{name}` is cut short ({read} of {expected} bytes)"
            )));
        }
        files.insert(name);
    }
    let toc = toc.ok_or_else(|| std::io::Error::other(format!("it has no `{TOC}`")))?;
    Ok(TarContents { toc, files })
}

/// `pg_restore --list` at the site on a directory holding only `toc.dat`.
async fn list_toc(site: &DumpSite, conn: &PgConn, toc: &[u8]) -> Result<String, SnapshotError> {
    let mut tar_bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut tar_bytes);
        let mut header = tar::Header::new_gnu();
        header.set_size(toc.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder
            .append_data(&mut header, TOC, toc)
            .and_then(|()| builder.finish())
            .map_err(|source| SnapshotError::Io {
                doing: "packing the table of contents".into(),
                source,
            })?;
    }
    let mut child = spawn(restore_command(site, conn, &["--list"]))?;
    let stderr = collect_stderr(&mut child);
    let stdin = child.stdin.take();
    let feeder = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            stdin.write_all(&tar_bytes).await?;
            stdin.shutdown().await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut listing = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut listing)
            .await
            .map_err(|source| SnapshotError::Io {
                doing: "reading pg_restore --list output".into(),
                source,
            })?;
    }
    site.finish(conn, "pg_restore", child, stderr).await?;
    feeder
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|source| SnapshotError::Io {
            doing: "sending the table of contents to pg_restore --list".into(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&listing).into_owned())
}

/// Entries of a `pg_restore --list` listing (comments and blank lines aside).
pub fn toc_entries(listing: &str) -> usize {
    listing
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .count()
}

/// `TABLE DATA` entries whose `<dumpId>.dat[.gz|.zst|.lz4]` is not among
/// `files`, as `dumpId (schema table)`.
fn missing_data_files(listing: &str, files: &HashSet<String>) -> Vec<String> {
    let has = |id: &str| {
        ["", ".gz", ".zst", ".lz4"]
            .iter()
            .any(|ext| files.contains(&format!("{id}.dat{ext}")))
    };
    listing
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|line| {
            let (id, rest) = line.split_once(';')?;
            let what = rest.split_once(" TABLE DATA ")?.1;
            (!has(id.trim())).then(|| format!("{} ({})", id.trim(), what.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = ";\n; Archive created at 2025-01-01\n;\n\
        5; 2615 2200 SCHEMA - public pg_database_owner\n\
        4321; 0 16390 TABLE DATA public events postgres\n\
        4322; 0 16400 TABLE DATA public tags postgres\n";

    #[test]
    fn every_table_data_entry_needs_its_file() {
        let files: HashSet<String> = ["toc.dat", "4321.dat.zst"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            missing_data_files(LISTING, &files),
            vec!["4322 (public tags postgres)".to_string()]
        );
        let mut all = files;
        all.insert("4322.dat.gz".into());
        assert!(missing_data_files(LISTING, &all).is_empty());
        assert_eq!(toc_entries(LISTING), 3);
    }

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut b = tar::Builder::new(&mut out);
            for (name, data) in members {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o600);
                h.set_cksum();
                b.append_data(&mut h, format!("./{name}"), *data)
                    .expect("append");
            }
            b.finish().expect("finish");
        }
        out
    }

    #[test]
    fn a_whole_tar_is_read_and_a_cut_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = vec![7u8; CHUNK + 100];
        let bytes = tar_of(&[("toc.dat", b"TOC"), ("4321.dat.zst", &data)]);
        let path = dir.path().join("whole.dump");
        fs_err::write(&path, &bytes).expect("write");
        let got = read_tar(&path).expect("whole tar");
        assert_eq!(got.toc, b"TOC");
        assert!(got.files.contains("4321.dat.zst"));

        // Cut in the middle of the data file.
        let cut = dir.path().join("cut.dump");
        fs_err::write(&cut, &bytes[..1024 + CHUNK / 2]).expect("write");
        let err = read_tar(&cut).err().expect("cut tar is refused");
        assert!(!err.to_string().is_empty());

        // No table of contents at all.
        let none = dir.path().join("none.dump");
        fs_err::write(&none, tar_of(&[("4321.dat", b"x")])).expect("write");
        let err = read_tar(&none).err().expect("no toc");
        assert!(err.to_string().contains("toc.dat"), "{err}");
    }
}
