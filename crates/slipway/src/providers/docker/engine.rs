//! One Docker Engine, local (unix socket) or remote (`ssh://user@host`),
//! through bollard. Every error says which operation failed on which object
//! and what to do. Container environments (which carry secrets) are never
//! logged or put into errors.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker Engine at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("{action} failed: {reason}")]
    Operation { action: String, reason: String },
}

impl EngineError {
    fn op(action: impl Into<String>, e: impl std::fmt::Display) -> Self {
        EngineError::Operation {
            action: action.into(),
            reason: e.to_string(),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            EngineError::Unreachable { host, .. } if host.starts_with("ssh://") => format!(
                "check that `ssh {} docker version` works without a prompt (a non-standard port belongs in a ~/.ssh/config alias)",
                host.trim_start_matches("ssh://")
            ),
            EngineError::Unreachable { host, .. } => match host.strip_prefix("unix://") {
                Some(socket) => format!(
                    "start Docker (systemctl start docker), or point providers.docker.host (or DOCKER_HOST) at your engine; check that you may use {socket} (`ls -l {socket}`; members of the docker group may)"
                ),
                None => "check that the engine listens there, or set providers.docker.host".into(),
            },
            EngineError::Operation { .. } => {
                "see the engine's message above; `docker ps -a` and `docker logs` show more".into()
            }
        }
    }
}

/// The size of the pieces a build context is sent in.
const UPLOAD_PIECE: usize = 256 * 1024;

/// The engine's address when neither the configuration nor DOCKER_HOST names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

pub struct Engine {
    docker: Docker,
    pub host: String,
    pub server_version: String,
    pub api_version: String,
}

/// What a container should be.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `NAME=value`; may hold secrets, never printed.
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub labels: HashMap<String, String>,
    pub network: Option<String>,
    /// Share this container's network namespace (`--network container:<name>`)
    /// instead of joining `network`: same addresses, same published ports.
    pub network_of: Option<String>,
    pub aliases: Vec<String>,
    /// (host ip, host port, container port)
    pub ports: Vec<(String, u16, u16)>,
    /// (volume name, mount path)
    pub volumes: Vec<(String, String)>,
    pub restart: bool,
    pub stop_timeout: Option<i64>,
    /// `name:address` lines for /etc/hosts (`host-gateway` is the host).
    pub extra_hosts: Vec<String>,
}

pub struct ExecOutput {
    pub code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The state of a container as the pipeline needs it.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub running: bool,
    /// Exited and restarted by the restart policy (or restarting now).
    pub crashing: bool,
    pub exit_code: Option<i64>,
    pub labels: HashMap<String, String>,
    pub id: String,
    /// `HostConfig.NetworkMode` (`container:<id>` for a shared namespace).
    pub network_mode: String,
    /// RFC 3339 start time of the current run.
    pub started_at: String,
}

/// Refuses `ssh://` destinations bollard's connector cannot reach, before a
/// confusing "client error (Connect)" would.
fn check_ssh_destination(host: &str) -> Result<(), EngineError> {
    let authority = host.trim_start_matches("ssh://");
    let authority = authority.split('/').next().unwrap_or_default();
    let machine = authority.rsplit('@').next().unwrap_or_default();
    // A bracketed IPv6 address carries colons of its own.
    let port = if machine.starts_with('[') {
        machine.rsplit_once("]:").map(|(_, p)| p)
    } else {
        machine.rsplit_once(':').map(|(_, p)| p)
    };
    let reason = if machine.is_empty() || machine == "[" {
        "it names no host".to_string()
    } else if let Some(port) = port {
        format!(
            "a port in the URL (`:{port}`) cannot be passed to ssh by the engine client; \
             add a `Host` alias with `Port {port}` to ~/.ssh/config and use `ssh://<alias>`"
        )
    } else {
        return Ok(());
    };
    Err(EngineError::Unreachable {
        host: host.to_string(),
        reason,
    })
}

/// The error with its causes: bollard's own message for an SSH failure is
/// only "client error (Connect)"; ssh's reason is further down the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(cause_text.trim());
        }
        source = cause.source();
    }
    text
}

impl Engine {
    /// Connects (`None` = the local engine) and negotiates the API version,
    /// so an older engine (e.g. 20.10, API 1.41) works.
    ///
    /// Remote engines: `ssh://user@host` or `ssh://alias`. Bollard runs the
    /// system `ssh` (batch mode, so never a prompt) and `docker system
    /// dial-stdio` on the host, so everything ssh reads applies: port,
    /// identity, known hosts and jump hosts come from `~/.ssh/config` for
    /// that alias, and keys from the agent. `SLIPWAY_SSH_IDENTITY=<private
    /// key>` picks the key explicitly (ssh then offers only that one). A port
    /// in the URL (`ssh://user@host:2222`) is refused up front: bollard 0.21
    /// hands `host:2222` to ssh as a host name, so it could never connect;
    /// use a `Host` alias with `Port` instead.
    pub async fn connect(host: Option<&str>) -> Result<Self, EngineError> {
        // providers.docker.host, else DOCKER_HOST as the docker CLI reads
        // it (any scheme: bollard's local defaults would honour only
        // unix://), else the default socket. The address used is the one
        // every message names.
        let from_env = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty());
        let host = host.map(str::to_string).or(from_env);
        let host = host.as_deref();
        let display = host.unwrap_or(DEFAULT_HOST).to_string();
        let unreachable = |e: &dyn std::error::Error| EngineError::Unreachable {
            host: display.clone(),
            reason: error_chain(e),
        };
        let docker = match host {
            None => Docker::connect_with_unix(DEFAULT_HOST, 120, bollard::API_DEFAULT_VERSION),
            Some(h) if h.starts_with("ssh://") => {
                check_ssh_destination(h)?;
                let identity = std::env::var("SLIPWAY_SSH_IDENTITY")
                    .ok()
                    .filter(|p| !p.is_empty());
                if let Some(path) = &identity
                    && !Path::new(path).is_file()
                {
                    return Err(EngineError::Unreachable {
                        host: display,
                        reason: format!(
                            "SLIPWAY_SSH_IDENTITY names `{path}`, which is not a readable file"
                        ),
                    });
                }
                Docker::connect_with_ssh(h, 120, bollard::API_DEFAULT_VERSION, identity)
            }
            Some(h) if h.starts_with("unix://") => {
                Docker::connect_with_unix(h, 120, bollard::API_DEFAULT_VERSION)
            }
            Some(h) => Docker::connect_with_http(h, 120, bollard::API_DEFAULT_VERSION),
        }
        .map_err(|e| unreachable(&e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(&e))?;
        let version = docker.version().await.map_err(|e| unreachable(&e))?;
        Ok(Self {
            docker,
            host: display,
            server_version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
        })
    }

    pub fn is_local(&self) -> bool {
        !self.host.starts_with("ssh://")
    }

    pub async fn image_exists(&self, tag: &str) -> bool {
        self.docker.inspect_image(tag).await.is_ok()
    }

    pub async fn image_labels(&self, tag: &str) -> Option<HashMap<String, String>> {
        let image = self.docker.inspect_image(tag).await.ok()?;
        Some(image.config.and_then(|c| c.labels).unwrap_or_default())
    }

    /// Builds `tag` from a context directory, streaming the context as a tar
    /// and reporting the builder's output lines to `progress`.
    pub async fn build_image(
        &self,
        context: &Path,
        dockerfile: &str,
        tags: &[String],
        labels: HashMap<String, String>,
        args: HashMap<String, String>,
        mut progress: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let context_tar = tar_directory(context).map_err(|e| {
            EngineError::op(
                format!("packing the build context {}", context.display()),
                e,
            )
        })?;
        let first = tags.first().cloned().unwrap_or_default();
        let total = context_tar.len() as u64;
        progress(&format!(
            "sending the build context ({:.1} MB) to the engine at {}",
            total as f64 / 1e6,
            self.host
        ));
        // In pieces, counted as the connection takes them, so a slow link
        // (an engine over SSH) shows how far the upload is.
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&sent);
        let context = bytes::Bytes::from(context_tar);
        let pieces: Vec<bytes::Bytes> = (0..context.len())
            .step_by(UPLOAD_PIECE)
            .map(|at| context.slice(at..(at + UPLOAD_PIECE).min(context.len())))
            .collect();
        let body = futures_util::stream::iter(pieces).map(move |piece| {
            counter.fetch_add(piece.len() as u64, std::sync::atomic::Ordering::Relaxed);
            piece
        });
        let options = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(&first)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .buildargs(&args)
            .build();
        let mut stream = self
            .docker
            .build_image(options, None, Some(bollard::body_stream(body)));
        let mut tail: Vec<String> = Vec::new();
        let started = std::time::Instant::now();
        let mut every = tokio::time::interval(Duration::from_secs(2));
        every.tick().await;
        let mut uploading = true;
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = every.tick(), if uploading => {
                    let done = sent.load(std::sync::atomic::Ordering::Relaxed);
                    uploading = done < total;
                    progress(&slipway_core::rate::describe(
                        "build context: sent",
                        done,
                        started.elapsed(),
                    ));
                    continue;
                }
            };
            let Some(item) = item else { break };
            uploading = false;
            let info = item.map_err(|e| EngineError::op(format!("building image {first}"), e))?;
            if let Some(err) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::Operation {
                    action: format!("building image {first}"),
                    reason: format!("{err}\n{}", tail.join("\n")),
                });
            }
            if let Some(line) = info.stream {
                for l in line.lines().filter(|l| !l.trim().is_empty()) {
                    progress(l);
                    tail.push(l.to_string());
                    if tail.len() > 20 {
                        tail.remove(0);
                    }
                }
            }
        }
        if !self.image_exists(&first).await {
            return Err(EngineError::Operation {
                action: format!("building image {first}"),
                reason: format!("the engine reported no image\n{}", tail.join("\n")),
            });
        }
        for extra in tags.iter().skip(1) {
            self.tag(&first, extra).await?;
        }
        Ok(())
    }

    pub async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let (repo, tag) = target.rsplit_once(':').unwrap_or((target, "latest"));
        let options = bollard::query_parameters::TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| EngineError::op(format!("tagging {source} as {target}"), e))
    }

    /// Image tags carrying `label=value`, newest first.
    pub async fn images_with_label(
        &self,
        label: &str,
    ) -> Result<Vec<(String, i64, HashMap<String, String>)>, EngineError> {
        let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
        let images = self
            .docker
            .list_images(Some(
                ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| EngineError::op("listing images", e))?;
        let mut out: Vec<_> = images
            .into_iter()
            .flat_map(|i| {
                let created = i.created;
                let labels = i.labels.clone();
                i.repo_tags
                    .into_iter()
                    .map(move |t| (t, created, labels.clone()))
            })
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.1));
        Ok(out)
    }

    pub async fn remove_image(&self, tag: &str) -> Result<(), EngineError> {
        self.docker
            .remove_image(
                tag,
                Some(RemoveImageOptionsBuilder::default().build()),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| EngineError::op(format!("removing image {tag}"), e))
    }

    pub async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<bool, EngineError> {
        if self
            .docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .is_ok()
        {
            return Ok(false);
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_network(request)
            .await
            .map_err(|e| EngineError::op(format!("creating network {name}"), e))?;
        Ok(true)
    }

    /// Joins a running container to `network` (idempotent): the host's
    /// shared entry point reaches each environment's edge this way.
    pub async fn ensure_connected(
        &self,
        network: &str,
        container: &str,
    ) -> Result<bool, EngineError> {
        let joined = self
            .docker
            .inspect_container(container, None)
            .await
            .ok()
            .and_then(|c| c.network_settings)
            .and_then(|n| n.networks)
            .is_some_and(|n| n.contains_key(network));
        if joined {
            return Ok(false);
        }
        let request = bollard::models::NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec![container.to_string()]),
                ..Default::default()
            }),
        };
        self.docker
            .connect_network(network, request)
            .await
            .map_err(|e| {
                EngineError::op(format!("connecting {container} to network {network}"), e)
            })?;
        Ok(true)
    }

    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<bool, EngineError> {
        if self.docker.inspect_volume(name).await.is_ok() {
            return Ok(false);
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map_err(|e| EngineError::op(format!("creating volume {name}"), e))?;
        Ok(true)
    }

    /// Removes a volume; `Ok(false)` when there was none.
    pub async fn remove_volume(&self, name: &str) -> Result<bool, EngineError> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(EngineError::op(format!("removing volume {name}"), e)),
        }
    }

    /// Removes a network; `Ok(false)` when there was none.
    pub async fn remove_network(&self, name: &str) -> Result<bool, EngineError> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(EngineError::op(format!("removing network {name}"), e)),
        }
    }

    pub async fn inspect(&self, name: &str) -> Option<ContainerInfo> {
        let c = self.docker.inspect_container(name, None).await.ok()?;
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        // A container the restart policy keeps bringing back after it exits
        // is crashing, not running.
        let crashing = state.restarting.unwrap_or(false) || c.restart_count.unwrap_or(0) > 0;
        let running = state.running.unwrap_or(false);
        Some(ContainerInfo {
            name: name.to_string(),
            image: config.image.unwrap_or_default(),
            running,
            crashing,
            exit_code: if running && !crashing {
                None
            } else {
                state.exit_code
            },
            labels: config.labels.unwrap_or_default(),
            id: c.id.unwrap_or_default(),
            network_mode: c
                .host_config
                .and_then(|h| h.network_mode)
                .unwrap_or_default(),
            started_at: state.started_at.unwrap_or_default(),
        })
    }

    /// Renames a container (running or not).
    pub async fn rename(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        self.docker
            .rename_container(
                name,
                bollard::query_parameters::RenameContainerOptions {
                    name: new_name.to_string(),
                },
            )
            .await
            .map_err(|e| EngineError::op(format!("renaming container {name} to {new_name}"), e))
    }

    /// Turns the restart policy (`unless-stopped`) on or off.
    pub async fn set_restart(&self, name: &str, restart: bool) -> Result<(), EngineError> {
        let policy = RestartPolicy {
            name: Some(if restart {
                RestartPolicyNameEnum::UNLESS_STOPPED
            } else {
                RestartPolicyNameEnum::NO
            }),
            maximum_retry_count: None,
        };
        self.docker
            .update_container(
                name,
                bollard::models::ContainerUpdateBody {
                    restart_policy: Some(policy),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| EngineError::op(format!("updating the restart policy of {name}"), e))
    }

    /// Creates and starts a container (an existing one of the same name is removed first).
    pub async fn run(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        self.create(spec).await?;
        self.start(&spec.name).await
    }

    pub async fn create(&self, spec: &ContainerSpec) -> Result<(), EngineError> {
        if self.inspect(&spec.name).await.is_some() {
            self.remove(&spec.name).await?;
        }
        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for (ip, host_port, container_port) in &spec.ports {
            let key = format!("{container_port}/tcp");
            exposed.push(key.clone());
            port_bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(ip.clone()),
                    host_port: Some(host_port.to_string()),
                }]),
            );
        }
        let host_config = HostConfig {
            port_bindings: Some(port_bindings),
            binds: Some(
                spec.volumes
                    .iter()
                    .map(|(v, p)| format!("{v}:{p}"))
                    .collect(),
            ),
            restart_policy: spec.restart.then_some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            network_mode: match &spec.network_of {
                Some(owner) => Some(format!("container:{owner}")),
                None => spec.network.clone(),
            },
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            ..Default::default()
        };
        let network = spec.network.as_ref().filter(|_| spec.network_of.is_none());
        let networking = network.map(|n| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                n.clone(),
                EndpointSettings {
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                },
            )])),
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            cmd: spec.cmd.clone(),
            labels: Some(spec.labels.clone()),
            exposed_ports: Some(exposed),
            host_config: Some(host_config),
            networking_config: networking,
            stop_timeout: spec.stop_timeout,
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|_| ())
            .map_err(|e| {
                EngineError::op(
                    format!("creating container {} from {}", spec.name, spec.image),
                    e,
                )
            })
    }

    pub async fn start(&self, name: &str) -> Result<(), EngineError> {
        match self
            .docker
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            // 304: already running, which is what we wanted.
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::op(format!("starting container {name}"), e)),
        }
    }

    pub async fn stop(&self, name: &str, timeout: Duration) -> Result<(), EngineError> {
        let options = StopContainerOptionsBuilder::default()
            .t(timeout.as_secs() as i32)
            .build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(EngineError::op(format!("stopping container {name}"), e)),
        }
    }

    pub async fn remove(&self, name: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(EngineError::op(format!("removing container {name}"), e)),
        }
    }

    /// Containers (running or not) with every `label=value` given.
    pub async fn containers_with_labels(
        &self,
        labels: &[String],
    ) -> Result<Vec<ContainerInfo>, EngineError> {
        let filters = HashMap::from([("label".to_string(), labels.to_vec())]);
        let list = self
            .docker
            .list_containers(Some(
                ListContainersOptionsBuilder::default()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| EngineError::op("listing containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                running: c.state.map(|s| s.to_string() == "running").unwrap_or(false),
                crashing: false,
                exit_code: None,
                labels: c.labels.unwrap_or_default(),
                id: c.id.unwrap_or_default(),
                network_mode: c
                    .host_config
                    .and_then(|h| h.network_mode)
                    .unwrap_or_default(),
                // The list does not carry it; `inspect` does.
                started_at: String::new(),
            })
            .collect())
    }

    /// Runs a command in a running container, with optional stdin, and
    /// collects its output and exit code.
    pub async fn exec(
        &self,
        container: &str,
        cmd: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, EngineError> {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = self
            .exec_with(container, &cmd, None, stdin, |is_err, bytes| {
                if is_err {
                    stderr.extend_from_slice(bytes)
                } else {
                    stdout.extend_from_slice(bytes)
                }
            })
            .await?;
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    }

    /// Runs `cmd` in a running container with extra `NAME=value`
    /// variables, handing each piece of its output to `on_output` as it
    /// comes (`true`: stderr), and returns its exit code. Dropping the
    /// future stops reading; the process in the container runs on until it
    /// ends or the container is removed.
    pub async fn exec_streaming(
        &self,
        container: &str,
        cmd: &[String],
        env: &[String],
        on_output: impl FnMut(bool, &[u8]),
    ) -> Result<i64, EngineError> {
        self.exec_with(container, cmd, Some(env), None, on_output)
            .await
    }

    /// The one exec of [`exec`](Self::exec) and
    /// [`exec_streaming`](Self::exec_streaming): create, start attached,
    /// feed `stdin` (then close it), pass the output on, read the exit code.
    async fn exec_with(
        &self,
        container: &str,
        cmd: &[String],
        env: Option<&[String]>,
        stdin: Option<&[u8]>,
        mut on_output: impl FnMut(bool, &[u8]),
    ) -> Result<i64, EngineError> {
        let action = || {
            format!(
                "running `{}` in {container}",
                cmd.first().map_or("", String::as_str)
            )
        };
        let exec = self
            .docker
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(cmd.to_vec()),
                    env: env.map(<[String]>::to_vec),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    attach_stdin: Some(stdin.is_some()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| EngineError::op(action(), e))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| EngineError::op(action(), e))?;
        if let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        {
            if let Some(data) = stdin {
                input
                    .write_all(data)
                    .await
                    .map_err(|e| EngineError::op(action(), e))?;
                input
                    .shutdown()
                    .await
                    .map_err(|e| EngineError::op(action(), e))?;
            }
            drop(input);
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| EngineError::op(action(), e))? {
                    bollard::container::LogOutput::StdOut { message } => on_output(false, &message),
                    bollard::container::LogOutput::StdErr { message } => on_output(true, &message),
                    _ => {}
                }
            }
        }
        let inspect = self
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| EngineError::op(action(), e))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// Copies a directory into a (created) container at `dest`.
    pub async fn upload_dir(
        &self,
        container: &str,
        dir: &Path,
        dest: &str,
    ) -> Result<(), EngineError> {
        let tar = tar_directory(dir)
            .map_err(|e| EngineError::op(format!("packing {}", dir.display()), e))?;
        let options = UploadToContainerOptionsBuilder::default()
            .path(dest)
            .build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| EngineError::op(format!("copying {} into {container}", dir.display()), e))
    }

    /// Waits for a container to exit and returns its exit code.
    pub async fn wait(&self, name: &str) -> Result<i64, EngineError> {
        let mut stream = self.docker.wait_container(
            name,
            None::<bollard::query_parameters::WaitContainerOptions>,
        );
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(EngineError::op(format!("waiting for {name}"), e)),
            None => Err(EngineError::op(
                format!("waiting for {name}"),
                "the engine closed the stream",
            )),
        }
    }

    /// stdout and stderr of a container, the last `tail` lines (or all).
    pub async fn logs(
        &self,
        name: &str,
        tail: Option<usize>,
    ) -> Result<(String, String), EngineError> {
        let tail = tail.map_or("all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| EngineError::op(format!("reading logs of {name}"), e))? {
                bollard::container::LogOutput::StdOut { message } => {
                    out.push_str(&String::from_utf8_lossy(&message))
                }
                bollard::container::LogOutput::StdErr { message } => {
                    err.push_str(&String::from_utf8_lossy(&message))
                }
                _ => {}
            }
        }
        Ok((out, err))
    }

    /// Streams a container's logs to `sink` until it stops (or forever with `follow`).
    pub async fn stream_logs(
        &self,
        name: &str,
        follow: bool,
        tail: &str,
        mut sink: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(tail)
            .build();
        let mut stream = self.docker.logs(name, Some(options));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| EngineError::op(format!("reading logs of {name}"), e))?;
            sink(&chunk.to_string());
        }
        Ok(())
    }
}

/// A directory as an uncompressed tar (the engine's build and copy format).
fn tar_directory(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(true);
    // Sparse entries (GNU type 'S') are refused by older engines' tar readers.
    builder.sparse(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}
