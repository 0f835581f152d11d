//! Building the release image `<app>:<release>` with version labels. The
//! optional host build command runs first (e.g. compiling a binary into the
//! context). An image already built for the same release is reused, which
//! is what makes a warm redeploy fast.

use std::collections::HashMap;
use std::process::Stdio;

use super::context::{StepError, Target};
use super::progress::Progress;
use super::release::Release;
use crate::providers::docker::names::{LABEL_APP, LABEL_RELEASE};

pub const LABEL_COMMIT: &str = "org.opencontainers.image.revision";
pub const LABEL_VERSION: &str = "org.opencontainers.image.version";
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
pub const LABEL_REF: &str = "slipway.ref";
pub const LABEL_DEPLOYER: &str = "slipway.deployer";

/// Returns whether an image was built (false: reused).
pub async fn image(
    t: &Target,
    release: &Release,
    progress: &Progress<'_>,
) -> Result<bool, StepError> {
    let tag = t.names.image(&release.id);
    if let Some(labels) = t.engine.image_labels(&tag).await
        && labels.get(LABEL_RELEASE) == Some(&release.id)
    {
        progress.note(&format!("image {tag} already built; reusing it"));
        return Ok(false);
    }
    let build = &t.config.settings.app.build;
    let env_vars = [
        ("SLIPWAY_RELEASE", release.id.clone()),
        ("SLIPWAY_GIT_COMMIT", release.commit.clone()),
        ("SLIPWAY_VERSION", release.version.clone()),
        ("SLIPWAY_BUILD_DATE", release.build_date.clone()),
        ("SLIPWAY_REPO_ROOT", t.config.root.display().to_string()),
    ];
    if let Some(command) = &build.command {
        progress.note(&format!("running the build command: {command}"));
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&release.source_root)
            .envs(env_vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| StepError::new(format!("cannot run the build command: {e}")))?;
        let printer = progress.printer();
        let tail = stream_lines(&mut child, &|line| printer.live_line(line)).await;
        let status = child
            .wait()
            .await
            .map_err(|e| StepError::new(format!("cannot wait for the build command: {e}")))?;
        if !status.success() {
            return Err(StepError::new(format!(
                "the build command failed ({status}):\n{}",
                tail.join("\n")
            ))
            .hint("fix the build (run the command by hand from the repository root to see all output); nothing was changed on the target"));
        }
    }
    let context = release.source_root.join(&build.context);
    if !context.is_dir() {
        return Err(StepError::new(format!(
            "the build context {} does not exist",
            context.display()
        ))
        .hint("check app.build.context (and that app.build.command creates it)"));
    }
    // The Dockerfile path is relative to the repository root; the engine
    // wants it relative to the context.
    let dockerfile_abs = release.source_root.join(&build.dockerfile);
    let dockerfile = match dockerfile_abs.strip_prefix(&context) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => {
            // Outside the context: copy it in under a reserved name.
            let target = context.join(".slipway.Dockerfile");
            fs_err::copy(&dockerfile_abs, &target)
                .map_err(|e| StepError::new(format!("cannot read the Dockerfile: {e}")))?;
            ".slipway.Dockerfile".to_string()
        }
    };
    let mut labels: HashMap<String, String> = HashMap::from([
        (LABEL_APP.into(), t.names.app.clone()),
        (LABEL_RELEASE.into(), release.id.clone()),
        (LABEL_COMMIT.into(), release.commit.clone()),
        (LABEL_VERSION.into(), release.version.clone()),
        (LABEL_CREATED.into(), release.build_date.clone()),
        (LABEL_REF.into(), release.git_ref.clone()),
        (LABEL_DEPLOYER.into(), release.deployer.clone()),
    ]);
    labels.insert("slipway.managed".into(), "true".into());
    let mut args: HashMap<String, String> = build.args.clone().into_iter().collect();
    for (k, v) in &env_vars {
        args.entry(k.trim_start_matches("SLIPWAY_").to_string())
            .or_insert_with(|| v.clone());
    }
    let tags = vec![tag.clone()];
    let printer = progress.printer();
    t.engine
        .build_image(&context, &dockerfile, &tags, labels, args, |line| {
            tracing::info!(target: "build", "{line}");
            printer.live_line(line);
        })
        .await
        .map_err(|e| {
            StepError::new(e.to_string())
                .hint("fix the Dockerfile or context; nothing was changed on the target")
        })?;
    Ok(true)
}

/// How many of a failed build's last output lines its error shows.
const TAIL_LINES: usize = 15;

/// Reads a child's stdout and stderr line by line as they come, handing
/// each to `on_line`; returns the last [`TAIL_LINES`] for an error message.
async fn stream_lines(child: &mut tokio::process::Child, on_line: &dyn Fn(&str)) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut out = child.stdout.take().map(|o| BufReader::new(o).lines());
    let mut err = child.stderr.take().map(|e| BufReader::new(e).lines());
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES + 1);
    let mut keep = |line: String| {
        on_line(&line);
        tail.push_back(line);
        if tail.len() > TAIL_LINES {
            tail.pop_front();
        }
    };
    while out.is_some() || err.is_some() {
        tokio::select! {
            line = async { out.as_mut().expect("checked").next_line().await }, if out.is_some() => match line {
                Ok(Some(l)) => keep(l),
                _ => out = None,
            },
            line = async { err.as_mut().expect("checked").next_line().await }, if err.is_some() => match line {
                Ok(Some(l)) => keep(l),
                _ => err = None,
            },
        }
    }
    tail.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_build_commands_lines_arrive_as_they_come_and_its_tail_is_kept() {
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg("for i in $(seq 1 20); do echo out $i; echo err $i >&2; done; printf 'no newline'")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        let seen = std::cell::RefCell::new(Vec::new());
        let tail = stream_lines(&mut child, &|l| seen.borrow_mut().push(l.to_string())).await;
        assert!(child.wait().await.expect("wait").success());
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 41, "{seen:?}");
        assert!(seen.contains(&"err 20".to_string()) && seen.contains(&"no newline".to_string()));
        assert_eq!(tail.len(), TAIL_LINES);
        assert!(tail.contains(&"no newline".to_string()), "{tail:?}");
        // Each stream keeps its own order.
        let outs: Vec<&String> = seen.iter().filter(|l| l.starts_with("out")).collect();
        assert_eq!(outs.first().map(|s| s.as_str()), Some("out 1"));
        assert_eq!(outs.last().map(|s| s.as_str()), Some("out 20"));
    }
}
