//! Database snapshots: verified `pg_dump` archives with a JSON sidecar,
//! taken next to the database, kept for a retention period.
//!
//! ```no_run
//! # async fn demo() -> Result<(), slipway_core::snapshot::SnapshotError> {
//! use slipway_core::secret::Secret;
//! use slipway_core::snapshot::{self, CreateOptions, DumpSite};
//!
//! let site = DumpSite::container("togather-db");
//! let url = Secret::new("postgres://app:pw@127.0.0.1:5432/events");
//! let snap = snapshot::create(&site, &url, &CreateOptions::new("snapshots", "a1b2c3d", "pre-deploy")).await?;
//! let report = snapshot::restore(&site, &url, &snap.path, &Default::default()).await?;
//! # let _ = report; Ok(()) }
//! ```
//!
//! - [`owner`]: whose snapshot it is (app and environment), and where its
//!   directory is (`<dir>/<app>/<environment>/`).
//! - [`naming`]: `{app}_{env}_{db}_{YYYYMMDDTHHMMSSZ}_{commit}.dump` and back.
//! - [`private_dir`]: files 600, directories 700 (they hold the whole database).
//! - [`retention`]: which snapshots expire (pure, clock injected).
//! - [`sidecar`]: the `{name}.json` beside each dump, written atomically.
//! - [`site`]: where the tools run ([`DumpSite`]); the only code using Docker.
//! - [`dump`]: create (stream, hash, verify); [`restore`]: restore.
//! - [`format`]: archive format and compression, chosen for the site's pg_dump.
//! - [`directory`]: the directory format (`-Fd -j N`) kept as one tar.
//! - [`store`]: list and prune a snapshot directory.
//! - [`probe`]: schema version and tool version at the site.

pub mod directory;
pub mod dump;
pub mod error;
pub mod format;
pub mod naming;
pub mod owner;
pub mod private_dir;
pub mod probe;
pub mod restore;
pub mod retention;
pub mod sidecar;
pub mod site;
pub mod store;

pub use dump::{CreateOptions, DEFAULT_COMPRESSION, DEFAULT_JOBS, Snapshot, create};
pub use error::SnapshotError;
pub use format::{ArchiveFormat, Compression};
pub use naming::{SnapshotName, commit_label};
pub use owner::Owner;
pub use restore::{RestoreOptions, RestoreReport, restore};
pub use retention::{DEFAULT_RETENTION, expired};
pub use sidecar::Sidecar;
pub use site::DumpSite;
pub use store::{
    Listing, PruneReport, SnapshotEntry, identify, latest, list, list_all, prepare, prune,
};
