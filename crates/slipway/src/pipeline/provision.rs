//! Idempotent provisioning: the environment's network and its database (with
//! the required extensions created and checked); the agent's is in
//! [`super::agent`]. Safe to run on every deploy; each piece is created only
//! when missing.

use std::time::{Duration, Instant};

use slipway_core::config::schema::DatabaseMode;

use super::context::{StepError, Target};
use crate::providers::docker::{ContainerSpec, ExecOutput};

pub async fn network(t: &Target) -> Result<bool, StepError> {
    Ok(t.engine
        .ensure_network(&t.names.network(), &t.names.labels("network"))
        .await?)
}

/// The database container (container mode): started if missing or stopped,
/// then waited for and its extensions created and checked.
pub async fn database(t: &Target) -> Result<Vec<String>, StepError> {
    let db = &t.config.settings.database;
    if db.mode == DatabaseMode::External {
        return Ok(Vec::new());
    }
    let name = t.names.database();
    let mut created = Vec::new();
    match t.engine.inspect(&name).await {
        Some(c) if c.running => {}
        Some(_) => t.engine.start(&name).await?,
        None => {
            if !t.engine.image_exists(&db.image).await {
                let hint = match &db.dockerfile {
                    Some(df) => format!(
                        "build it: docker build -t {} -f {df} . (or run scripts/images/build.sh on machines without a registry)",
                        db.image
                    ),
                    None => format!("pull or build {} on the target host", db.image),
                };
                return Err(StepError::new(format!(
                    "the database image {} is not on the engine",
                    db.image
                ))
                .hint(hint));
            }
            t.engine
                .ensure_volume(&t.names.database_volume(), &t.names.labels("database"))
                .await?;
            let password = t
                .config
                .app_env
                .get("POSTGRES_PASSWORD")
                .map(|v| v.value.expose().to_string())
                .ok_or_else(|| {
                    StepError::new("POSTGRES_PASSWORD is not set")
                        .hint("add it to the environment's .env file")
                })?;
            let spec = ContainerSpec {
                name: name.clone(),
                image: db.image.clone(),
                env: vec![
                    format!("POSTGRES_PASSWORD={password}"),
                    format!("POSTGRES_USER={}", db.user),
                    format!("POSTGRES_DB={}", db.name),
                ],
                labels: t.names.labels("database"),
                network: Some(t.names.network()),
                aliases: vec![name.clone()],
                volumes: vec![(t.names.database_volume(), "/var/lib/postgresql/data".into())],
                restart: true,
                stop_timeout: Some(60),
                ..Default::default()
            };
            t.engine.run(&spec).await?;
            created.push(name.clone());
        }
    }
    wait_database(t, Duration::from_secs(120)).await?;
    ensure_extensions(t).await?;
    Ok(created)
}

async fn wait_database(t: &Target, limit: Duration) -> Result<(), StepError> {
    let db = &t.config.settings.database;
    let name = t.names.database();
    let started = Instant::now();
    loop {
        // Over TCP: during first-start initialisation the server only
        // listens on its unix socket, so TCP readiness means "initialised".
        let out = t
            .engine
            .exec(
                &name,
                &[
                    "pg_isready",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    &db.user,
                    "-d",
                    &db.name,
                ],
                None,
            )
            .await;
        if let Ok(o) = &out
            && o.code == 0
        {
            return Ok(());
        }
        if let Some(c) = t.engine.inspect(&name).await
            && !c.running
        {
            let (_, err) = t.engine.logs(&name, Some(20)).await.unwrap_or_default();
            return Err(StepError::new(format!(
                "the database container {name} stopped: {}",
                err.trim()
            ))
            .hint(format!("see `docker logs {name}`")));
        }
        if started.elapsed() > limit {
            return Err(StepError::new(format!(
                "the database {name} did not accept connections within {}s",
                limit.as_secs()
            ))
            .hint(format!("see `docker logs {name}`")));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn ensure_extensions(t: &Target) -> Result<(), StepError> {
    let db = &t.config.settings.database;
    if db.extensions.is_empty() {
        return Ok(());
    }
    let mut sql = String::new();
    for ext in &db.extensions {
        sql.push_str(&format!(
            "CREATE EXTENSION IF NOT EXISTS \"{}\";",
            ext.replace('"', "")
        ));
    }
    let name = t.names.database();
    let out = psql(t, &["-v", "ON_ERROR_STOP=1", "-qc", &sql]).await?;
    if out.code != 0 {
        return Err(StepError::new(format!("creating extensions {:?} failed: {}", db.extensions, out.stderr_text().trim()))
            .hint(format!("the image {} must carry them; check with `docker exec {name} ls /usr/share/postgresql/*/extension`", db.image)));
    }
    let out = psql(t, &["-tAc", "select extname from pg_extension"]).await?;
    let present = out.stdout_text();
    let missing: Vec<&String> = db
        .extensions
        .iter()
        .filter(|e| !present.lines().any(|l| l.trim() == e.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(StepError::new(format!(
            "extensions missing after creation: {missing:?}"
        )));
    }
    Ok(())
}

/// `psql` as the database owner over the container's unix socket (trusted
/// locally, so no password travels).
async fn psql(t: &Target, args: &[&str]) -> Result<ExecOutput, StepError> {
    let db = &t.config.settings.database;
    let mut cmd = vec!["psql", "-U", &db.user, "-d", &db.name];
    cmd.extend_from_slice(args);
    Ok(t.engine.exec(&t.names.database(), &cmd, None).await?)
}
