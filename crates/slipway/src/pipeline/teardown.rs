//! `slipway destroy`: what an environment owns on the host, removed in an
//! order that never leaves a half-served port (the app's slots first, the
//! edge holding the public port last), keeping the data unless asked.

use std::path::PathBuf;

use slipway_core::config::schema::DatabaseMode;

use super::context::{StepError, Target};
use crate::providers::docker::names::{LABEL_APP, LABEL_ENV, LABEL_MANAGED, Names, Slot};

/// What a teardown removes and keeps, decided before anything is touched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TeardownPlan {
    /// Containers by name, in removal order (found by label are added).
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub network: String,
    /// This environment's snapshot directory, when the data goes too.
    pub snapshots: Option<PathBuf>,
    /// What stays, each with why.
    pub kept: Vec<String>,
}

/// The plan for an environment: pure, from its names and database mode.
pub fn plan(
    n: &Names,
    mode: DatabaseMode,
    delete_data: bool,
    snapshot_dir: PathBuf,
) -> TeardownPlan {
    let mut containers = vec![n.slot(Slot::Blue), n.slot(Slot::Green)];
    containers.extend([n.agent_next(), n.agent_leaving(), n.agent(), n.edge()]);
    if mode == DatabaseMode::Container {
        containers.push(n.database());
    }
    let mut volumes = vec![n.agent_volume()];
    let mut kept = Vec::new();
    match (mode, delete_data) {
        (DatabaseMode::Container, true) => volumes.push(n.database_volume()),
        (DatabaseMode::Container, false) => kept.push(format!(
            "database volume {} (the next `slipway deploy {}` finds the data again; --delete-data removes it)",
            n.database_volume(),
            n.env
        )),
        (DatabaseMode::External, _) => kept.push(
            "the external database of DATABASE_URL (Slipway never deletes a database it did not create)"
                .to_string(),
        ),
    }
    let snapshots = delete_data.then(|| snapshot_dir.clone());
    if !delete_data {
        kept.push(format!("snapshots in {}", snapshot_dir.display()));
    }
    kept.push(format!(
        "images {}:* (other environments of {} may run them; `docker image rm` removes them)",
        n.app, n.app
    ));
    TeardownPlan {
        containers,
        volumes,
        network: n.network(),
        snapshots,
        kept,
    }
}

/// What a teardown did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Removed {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub network: Option<String>,
    pub snapshots: Option<PathBuf>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.volumes.is_empty()
            && self.network.is_none()
            && self.snapshots.is_none()
    }
}

/// Carries out `plan`: containers (the planned ones, then any other
/// labelled with this app and environment, e.g. a one-off task), volumes,
/// the network, the snapshots. Stops at the first failure, saying what was
/// removed before it.
pub async fn apply(t: &Target, plan: &TeardownPlan) -> Result<Removed, (Removed, StepError)> {
    let mut removed = Removed::default();
    let labelled = t
        .engine
        .containers_with_labels(&[
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_APP}={}", t.names.app),
            format!("{LABEL_ENV}={}", t.names.env),
        ])
        .await
        .map_err(|e| (Removed::default(), StepError::from(e)))?;
    let mut names: Vec<String> = labelled
        .into_iter()
        .map(|c| c.name)
        .filter(|n| !plan.containers.contains(n))
        .collect();
    // Everything else first, then the planned ones in order (edge last).
    names.extend(plan.containers.iter().cloned());
    for name in names {
        if t.engine.inspect(&name).await.is_none() {
            continue;
        }
        if let Err(e) = t.engine.remove(&name).await {
            return Err((removed, e.into()));
        }
        removed.containers.push(name);
    }
    for volume in &plan.volumes {
        match t.engine.remove_volume(volume).await {
            Ok(true) => removed.volumes.push(volume.clone()),
            Ok(false) => {}
            Err(e) => return Err((removed, e.into())),
        }
    }
    match t.engine.remove_network(&plan.network).await {
        Ok(true) => removed.network = Some(plan.network.clone()),
        Ok(false) => {}
        Err(e) => return Err((removed, e.into())),
    }
    if let Some(dir) = &plan.snapshots
        && dir.exists()
    {
        if let Err(e) = fs_err::remove_dir_all(dir) {
            return Err((
                removed,
                StepError::new(format!("deleting the snapshots failed: {e}"))
                    .hint("check the directory's permissions, then run the command again"),
            ));
        }
        removed.snapshots = Some(dir.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_is_kept_unless_asked_and_the_edge_goes_last() {
        let n = Names::new("events", "staging");
        let keep = plan(
            &n,
            DatabaseMode::Container,
            false,
            "/snaps/events/staging".into(),
        );
        assert_eq!(
            keep.containers.last().map(String::as_str),
            Some("events-staging-db")
        );
        let edge = keep
            .containers
            .iter()
            .position(|c| c == "events-staging-edge");
        let blue = keep
            .containers
            .iter()
            .position(|c| c == "events-staging-blue");
        assert!(blue < edge, "{:?}", keep.containers);
        assert_eq!(keep.volumes, ["events-staging-agent-state"]);
        assert!(keep.snapshots.is_none());
        assert!(
            keep.kept
                .iter()
                .any(|k| k.starts_with("database volume events-staging-pgdata"))
        );
        assert!(
            keep.kept
                .iter()
                .any(|k| k.starts_with("snapshots in /snaps/events/staging"))
        );

        let wipe = plan(
            &n,
            DatabaseMode::Container,
            true,
            "/snaps/events/staging".into(),
        );
        assert_eq!(
            wipe.volumes,
            ["events-staging-agent-state", "events-staging-pgdata"]
        );
        assert_eq!(wipe.snapshots, Some(PathBuf::from("/snaps/events/staging")));
        assert!(
            !wipe
                .kept
                .iter()
                .any(|k| k.contains("pgdata") || k.starts_with("snapshots"))
        );
    }

    #[test]
    fn an_external_database_is_never_touched() {
        let n = Names::new("events", "production");
        let p = plan(&n, DatabaseMode::External, true, "/s".into());
        assert!(!p.containers.iter().any(|c| c.ends_with("-db")));
        assert!(!p.volumes.iter().any(|v| v.ends_with("pgdata")));
        assert!(p.kept.iter().any(|k| k.contains("external database")));
    }
}
