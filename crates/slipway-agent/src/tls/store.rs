//! Certificates, keys and ACME accounts on the state volume:
//!
//! ```text
//! <state-dir>/tls/                      0700
//!   hosts.json                          which hosts are served, from where, with which policy
//!   custom/<host>.pem                   0600: chain, then key (one file: one atomic write)
//!   acme/<sha256(directory)[..16]>/     one directory per ACME directory URL
//!     directory                         the URL itself, for people
//!     account.json                      0600: account credentials (private key)
//!     <host>.pem                        0600: chain, then key
//! ```
//!
//! Every file is written whole: temp file, fsync, rename, fsync directory.
//! A wildcard host `*.example.org` is stored as `_wildcard.example.org`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Acme,
    Custom,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acme => "acme",
            Self::Custom => "custom",
        }
    }
}

/// One served host as `hosts.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub source: SourceKind,
    /// The ACME directory its certificate came from (acme only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    pub redirect_http: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts_max_age_secs: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct HostsFile {
    #[serde(default)]
    hosts: BTreeMap<String, HostRecord>,
}

pub struct TlsStore {
    root: PathBuf,
}

fn file_name(host: &str) -> String {
    match host.strip_prefix("*.") {
        Some(parent) => format!("_wildcard.{parent}.pem"),
        None => format!("{host}.pem"),
    }
}

impl TlsStore {
    /// `<state-dir>/tls`, created 0700 (tightened if it exists).
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let root = state_dir.join("tls");
        private_dir(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn hosts(&self) -> std::io::Result<BTreeMap<String, HostRecord>> {
        let path = self.root.join("hosts.json");
        match fs_err::read(&path) {
            Ok(bytes) => serde_json::from_slice::<HostsFile>(&bytes)
                .map(|f| f.hosts)
                .map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not valid: {e}", path.display()),
                    )
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    pub fn save_hosts(&self, hosts: &BTreeMap<String, HostRecord>) -> std::io::Result<()> {
        let file = HostsFile {
            hosts: hosts.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        write_atomic(&self.root.join("hosts.json"), &bytes)
    }

    /// Where a host's custom certificate lives.
    pub fn custom_file(&self, host: &str) -> PathBuf {
        self.root.join("custom").join(file_name(host))
    }

    /// The directory of one ACME directory URL (created 0700).
    pub fn acme_dir(&self, directory: &str) -> std::io::Result<PathBuf> {
        let hash = hex::encode(sha2::Sha256::digest(directory.as_bytes()));
        let parent = self.root.join("acme");
        private_dir(&parent)?;
        let dir = parent.join(&hash[..16]);
        private_dir(&dir)?;
        let marker = dir.join("directory");
        if !marker.exists() {
            write_atomic(&marker, format!("{directory}\n").as_bytes())?;
        }
        Ok(dir)
    }

    pub fn acme_file(&self, directory: &str, host: &str) -> std::io::Result<PathBuf> {
        Ok(self.acme_dir(directory)?.join(file_name(host)))
    }
}

/// A chain + key file: `(cert_pem, key_pem)`, `None` if absent.
pub fn read_pair(path: &Path) -> std::io::Result<Option<(String, String)>> {
    let text = match fs_err::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The key block follows the chain; both stay PEM so tools can read them.
    match key_start(&text) {
        Some(i) => Ok(Some((text[..i].to_owned(), text[i..].to_owned()))),
        None => Ok(Some((text, String::new()))),
    }
}

fn key_start(text: &str) -> Option<usize> {
    [
        "-----BEGIN PRIVATE KEY",
        "-----BEGIN EC PRIVATE KEY",
        "-----BEGIN RSA PRIVATE KEY",
    ]
    .iter()
    .filter_map(|m| text.find(m))
    .min()
}

pub fn write_pair(path: &Path, cert_pem: &str, key_pem: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let mut bytes = Vec::with_capacity(cert_pem.len() + key_pem.len() + 1);
    bytes.extend_from_slice(cert_pem.as_bytes());
    if !cert_pem.ends_with('\n') {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(key_pem.as_bytes());
    write_atomic(path, &bytes)
}

/// A directory only the agent's user can enter (tightened if it exists).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::create_dir_all(dir)?;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Write `bytes` to `path` whole and durably, mode 0600: a crash leaves the
/// old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    let mut out = fs_err::File::from_parts(options.open(&tmp)?, &tmp);
    // A temp file left by a crash may have other bits: set them anyway.
    out.file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    out.write_all(bytes)?;
    out.sync_all()?;
    drop(out);
    fs_err::rename(&tmp, path)?;
    fs_err::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_pairs_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TlsStore::open(dir.path()).expect("open");
        let path = store.custom_file("*.example.org");
        assert!(path.ends_with("custom/_wildcard.example.org.pem"));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n";
        write_pair(&path, cert, key).expect("write");
        let mode = fs_err::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs_err::metadata(path.parent().expect("parent"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(
            read_pair(&path).expect("read"),
            Some((cert.to_owned(), key.to_owned()))
        );
        assert_eq!(read_pair(&dir.path().join("none.pem")).expect("read"), None);
    }

    #[test]
    fn acme_files_are_scoped_by_directory_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TlsStore::open(dir.path()).expect("open");
        let a = store
            .acme_file("https://a.example/dir", "x.org")
            .expect("a");
        let b = store
            .acme_file("https://b.example/dir", "x.org")
            .expect("b");
        assert_ne!(a, b);
        let marker = a.parent().expect("parent").join("directory");
        assert_eq!(
            fs_err::read_to_string(marker).expect("marker"),
            "https://a.example/dir\n"
        );
    }

    #[test]
    fn hosts_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TlsStore::open(dir.path()).expect("open");
        assert!(store.hosts().expect("empty").is_empty());
        let mut hosts = BTreeMap::new();
        hosts.insert(
            "a.example.org".to_owned(),
            HostRecord {
                source: SourceKind::Acme,
                directory: Some("https://ca/dir".into()),
                redirect_http: false,
                hsts_max_age_secs: Some(60),
            },
        );
        store.save_hosts(&hosts).expect("save");
        assert_eq!(store.hosts().expect("read"), hosts);
    }
}
