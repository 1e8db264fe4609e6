//! The `docker` backend: one container per sandbox, through bollard, against any
//! Docker-compatible engine (Docker, or Podman's compatible socket).
//!
//! Hardening (FIELD_NOTES, "bollard against Podman"): the unprivileged sandbox user
//! ([`super::user`]) as the container's `user` (execs inherit it), `network_disabled` plus
//! `network_mode = none`, `cap_drop ALL`, `no-new-privileges`, read-only root with a `/tmp`
//! tmpfs, memory with equal swap, `nano_cpus`, `pids_limit`, and explicit `nofile`/`nproc`
//! ulimits (Podman's defaults exceed some hosts' hard limits and the start fails).
//! The setup sandbox ([`NetworkAccess::Setup`]) runs on the engine's bridge, and before any
//! command runs slipway enters the container's network namespace from the host and fences it
//! ([`super::fence`]): blackholes for cloud metadata, the bridge gateway and every address of
//! the host. That needs a local engine and root; otherwise setup is refused.
//! Containers carry `slipway.managed`, `slipway.pid` and `slipway.owner` (the owner's
//! [`crate::sweep::process::ProcessId`]) labels; [`DockerSandbox::connect`] removes those
//! whose slipway process is gone (`docker/orphans.rs`), so a `kill -9` leaves nothing behind for long.

mod images;
mod network;
mod orphans;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, ResourcesUlimits};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{
    Backend, CappedOutput, ExecOutput, HOME, NetworkAccess, Result, Sandbox, SandboxError,
    SandboxSpec, Session, WORKSPACE,
};

/// How long the engine may take to answer the version negotiation and the ping (a busy
/// engine on a loaded host can take seconds).
const ENGINE_ANSWER: Duration = Duration::from_secs(10);

/// Sockets tried, in order, when `DOCKER_HOST` is unset.
const DEFAULT_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/podman/podman.sock"];

/// Runs one command (`$2`) under `timeout` (`$1` seconds, then SIGKILL 5 s later), then
/// kills every process left in the container except init (PID 1), the container's main
/// process (the oldest other one) and itself (stop, then kill, repeated until a pass finds
/// none, for processes that fork meanwhile), and exits with the command's status. So no
/// background process outlives its command: nothing the agent started is running while the
/// host reads or writes the clone, and a `cmd &` cannot hold the output stream open.
const EXEC_WRAPPER: &str = r#"timeout -k 5 "$1" sh -c "$2"; rc=$?
set -f
self=$$; main=; oldest=
for d in /proc/[0-9]*; do
  p=${d#/proc/}; [ "$p" = 1 ] && continue; [ "$p" = "$self" ] && continue
  { read -r line < "$d/stat"; } 2>/dev/null || continue
  rest=${line##*) }; set -- $rest; start=${20}
  if [ -z "$oldest" ] || [ "$start" -lt "$oldest" ] 2>/dev/null; then oldest=$start; main=$p; fi
done
# Processes may fork while we scan: stop everything, then kill, until a pass finds none.
for pass in 1 2 3 4 5 6 7 8; do
  left=
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$p" in 1|"$self"|"$main") continue ;; esac
    [ -r "$d/stat" ] || continue
    left="$left $p"
  done
  [ -z "$left" ] && break
  kill -STOP $left 2>/dev/null
  kill -9 $left 2>/dev/null
done
exit $rc"#;

/// Extra time past a command's timeout before the container itself is killed (the in-box
/// `timeout -k 5` should have ended the command long before).
const KILL_GRACE: Duration = Duration::from_secs(15);

/// A connection to a container engine plus the image to run.
#[derive(Clone)]
pub struct DockerSandbox {
    docker: Docker,
    image: String,
    host: String,
}

fn engine_err(e: bollard::errors::Error) -> SandboxError {
    SandboxError::Engine(e.to_string())
}

impl DockerSandbox {
    /// Connects to `docker_host` (`unix://…`, `tcp://…`, `http://…`), or the default sockets.
    /// Negotiates the API version (Podman 4.3 speaks 1.41), pings within 10 s, and removes
    /// orphaned containers of dead slipway processes.
    pub async fn connect(docker_host: Option<&str>, image: &str) -> Result<Self> {
        let host = match docker_host {
            Some(h) => h.to_string(),
            None => DEFAULT_SOCKETS
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| format!("unix://{p}"))
                .ok_or_else(|| SandboxError::EngineUnavailable {
                    host: DEFAULT_SOCKETS.join(" or "),
                    message: "no socket found".into(),
                })?,
        };
        let unavailable = |message: String| SandboxError::EngineUnavailable {
            host: host.clone(),
            message,
        };
        let docker = if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
        } else {
            let http = host.replacen("tcp://", "http://", 1);
            Docker::connect_with_http(&http, 120, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| unavailable(e.to_string()))?;
        let docker = tokio::time::timeout(ENGINE_ANSWER, docker.negotiate_version())
            .await
            .map_err(|_| unavailable("no answer within 10 s".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        tokio::time::timeout(ENGINE_ANSWER, docker.ping())
            .await
            .map_err(|_| unavailable("no answer within 10 s".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        let me = Self {
            docker,
            image: image.to_string(),
            host,
        };
        // Liveness is judged from this machine's /proc, so only a local engine is swept.
        if me.host.starts_with("unix://")
            && let Err(e) = me.reap_orphans().await
        {
            tracing::warn!(error = %e, "could not list old sandbox containers");
        }
        Ok(me)
    }

    /// The engine address, for `doctor`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The bollard client (image building uses it).
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

async fn remove_container(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(id, Some(opts)).await {
        let gone = matches!(
            e,
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }
        );
        if !gone {
            tracing::warn!(container = id, error = %e, "could not remove sandbox container");
        }
    }
}

#[async_trait]
impl Sandbox for DockerSandbox {
    fn backend(&self) -> Backend {
        Backend::Docker
    }

    fn image(&self) -> String {
        self.image.clone()
    }

    async fn preflight(&self) -> Result<()> {
        match super::image::freshness(self, &self.image).await? {
            None => Err(SandboxError::ImageMissing(self.image.clone())),
            // Still usable, but its toolchains are not the ones this slipway expects.
            Some(super::image::Freshness::Stale { found }) => {
                tracing::warn!(
                    image = %self.image,
                    found = found.as_deref().unwrap_or("none"),
                    "the sandbox image was built from other inputs than this slipway's; rebuild it with `slipway sandbox build`"
                );
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    async fn image_identity(&self, image: Option<&str>) -> Result<String> {
        self.identity(image).await
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        self.pull_if_missing(image).await
    }

    async fn build_image(
        &self,
        context: &std::path::Path,
        dockerfile: &str,
        args: &std::collections::BTreeMap<String, String>,
        tag: &str,
    ) -> Result<()> {
        self.build(context, dockerfile, args, tag).await
    }

    async fn start(&self, spec: &SandboxSpec) -> Result<Box<dyn Session>> {
        let image = spec.image.clone().unwrap_or_else(|| self.image.clone());
        if !self.image_exists(&image).await? {
            return Err(SandboxError::ImageMissing(image));
        }
        super::user::hand_over_spec_async(spec).await?;
        let lim = &spec.policy.limits;
        let ws = spec.workspace.display().to_string();
        let offline = spec.policy.network == NetworkAccess::None;
        let memory = (lim.memory_mb * 1024 * 1024) as i64;
        let ulimit = |name: &str, n: i64| ResourcesUlimits {
            name: Some(name.to_string()),
            soft: Some(n),
            hard: Some(n),
        };
        let mut binds = vec![
            format!("{ws}:{WORKSPACE}:rw"),
            format!("{}:{WORKSPACE}/.git:ro", spec.git_dir.display()),
            format!("{}:{HOME}:rw", spec.home.display()),
        ];
        binds.extend(spec.mounts.iter().map(|m| {
            let mode = if m.writable { "rw" } else { "ro" };
            format!("{}:{}:{mode}", m.host.display(), m.target)
        }));
        let host_config = HostConfig {
            binds: Some(binds),
            network_mode: Some(if offline { "none" } else { "bridge" }.to_string()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                format!("rw,exec,nosuid,size={}m,mode=1777", lim.tmp_mb),
            )])),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((lim.cpus * 1e9) as i64),
            pids_limit: Some(i64::from(lim.pids)),
            // An init (catatonit under Podman, tini under Docker) reaps killed processes.
            init: Some(true),
            ulimits: Some(vec![
                ulimit("nofile", 4096),
                // A ceiling shared by every sandbox (one uid); `pids_limit` is the
                // per-sandbox limit. Set explicitly: the engine's default can exceed the
                // host's hard limit.
                ulimit("nproc", i64::from(super::user::SHARED_NPROC.max(lim.pids))),
                ulimit("fsize", (lim.tmp_mb * 1024 * 1024) as i64),
            ]),
            ..Default::default()
        };
        let env: Vec<String> = spec
            .policy
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let body = ContainerCreateBody {
            image: Some(image),
            // PID 1 only waits; commands arrive as execs.
            cmd: Some(vec!["sleep".into(), "infinity".into()]),
            entrypoint: Some(vec![]),
            // Never root: PID 1 and every exec run as the unprivileged sandbox user.
            user: Some(super::user::SandboxUser::of_host().spec()),
            env: Some(env),
            working_dir: Some(WORKSPACE.into()),
            network_disabled: Some(offline),
            hostname: Some("sandbox".into()),
            labels: Some(Self::labels(&spec.run_id, spec.pool.as_deref())),
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = format!("slipway-{}-{}", spec.run_id, &crate::task::new_id()[..6]);
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(engine_err)?;
        let session = DockerSession {
            docker: self.docker.clone(),
            id: created.id,
            limits_timeout: lim.command_timeout,
            cap: lim.output_cap_bytes,
            closed: AtomicBool::new(false),
            fence: (!offline).then(|| self.clone()),
        };
        // From here on, dropping `session` removes the container.
        self.docker
            .start_container(&session.id, None)
            .await
            .map_err(|e| SandboxError::Spawn(e.to_string()))?;
        if let Err(e) = session.fence().await {
            session.close().await?;
            return Err(e);
        }
        Ok(Box::new(session))
    }
}

/// A running container.
pub struct DockerSession {
    docker: Docker,
    id: String,
    limits_timeout: Duration,
    cap: usize,
    closed: AtomicBool,
    /// The engine, for a setup container: its network is fenced after every (re)start, since
    /// a restart gives it a fresh namespace. `None` for an offline container.
    fence: Option<DockerSandbox>,
}

impl DockerSession {
    /// Creates and starts an attached exec of `cmd` in `/workspace`: with stdin for a
    /// long-running stdio process, else with stdout and stderr interleaved.
    async fn attach(&self, cmd: Vec<String>, stdin: bool) -> Result<(String, StartExecResults)> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                ExecConfig {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(!stdin),
                    cmd: Some(cmd),
                    working_dir: Some(WORKSPACE.into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine_err)?;
        let options = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: Some(64 * 1024),
        };
        let started = self
            .docker
            .start_exec(&exec.id, Some(options))
            .await
            .map_err(engine_err)?;
        Ok((exec.id, started))
    }

    /// Kills every process in the container and starts it again. `/workspace` and the home
    /// are bind mounts and survive; `/tmp` is fresh.
    async fn restart(&self) -> Result<()> {
        self.kill().await;
        self.docker
            .start_container(&self.id, None)
            .await
            .map_err(engine_err)?;
        if let Err(e) = self.fence().await {
            // Never leave a setup container running unfenced.
            self.kill().await;
            return Err(e);
        }
        Ok(())
    }

    async fn kill(&self) {
        let _ = self
            .docker
            .kill_container(
                &self.id,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await;
    }

    /// Fences a setup container's fresh network namespace (a no-op offline); refused setup
    /// is an error ([`SandboxError::SetupNetwork`]).
    async fn fence(&self) -> Result<()> {
        let Some(engine) = &self.fence else {
            return Ok(());
        };
        let started = Instant::now();
        engine.fence(&self.id).await?;
        tracing::debug!(
            container = %self.id,
            ms = started.elapsed().as_millis() as u64,
            "setup network fenced"
        );
        Ok(())
    }

    async fn run_exec(
        &self,
        command: &str,
        timeout: Duration,
        out: &mut CappedOutput,
    ) -> Result<Option<i64>> {
        let secs = timeout.as_secs().max(1).to_string();
        let cmd = vec![
            "sh".to_string(),
            "-c".into(),
            EXEC_WRAPPER.into(),
            "slipway-exec".into(),
            secs,
            command.to_string(),
        ];
        let (exec_id, started) = self.attach(cmd, false).await?;
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(engine_err)? {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => out.push(&message),
                    LogOutput::StdIn { .. } => {}
                }
            }
        }
        // The stream can end a moment before the engine records the exit: poll briefly.
        for _ in 0..50 {
            let inspect = self
                .docker
                .inspect_exec(&exec_id)
                .await
                .map_err(engine_err)?;
            if inspect.running != Some(true) {
                return Ok(inspect.exit_code);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(None)
    }
}

#[async_trait]
impl Session for DockerSession {
    async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<ExecOutput> {
        // The in-box `timeout` takes whole seconds: round down here, once, so the check
        // below compares against the timeout that was really applied.
        let timeout = Duration::from_secs(timeout.min(self.limits_timeout).as_secs().max(1));
        let started = Instant::now();
        let mut out = CappedOutput::new(self.cap);
        let result = tokio::select! {
            r = tokio::time::timeout(timeout + KILL_GRACE, self.run_exec(command, timeout, &mut out)) => r,
            _ = cancel.cancelled() => {
                self.close().await?;
                return Err(SandboxError::Cancelled);
            }
        };
        let (mut exit_code, killed_from_outside) = match result {
            Ok(code) => (code?, false),
            Err(_) => {
                // The in-box timeout did not end it.
                tracing::warn!(container = %self.id, "command outlived its timeout; restarting container");
                self.restart().await?;
                (None, true)
            }
        };
        if (matches!(exit_code, Some(125) | Some(126)) && out.looks_like_runtime_failure())
            || (matches!(exit_code, Some(2) | Some(125)) && out.wrapper_could_not_fork())
        {
            // The runtime (or the wrapper) could not start the process, e.g. leftover
            // processes (a fork bomb in the background) hold every pid. Restart and try once
            // more.
            tracing::warn!(container = %self.id, "exec could not start; restarting container and retrying");
            self.restart().await?;
            out = CappedOutput::new(self.cap);
            exit_code = tokio::select! {
                r = tokio::time::timeout(timeout + KILL_GRACE, self.run_exec(command, timeout, &mut out)) => match r {
                    Ok(code) => code?,
                    Err(_) => {
                        self.restart().await?;
                        None
                    }
                },
                _ = cancel.cancelled() => {
                    self.close().await?;
                    return Err(SandboxError::Cancelled);
                }
            };
        }
        let elapsed = started.elapsed();
        // `timeout` exits 124 after SIGTERM and 137 after the -k SIGKILL.
        let timed_out = killed_from_outside
            || (matches!(exit_code, Some(124) | Some(137)) && elapsed >= timeout);
        let (output, omitted_bytes) = out.finish();
        Ok(ExecOutput {
            exit_code,
            output,
            omitted_bytes,
            timed_out,
            duration_ms: elapsed.as_millis() as u64,
        })
    }

    async fn spawn_stdio(&self, argv: &[String]) -> Result<super::StdioProcess> {
        let (_, started) = self.attach(argv.to_vec(), true).await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(SandboxError::Engine("exec did not attach".into()));
        };
        let stdout = output.filter_map(|item| async move {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(message))
                }
                Ok(_) => None,
                Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
            }
        });
        let reader = tokio_util::io::StreamReader::new(Box::pin(stdout));
        Ok(super::StdioProcess {
            stdout: Box::new(reader),
            stdin: Box::new(input),
            guard: Box::new(()),
        })
    }

    async fn close(&self) -> Result<()> {
        if !self.closed.swap(true, Ordering::SeqCst) {
            remove_container(&self.docker, &self.id).await;
        }
        Ok(())
    }

    fn container_id(&self) -> Option<String> {
        Some(self.id.clone())
    }
}

impl Drop for DockerSession {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Dropped without close (a panic or an early return): remove in the background.
        let (docker, id) = (self.docker.clone(), self.id.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { remove_container(&docker, &id).await });
        }
    }
}
