//! The `bwrap` backend: each command runs in fresh bubblewrap namespaces (the approach of
//! codex-rs's Linux sandbox), with no daemon.
//!
//! What is visible: `/usr`, `/bin`, `/sbin`, `/lib*` read-only, of `/etc` only what
//! [`ETC_ALLOWLIST`] names (read-only), configured extra read-only paths, a fresh `/proc`, a
//! minimal `/dev`, a tmpfs `/tmp`, the run's home at `/home/sandbox`, and the clone at
//! `/workspace` (its `.git` read-only). `/root`, `/home`, `/var`, `/run` (engine sockets),
//! the rest of `/etc` and slipway's data dir are not there. Namespaces: all unshared,
//! network included; `--die-with-parent`; a new session (no TIOCSTI).
//!
//! Identity ([`super::user`]): when slipway is root, no user namespace is made (it would map
//! the sandbox's uid to host root); the command starts under `setpriv`, which switches to
//! the sandbox uid and gid for good, clears the groups and every capability set and sets
//! `no_new_privs`. bwrap keeps only the capabilities that switch takes. When slipway is not
//! root, bwrap's own user namespace runs the command as slipway's uid with no capabilities.
//!
//! Setup ([`NetworkAccess::Setup`]) never shares the host's network namespace: each setup
//! command gets its own namespace plus slirp4netns, fenced (the `slirp` module). The command is
//! wrapped to wait for a `go` line on its stdin, which slipway writes only once the network
//! is up and fenced; without slirp4netns the setup sandbox does not start.
//!
//! Limits are rlimits set by util-linux `prlimit` before bwrap starts: RLIMIT_DATA for
//! memory, RLIMIT_FSIZE for the largest file, RLIMIT_NOFILE, and RLIMIT_NPROC as the
//! ceiling every sandbox shares ([`super::user::SHARED_NPROC`]: the kernel counts it per
//! uid, host-wide). bwrap has no per-sandbox process limit: a fork bomb is ended by the
//! command timeout, which kills the namespace's init and so every process in it. Use the
//! `docker` backend (`pids_limit`) where a per-sandbox process limit matters.

mod etc;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::owned::{GroupKill, OwnedPids};
use super::slirp::{Slirp, SlirpGuard};
use super::user::SandboxUser;
use super::{
    Backend, CappedOutput, ExecOutput, HOME, Mount, NetworkAccess, Result, Sandbox, SandboxError,
    SandboxPolicy, SandboxSpec, Session, WORKSPACE,
};
pub use etc::ETC_ALLOWLIST;
use etc::{etc_allowlist, etc_entries, parent_dirs};

/// bubblewrap on this host.
#[derive(Debug, Clone)]
pub struct BwrapSandbox {
    bwrap: PathBuf,
    prlimit: Option<PathBuf>,
}

/// Runs `"$@"` once a `go` line arrives on stdin (exit 125 on anything else, e.g. EOF when
/// slipway gave up on the network); `$1` is `null` to give the command `/dev/null` as stdin,
/// `keep` to hand it the rest of stdin (a stdio server). `read` takes one byte at a time from
/// a pipe, so nothing past the line is consumed.
const GATE: &str = r#"read -r go && [ "$go" = go ] || exit 125
mode=$1; shift
if [ "$mode" = null ]; then exec "$@" </dev/null; else exec "$@"; fi"#;

/// `setpriv` switching to `user` for good: real and effective ids, no supplementary groups,
/// no capabilities left in any set, `no_new_privs` (so a setuid binary grants nothing).
fn drop_to(user: SandboxUser) -> Vec<String> {
    vec![
        "/usr/bin/setpriv".into(),
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

impl BwrapSandbox {
    /// Finds `bwrap` (and `prlimit`, for limits) in the system directories.
    pub fn detect() -> Result<Self> {
        let bwrap = super::which("bwrap").ok_or_else(|| SandboxError::NoBackend {
            detail: String::new(),
        })?;
        let prlimit = super::which("prlimit").ok_or_else(|| SandboxError::NoBackend {
            detail: " (bubblewrap is installed but prlimit, from util-linux, is not: it sets the sandbox limits)".into(),
        })?;
        if SandboxUser::of_host().host_is_root && super::which("setpriv").is_none() {
            return Err(SandboxError::NoBackend {
                detail: " (bubblewrap is installed but setpriv, from util-linux, is not: as root it drops the sandbox to an unprivileged user)".into(),
            });
        }
        Ok(Self {
            bwrap,
            prlimit: Some(prlimit),
        })
    }
}

#[async_trait]
impl Sandbox for BwrapSandbox {
    fn backend(&self) -> Backend {
        Backend::Bwrap
    }

    fn image(&self) -> String {
        "host:/usr (read-only)".into()
    }

    async fn preflight(&self) -> Result<()> {
        Ok(())
    }

    async fn image_identity(&self, _image: Option<&str>) -> Result<String> {
        // The host's /usr is the image: its release and the package database's state.
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let dpkg = std::fs::metadata("/var/lib/dpkg/status")
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        use sha2::Digest;
        let digest = sha2::Sha256::digest(release.as_bytes());
        let short = hex::encode(&digest[..8]);
        Ok(format!("host:{short}:{dpkg}"))
    }

    async fn ensure_image(&self, image: &str) -> Result<()> {
        Err(SandboxError::Unsupported(format!(
            "the bwrap backend runs the host's /usr and cannot run the image {image}; use the docker backend (SLIPWAY_SANDBOX=docker)"
        )))
    }

    async fn build_image(
        &self,
        _context: &Path,
        dockerfile: &str,
        _args: &std::collections::BTreeMap<String, String>,
        _tag: &str,
    ) -> Result<()> {
        Err(SandboxError::Unsupported(format!(
            "the bwrap backend runs the host's /usr and cannot build {dockerfile}; use the docker backend (SLIPWAY_SANDBOX=docker)"
        )))
    }

    async fn start(&self, spec: &SandboxSpec) -> Result<Box<dyn Session>> {
        if !spec.git_dir.join("HEAD").exists() {
            return Err(SandboxError::Spawn(format!(
                "{} is not a git directory",
                spec.git_dir.display()
            )));
        }
        super::user::hand_over_spec_async(spec).await?;
        let slirp = match spec.policy.network {
            NetworkAccess::Setup => Some(Slirp::detect()?),
            NetworkAccess::None => None,
        };
        let session = BwrapSession {
            sandbox: self.clone(),
            slirp,
            workspace: spec.workspace.clone(),
            git_dir: spec.git_dir.clone(),
            home: spec.home.clone(),
            mounts: spec.mounts.clone(),
            policy: spec.policy.clone(),
            user: SandboxUser::of_host(),
            children: OwnedPids::default(),
        };
        // Prove the sandbox starts (namespaces allowed, binds valid) before the agent runs.
        let probe = session
            .exec("true", Duration::from_secs(30), &CancellationToken::new())
            .await?;
        if !probe.success() {
            return Err(SandboxError::Spawn(format!(
                "bubblewrap failed to start: {}",
                probe.output.trim()
            )));
        }
        Ok(Box::new(session))
    }
}

/// A bwrap "session": a policy and a clone; each command is its own bwrap process.
pub struct BwrapSession {
    sandbox: BwrapSandbox,
    /// The setup network helper; `Some` exactly when the policy is [`NetworkAccess::Setup`].
    slirp: Option<Slirp>,
    workspace: PathBuf,
    git_dir: PathBuf,
    home: PathBuf,
    mounts: Vec<Mount>,
    policy: SandboxPolicy,
    /// Who the commands run as.
    user: SandboxUser,
    /// Running bwrap processes, as pidfds, killed on close ([`super::owned`]).
    children: OwnedPids,
}

impl BwrapSession {
    /// bwrap running `sh -c command`.
    fn command(&self, command: &str) -> Command {
        let argv = ["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
        self.command_argv(&argv, false)
    }

    /// bwrap running `argv` directly; behind [`GATE`] in a setup sandbox (stdin piped then,
    /// and passed on to `argv` when `keep_stdin`).
    fn command_argv(&self, argv: &[String], keep_stdin: bool) -> Command {
        let lim = &self.policy.limits;
        let mut cmd = match &self.sandbox.prlimit {
            Some(prlimit) => {
                let mut c = Command::new(prlimit);
                let mem = lim.memory_mb * 1024 * 1024;
                let fsize = lim.tmp_mb * 1024 * 1024;
                c.arg(format!("--data={mem}"))
                    .arg(format!("--fsize={fsize}"))
                    .arg("--nofile=4096")
                    // Shared by every sandbox of the uid: see `user::SHARED_NPROC`.
                    .arg(format!(
                        "--nproc={}",
                        super::user::SHARED_NPROC.max(lim.pids)
                    ))
                    .arg("--core=0")
                    .arg("--")
                    .arg(&self.sandbox.bwrap);
                c
            }
            // `detect` refuses to build a sandbox without prlimit.
            None => Command::new(&self.sandbox.bwrap),
        };
        let ws = self.workspace.display().to_string();
        if self.user.host_is_root {
            // No user namespace: as root, bwrap would map the sandbox's uid to host root, and
            // what the sandbox writes would be root's. The command drops to the sandbox user
            // itself ([`drop_to`]); bwrap keeps only the capabilities that takes.
            cmd.args([
                "--unshare-ipc",
                "--unshare-pid",
                "--unshare-net",
                "--unshare-uts",
            ]);
            cmd.args(["--unshare-cgroup-try", "--die-with-parent", "--new-session"]);
            cmd.args(["--cap-drop", "ALL"]);
            for cap in ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"] {
                cmd.args(["--cap-add", cap]);
            }
        } else {
            cmd.args(["--unshare-all", "--die-with-parent", "--new-session"]);
            cmd.args(["--cap-drop", "ALL"]);
        }
        for dir in ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
            cmd.args(["--ro-bind-try", dir, dir]);
        }
        // bwrap makes the missing parents of a mount point 0700 root-owned when run as root:
        // make them first, traversable by the sandbox user.
        let mut targets: Vec<String> = etc_entries(Path::new("/etc"))
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        targets.push(HOME.to_string());
        targets.push(super::setup_env::SETUP_CA_BUNDLE.to_string());
        targets.extend(self.mounts.iter().map(|m| m.target.clone()));
        for dir in parent_dirs(&targets) {
            cmd.args(["--perms", "0755", "--dir", &dir]);
        }
        etc_allowlist(&mut cmd);
        for p in &self.policy.extra_ro_paths {
            let p = p.display().to_string();
            cmd.args(["--ro-bind-try", &p, &p]);
        }
        cmd.args(["--proc", "/proc", "--dev", "/dev"]);
        cmd.args([
            "--size",
            &(lim.tmp_mb * 1024 * 1024).to_string(),
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
        ]);
        cmd.args(["--bind", &self.home.display().to_string(), HOME]);
        cmd.args(["--bind", &ws, WORKSPACE]);
        cmd.args([
            "--ro-bind",
            &self.git_dir.display().to_string(),
            &format!("{WORKSPACE}/.git"),
        ]);
        for m in &self.mounts {
            let flag = if m.writable { "--bind" } else { "--ro-bind" };
            cmd.args([flag, &m.host.display().to_string(), &m.target]);
        }
        let gated = self.slirp.is_some();
        if gated && let Some(resolv) = super::slirp::resolv_conf_override() {
            cmd.args([
                "--ro-bind",
                &resolv.display().to_string(),
                "/etc/resolv.conf",
            ]);
        }
        // bwrap's own root is a tmpfs; make it read-only once every mount is in place.
        cmd.args(["--remount-ro", "/"]);
        cmd.args(["--chdir", WORKSPACE, "--hostname", "sandbox", "--clearenv"]);
        for (k, v) in &self.policy.env {
            cmd.args(["--setenv", k, v]);
        }
        cmd.arg("--");
        if self.user.host_is_root {
            cmd.args(drop_to(self.user));
        }
        if gated {
            let mode = if keep_stdin { "keep" } else { "null" };
            cmd.args(["/bin/sh", "-c", GATE, "slipway-gate", mode]);
        }
        cmd.args(argv);
        cmd.env_clear()
            .stdin(if gated { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // A group of its own, killed whole on cancel and drop ([`GroupKill`]).
            .process_group(0);
        cmd
    }
}

impl BwrapSession {
    /// In a setup sandbox: attaches slirp4netns to the namespace of `child` (a bwrap just
    /// spawned behind [`GATE`]), fences it, then writes `go`. Hands the child's stdin back
    /// when the command reads it (`keep_stdin`, a stdio server), else closes it. `None` for
    /// an offline sandbox.
    async fn open_network(
        &self,
        child: &mut Child,
        keep_stdin: bool,
    ) -> Result<Option<SlirpGuard>> {
        let Some(slirp) = &self.slirp else {
            return Ok(None);
        };
        let pid = child
            .id()
            .ok_or_else(|| SandboxError::Spawn("bwrap exited at once".into()))?;
        let guard = slirp.attach(pid).await?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| SandboxError::Spawn("bwrap: no stdin pipe".into()))?;
        stdin
            .write_all(b"go\n")
            .await
            .map_err(|e| SandboxError::Spawn(format!("bwrap: cannot start the command: {e}")))?;
        if keep_stdin {
            child.stdin = Some(stdin);
        }
        Ok(Some(guard))
    }
}

#[async_trait]
impl Session for BwrapSession {
    async fn exec(
        &self,
        command: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<ExecOutput> {
        let timeout = timeout.min(self.policy.limits.command_timeout);
        let started = Instant::now();
        let mut child = self
            .command(command)
            .spawn()
            .map_err(|e| SandboxError::Spawn(format!("bwrap: {e}")))?;
        let mut group = GroupKill::new(child.id());
        // Setup: the network comes up and is fenced before the command is let go; an error
        // drops `child`, which kills bwrap.
        let _network = tokio::select! {
            n = self.open_network(&mut child, false) => n?,
            _ = cancel.cancelled() => return Err(SandboxError::Cancelled),
        };
        let ticket = self.children.track(child.id());
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Err(SandboxError::Spawn("bwrap: no output pipes".into()));
        };
        let mut out = CappedOutput::new(self.policy.limits.output_cap_bytes);
        let collect = async {
            let (mut b1, mut b2) = ([0u8; 8192], [0u8; 8192]);
            let (mut open1, mut open2) = (true, true);
            while open1 || open2 {
                tokio::select! {
                    n = stdout.read(&mut b1), if open1 => match n {
                        Ok(0) | Err(_) => open1 = false,
                        Ok(n) => out.push(&b1[..n]),
                    },
                    n = stderr.read(&mut b2), if open2 => match n {
                        Ok(0) | Err(_) => open2 = false,
                        Ok(n) => out.push(&b2[..n]),
                    },
                }
            }
            child.wait().await
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, collect) => Some(r),
            _ = cancel.cancelled() => None,
        };
        if matches!(outcome, Some(Ok(Ok(_)))) {
            group.reaped();
        }
        if let Some(t) = ticket {
            self.children.forget(t);
        }
        // On a timeout or a cancel, `group` kills bwrap's process group as this returns,
        // then dropping `child` (kill_on_drop) ends bwrap, and with it the pid
        // namespace and everything inside.
        let (exit_code, timed_out) = match outcome {
            None => return Err(SandboxError::Cancelled),
            Some(Err(_)) => (None, true),
            Some(Ok(status)) => {
                let status = status.map_err(|e| SandboxError::Spawn(format!("bwrap: {e}")))?;
                (status.code().map(i64::from), false)
            }
        };
        let (output, omitted_bytes) = out.finish();
        Ok(ExecOutput {
            exit_code,
            output,
            omitted_bytes,
            timed_out,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    async fn spawn_stdio(&self, argv: &[String]) -> Result<super::StdioProcess> {
        let mut cmd = self.command_argv(argv, true);
        cmd.stdin(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| SandboxError::Spawn(format!("bwrap: {e}")))?;
        let group = GroupKill::new(child.id());
        let network = self.open_network(&mut child, true).await?;
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err(SandboxError::Spawn("bwrap: no stdio pipes".into()));
        };
        // Tracked until close: once the server's handle is dropped and the process reaped,
        // the pidfd makes the kill at close a no-op instead of a signal to a reused PID.
        let _ = self.children.track(child.id());
        Ok(super::StdioProcess {
            stdout: Box::new(stdout),
            stdin: Box::new(stdin),
            // Fields drop in order: the group is killed while `child` is still unreaped.
            guard: Box::new(std::sync::Mutex::new((group, child, network))),
        })
    }

    async fn stop_stdio(&self) -> Result<()> {
        let pids = self.children.take_pids();
        let left = super::reap::kill_trees(&pids).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::Spawn(format!(
                "bwrap: sandboxed servers still running after SIGKILL: {left:?}"
            )))
        }
    }

    async fn close(&self) -> Result<()> {
        self.children.kill_all();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_parents_are_listed_shallowest_first_and_never_inside_a_bind() {
        let got = parent_dirs(&[
            "/etc/ssl/certs".into(),
            "/home/sandbox".into(),
            "/run/slipway/ca-bundle.crt".into(),
            "/workspace/node_modules".into(),
            "/env".into(),
        ]);
        assert_eq!(got, ["/etc", "/home", "/run", "/etc/ssl", "/run/slipway"]);
    }

    #[test]
    fn etc_is_an_allowlist() {
        let etc = tempfile::tempdir().unwrap();
        for f in ["passwd", "shadow", "python3.11", "pip.conf", "secret.env"] {
            std::fs::write(etc.path().join(f), "").unwrap();
        }
        std::fs::create_dir(etc.path().join("ssh")).unwrap();
        let got: Vec<String> = etc_entries(etc.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["passwd", "python3.11"]);
    }
}
