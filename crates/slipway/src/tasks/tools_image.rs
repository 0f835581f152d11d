//! The tools image: `debian:bookworm-slim` (CA certificates included) with
//! this `slipway` binary and the matching `slipway-agent`. One-off tasks
//! (`slipway migrate ... --dir /migrations`) and the long-lived agent run from
//! it. The tag is a hash of both binaries and the recipe, so a rebuilt binary
//! gets a new image and an unchanged one reuses the image already on the
//! engine. No registry is needed: the image is built on the engine itself.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::TaskError;
use crate::exit::Exit;
use crate::providers::docker::Engine;

/// The repository part of the tools image's tag.
pub const TOOLS_REPO: &str = "slipway-tools";
/// The base image (built locally by `scripts/images/build.sh` where no registry exists).
pub const TOOLS_BASE: &str = "debian:bookworm-slim";
/// Where a task's migrations directory is copied inside the tools container.
pub const MIGRATIONS_MOUNT: &str = "/migrations";
/// Environment variable naming the agent binary when it is not next to `slipway`.
pub const AGENT_BIN_ENV: &str = "SLIPWAY_AGENT_BIN";

fn dockerfile() -> String {
    // WORKDIR creates /migrations, so a task can copy files into it without
    // a RUN step (which would need a shell and work inside the build).
    format!(
        "FROM {TOOLS_BASE}\n\
         COPY slipway slipway-agent /usr/local/bin/\n\
         WORKDIR {MIGRATIONS_MOUNT}\n\
         LABEL slipway.managed=true slipway.role=tools\n\
         CMD [\"slipway\", \"--help\"]\n"
    )
}

/// Builds the tools image unless one with the same binaries exists, and
/// returns its tag (`slipway-tools:<12 hex>`). `progress` receives the
/// builder's output lines.
pub async fn ensure_tools_image(
    engine: &Engine,
    progress: &dyn Fn(&str),
) -> Result<String, TaskError> {
    let Inputs {
        cli,
        agent,
        recipe,
        tag,
    } = inputs().await?;
    if engine.image_exists(&tag).await {
        return Ok(tag);
    }
    if !engine.image_exists(TOOLS_BASE).await {
        return Err(TaskError::new(
            Exit::Unavailable,
            format!("the base image {TOOLS_BASE} of the tools image is not on the engine"),
        )
        .hint(format!(
            "pull it (`docker pull {TOOLS_BASE}`) or, without a registry, run scripts/images/build.sh"
        )));
    }
    progress(&format!("building the tools image {tag}"));
    let context = tempfile::tempdir()
        .map_err(|e| TaskError::failed(format!("cannot create a temporary build context: {e}")))?;
    for (from, name) in [(&cli, "slipway"), (&agent, "slipway-agent")] {
        let to = context.path().join(name);
        fs_err::copy(from, &to).map_err(|e| {
            TaskError::failed(format!("cannot copy {name} into the build context: {e}"))
                .hint("check free space in the temporary directory (TMPDIR)")
        })?;
    }
    fs_err::write(context.path().join("Dockerfile"), recipe)
        .map_err(|e| TaskError::failed(format!("cannot write the tools Dockerfile: {e}")))?;
    engine
        .build_image(
            context.path(),
            "Dockerfile",
            std::slice::from_ref(&tag),
            HashMap::new(),
            HashMap::new(),
            progress,
        )
        .await?;
    prune_old_tools_images(engine, &tag).await;
    Ok(tag)
}

/// How many tools images (newest first) survive a new build. Every rebuilt
/// binary makes a new image of a few hundred MB; older ones are removed,
/// except any a container still uses (the engine refuses those) and the
/// newest few, so a concurrent run that has just built its own is spared.
const KEEP_TOOLS_IMAGES: usize = 3;

async fn prune_old_tools_images(engine: &Engine, current: &str) {
    let Ok(images) = engine.images_with_label("slipway.role=tools").await else {
        return;
    };
    for (tag, _, _) in images.iter().skip(KEEP_TOOLS_IMAGES) {
        if tag == current || !tag.starts_with(&format!("{TOOLS_REPO}:")) {
            continue;
        }
        match engine.remove_image(tag).await {
            Ok(()) => tracing::info!(target: "slipway::tasks", "removed the old tools image {tag}"),
            Err(e) => {
                tracing::debug!(target: "slipway::tasks", "kept the old tools image {tag}: {e}")
            }
        }
    }
}

/// The tag of the tools image this slipway would use (built or not), e.g. to
/// tell whether a running agent is this slipway's.
pub async fn tools_image_tag() -> Result<String, TaskError> {
    Ok(inputs().await?.tag)
}

struct Inputs {
    cli: PathBuf,
    agent: PathBuf,
    recipe: String,
    tag: String,
}

async fn inputs() -> Result<Inputs, TaskError> {
    let cli = std::env::current_exe().map_err(|e| {
        TaskError::failed(format!("cannot find the running slipway binary: {e}"))
            .hint("run slipway from a path that exists (not a deleted or replaced file)")
    })?;
    let agent = agent_binary(&cli)?;
    let recipe = dockerfile();
    let digest = tokio::task::spawn_blocking({
        let (cli, agent, recipe) = (cli.clone(), agent.clone(), recipe.clone());
        move || cached_fingerprint(&[&cli, &agent], &recipe, cache_file().as_deref())
    })
    .await
    .map_err(|e| TaskError::failed(format!("hashing the binaries failed: {e}")))??;
    let tag = format!("{TOOLS_REPO}:{}", &digest[..12]);
    Ok(Inputs {
        cli,
        agent,
        recipe,
        tag,
    })
}

/// `slipway-agent`: `$SLIPWAY_AGENT_BIN`, else next to the running binary.
fn agent_binary(cli: &Path) -> Result<PathBuf, TaskError> {
    let (path, from_env) = match std::env::var_os(AGENT_BIN_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (
            cli.with_file_name(format!("slipway-agent{}", std::env::consts::EXE_SUFFIX)),
            false,
        ),
    };
    if path.is_file() {
        return Ok(path);
    }
    let wherefrom = if from_env {
        format!("{AGENT_BIN_ENV} points at {}", path.display())
    } else {
        format!("looked next to slipway: {}", path.display())
    };
    Err(TaskError::new(
        Exit::BadInput,
        format!("the slipway-agent binary is missing ({wherefrom}), so the tools image cannot be built"),
    )
    .hint(format!(
        "build it with `cargo build -p slipway-agent` (same profile as slipway, so it lands next to it), or set {AGENT_BIN_ENV} to its path"
    )))
}

/// Where the last fingerprint is remembered: hashing two debug binaries of
/// ~150 MB each takes tens of seconds, and most runs use the same binaries.
fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("slipway").join("tools-image-fingerprint"))
}

/// The files' identity as the file system sees it (path, size, modification
/// time, inode) plus the recipe: when this is unchanged, so is the content,
/// since replacing or rewriting a binary changes its mtime or inode.
fn identity(files: &[&Path], recipe: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut key = String::new();
    for path in files {
        let meta = fs_err::metadata(path).ok()?;
        key.push_str(&format!(
            "{}:{}:{}.{}:{}|",
            path.display(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino()
        ));
    }
    key.push_str(&hex::encode(Sha256::digest(recipe.as_bytes())));
    Some(key)
}

/// [`fingerprint`], remembered in `cache` (a file holding `identity\ndigest`)
/// for files whose identity has not changed. A cache that cannot be read or
/// written only costs the hashing.
fn cached_fingerprint(
    files: &[&Path],
    recipe: &str,
    cache: Option<&Path>,
) -> Result<String, TaskError> {
    let key = identity(files, recipe);
    if let (Some(key), Some(cache)) = (&key, cache)
        && let Ok(text) = fs_err::read_to_string(cache)
        && let Some((cached_key, digest)) = text.trim_end().split_once('\n')
        && cached_key == key
        && digest.len() == 64
        && digest.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Ok(digest.to_string());
    }
    let digest = fingerprint(files, recipe)?;
    if let (Some(key), Some(cache)) = (key, cache)
        && let Some(dir) = cache.parent()
        && fs_err::create_dir_all(dir).is_ok()
    {
        // Written aside and renamed, so a concurrent reader never sees half.
        let tmp = dir.join(format!(".tools-image-fingerprint.{}", std::process::id()));
        if fs_err::write(&tmp, format!("{key}\n{digest}\n")).is_ok()
            && fs_err::rename(&tmp, cache).is_err()
        {
            let _ = fs_err::remove_file(&tmp);
        }
    }
    Ok(digest)
}

/// Hex sha256 over the binaries' contents and the recipe.
fn fingerprint(files: &[&Path], recipe: &str) -> Result<String, TaskError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in files {
        let mut file = fs_err::File::open(path)
            .map_err(|e| TaskError::failed(format!("cannot read {}: {e}", path.display())))?;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| TaskError::failed(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        // A separator, so moving bytes between the two files changes the hash.
        hasher.update(b"\0slipway-tools\0");
    }
    hasher.update(recipe.as_bytes());
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_either_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs_err::write(&a, b"cli v1").expect("write");
        fs_err::write(&b, b"agent v1").expect("write");
        let first = fingerprint(&[&a, &b], "r").expect("hash");
        assert_eq!(first, fingerprint(&[&a, &b], "r").expect("hash"));
        fs_err::write(&b, b"agent v2").expect("write");
        let second = fingerprint(&[&a, &b], "r").expect("hash");
        assert_ne!(first, second);
        assert_ne!(
            second,
            fingerprint(&[&a, &b], "other recipe").expect("hash")
        );
        assert_eq!(first.len(), 64);
    }

    #[test]
    fn the_cached_fingerprint_follows_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let cache = dir.path().join("cache/fp");
        fs_err::write(&a, b"cli v1").expect("write");
        fs_err::write(&b, b"agent v1").expect("write");
        let first = cached_fingerprint(&[&a, &b], "r", Some(&cache)).expect("hash");
        assert_eq!(first, fingerprint(&[&a, &b], "r").expect("hash"));
        assert!(cache.is_file(), "remembered");
        assert_eq!(
            cached_fingerprint(&[&a, &b], "r", Some(&cache)).expect("hash"),
            first
        );
        // A rewritten binary (new content, new mtime/size) is hashed again.
        fs_err::write(&b, b"agent version 2").expect("write");
        let second = cached_fingerprint(&[&a, &b], "r", Some(&cache)).expect("hash");
        assert_eq!(second, fingerprint(&[&a, &b], "r").expect("hash"));
        assert_ne!(first, second);
        // A corrupt cache is ignored.
        fs_err::write(&cache, "garbage").expect("write");
        assert_eq!(
            cached_fingerprint(&[&a, &b], "r", Some(&cache)).expect("hash"),
            second
        );
    }

    #[test]
    fn missing_agent_says_how_to_build_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = agent_binary(&dir.path().join("slipway")).expect_err("missing");
        assert!(err.message.contains("slipway-agent"), "{err}");
        assert!(
            err.hint
                .as_deref()
                .unwrap_or("")
                .contains("cargo build -p slipway-agent"),
            "{err}"
        );
    }
}
