//! What is being deployed: the git ref resolved to a commit, and the
//! release id that names the image (`<app>:<release>`). A dirty work tree
//! gets its own id (a hash of the diff), so a cached image is only reused
//! for exactly the same source.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Release {
    /// Names the image tag and the agent's route; short commit, plus
    /// `-dirty<hash>` for uncommitted changes.
    pub id: String,
    pub commit: String,
    /// `git describe` (tag-based version) or the short commit.
    pub version: String,
    /// What the operator asked for (`HEAD` by default).
    pub git_ref: String,
    pub build_date: String,
    pub deployer: String,
    /// Build from this directory (the repository root, or a worktree for `--ref`).
    #[serde(skip)]
    pub source_root: PathBuf,
    #[serde(skip)]
    pub worktree: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ReleaseError {
    pub message: String,
    pub hint: String,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, ReleaseError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| ReleaseError {
            message: format!("cannot run git: {e}"),
            hint: "install git; Slipway names releases after commits".into(),
        })?;
    if !out.status.success() {
        return Err(ReleaseError {
            message: format!("`git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()),
            hint: "run slipway inside the application's git repository, and check the ref exists (`git fetch --tags`)".into(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Resolves `git_ref` (default HEAD) in the repository holding `root`.
/// A ref other than the checked-out commit is built from a temporary
/// worktree, so the operator's checkout is never touched.
pub fn resolve(root: &Path, git_ref: Option<&str>) -> Result<Release, ReleaseError> {
    let wanted = git_ref.unwrap_or("HEAD");
    let commit = git(
        root,
        &["rev-parse", "--verify", &format!("{wanted}^{{commit}}")],
    )?;
    let head = git(root, &["rev-parse", "HEAD"])?;
    let short = &commit[..12.min(commit.len())];
    let version = git(root, &["describe", "--tags", "--always", &commit])
        .unwrap_or_else(|_| short.to_string());
    let deployer = crate::identity::deployer(root);
    let build_date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let (id, source_root, worktree) = if commit == head {
        // Uncommitted changes under the app's root become part of the id.
        let diff = git(root, &["diff", "HEAD", "--", "."])?;
        let untracked = git(
            root,
            &["ls-files", "--others", "--exclude-standard", "--", "."],
        )?;
        let id = if diff.is_empty() && untracked.is_empty() {
            short.to_string()
        } else {
            let mut hasher = Sha256::new();
            hasher.update(diff.as_bytes());
            for file in untracked.lines() {
                hasher.update(file.as_bytes());
                if let Ok(bytes) = fs_err::read(root.join(file)) {
                    hasher.update(&bytes);
                }
            }
            format!("{short}-dirty{}", &hex::encode(hasher.finalize())[..8])
        };
        (id, root.to_path_buf(), None)
    } else {
        let top = PathBuf::from(git(root, &["rev-parse", "--show-toplevel"])?);
        let relative = root
            .strip_prefix(&top)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let tmp = std::env::temp_dir().join(format!("slipway-src-{short}-{}", std::process::id()));
        git(
            root,
            &[
                "worktree",
                "add",
                "--detach",
                "--force",
                &tmp.to_string_lossy(),
                &commit,
            ],
        )?;
        (short.to_string(), tmp.join(relative), Some(tmp))
    };
    Ok(Release {
        id,
        commit,
        version,
        git_ref: wanted.to_string(),
        build_date,
        deployer,
        source_root,
        worktree,
    })
}

impl Release {
    /// A release that was built earlier and is only being recorded again
    /// (rollback, repair of an interrupted deploy): nothing to build from.
    pub fn already_built(
        id: &str,
        commit: &str,
        version: &str,
        git_ref: &str,
        deployer: String,
    ) -> Release {
        Release {
            id: id.to_string(),
            commit: commit.to_string(),
            version: version.to_string(),
            git_ref: git_ref.to_string(),
            build_date: String::new(),
            deployer,
            source_root: PathBuf::new(),
            worktree: None,
        }
    }

    /// Removes the temporary worktree of a `--ref` build, if any.
    pub fn cleanup(&self, root: &Path) {
        if let Some(tree) = &self.worktree {
            let _ = git(
                root,
                &["worktree", "remove", "--force", &tree.to_string_lossy()],
            );
        }
    }
}
