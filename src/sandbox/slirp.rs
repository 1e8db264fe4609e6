//! The bwrap backend's setup network: slirp4netns (user-mode TCP/IP, Debian package
//! `slirp4netns`) attached to the sandbox's own network namespace, then fenced
//! ([`super::fence`]) before the setup command is let go.
//!
//! Protocol (slirp4netns(1), v1.2.0): `slirp4netns --configure --mtu=65520
//! --disable-host-loopback --ready-fd=1 --exit-fd=0 PID tap0`. It writes `1` to the ready fd
//! (its stdout here) once `tap0` is up as `10.0.2.100/24` with a default route via
//! `10.0.2.2`; it exits when its exit fd (its stdin here) sees an event, i.e. when slipway
//! closes the write end, which also happens when slipway itself dies. `--disable-host-loopback`
//! stops `10.0.2.2` from reaching the host's `127.0.0.1`; the fence blackholes `10.0.2.2`,
//! the host's own addresses and metadata besides.
//!
//! DNS: the sandbox keeps the host's `/etc/resolv.conf` and its queries leave through slirp
//! like any UDP, so slirp's built-in DNS (`10.0.2.3`, which can reach a resolver on the
//! host's loopback) is disabled. A host whose resolver is on loopback (systemd-resolved's
//! `127.0.0.53`) gets systemd's upstream list, `/run/systemd/resolve/resolv.conf`, bound over
//! `/etc/resolv.conf` instead ([`resolv_conf_override`]). Any other loopback stub (dnsmasq
//! on `127.0.0.1`) leaves setup without DNS: point the host at a non-loopback resolver.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, Command};

use super::fence::{self, FenceError, FenceTools};

/// slirp4netns's gateway, which stands for the host.
const SLIRP_GATEWAY: [u8; 4] = [10, 0, 2, 2];

/// How long the namespace's first process and slirp4netns's readiness may take.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// systemd-resolved's list of upstream servers (not its loopback stub).
const SYSTEMD_UPSTREAM_RESOLV: &str = "/run/systemd/resolve/resolv.conf";

/// slirp4netns and the fence tools on this host.
#[derive(Debug, Clone)]
pub struct Slirp {
    bin: PathBuf,
    tools: FenceTools,
}

/// A running slirp4netns. Dropping it kills the process (and closes its exit fd, which ends
/// it too); so the end of a command, its timeout, a cancel and a dropped session all end it.
pub struct SlirpGuard {
    _child: Child,
    _exit: Option<ChildStdin>,
}

impl Slirp {
    /// Finds slirp4netns, nsenter and ip.
    pub fn detect() -> Result<Self, FenceError> {
        let bin = super::which("slirp4netns").ok_or(FenceError::Missing {
            tool: "slirp4netns",
            package: "slirp4netns",
        })?;
        Ok(Self {
            bin,
            tools: FenceTools::detect()?,
        })
    }

    /// Gives the network namespace of `bwrap_pid`'s child (the sandbox's) a slirp network,
    /// waits until it is up, and fences it. On error nothing is left running.
    pub async fn attach(&self, bwrap_pid: u32) -> Result<SlirpGuard, FenceError> {
        let step = "attaching the setup network";
        let started = std::time::Instant::now();
        let pid = namespace_child(bwrap_pid).await?;
        // The command process is bwrap's grandchild, not slipway's child: its PID is pinned by
        // its start time, checked again once the network is up and fenced, so a process that
        // ended meanwhile (a cancel) and a PID reused since never get the network.
        let born = crate::sweep::process::start_time(&pid.to_string());
        let ipv6 = fence::enter_target(pid)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--ready-fd=1",
            "--exit-fd=0",
            "--disable-dns",
        ]);
        let mut child = cmd
            .arg(pid.to_string())
            .arg("tap0")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| FenceError::Failed {
                step: "slirp4netns",
                detail: e.to_string(),
            })?;
        let exit = child.stdin.take();
        let mut ready = child.stdout.take().ok_or(FenceError::Failed {
            step: "slirp4netns",
            detail: "no ready pipe".into(),
        })?;
        let mut byte = [0u8; 1];
        let said = tokio::time::timeout(READY_WITHIN, ready.read(&mut byte)).await;
        if !matches!(said, Ok(Ok(1))) || byte[0] != b'1' {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    stderr.read_to_string(&mut err),
                )
                .await;
            }
            return Err(FenceError::Failed {
                step: "slirp4netns",
                detail: format!("not ready within {READY_WITHIN:?}: {}", err.trim()),
            });
        }
        let guard = SlirpGuard {
            _child: child,
            _exit: exit,
        };
        let host = fence::host_addresses(&self.tools.ip).await?;
        let routes = fence::fence_routes(&host, &[IpAddr::from(SLIRP_GATEWAY)], ipv6);
        self.tools.blackhole(pid, &routes).await?;
        if born.is_none() || crate::sweep::process::start_time(&pid.to_string()) != born {
            return Err(FenceError::Failed {
                step,
                detail: format!("the sandbox's command process ({pid}) ended during setup"),
            });
        }
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            routes = routes.len(),
            "setup network up and fenced"
        );
        Ok(guard)
    }
}

/// The sandbox's command process: the child of bwrap's namespace child (bwrap's init inside
/// the new PID namespace). bwrap forks it only once the namespaces are fully set up, so
/// slirp4netns never races bwrap's own `lo` setup (which fails with EEXIST, and bwrap dies,
/// when slirp4netns configured `lo` first). Waited for up to [`READY_WITHIN`].
async fn namespace_child(bwrap_pid: u32) -> Result<u32, FenceError> {
    let step = "finding the sandbox's command process";
    let first_child = |pid: u32| -> Result<Option<u32>, FenceError> {
        let path = format!("/proc/{pid}/task/{pid}/children");
        let text = std::fs::read_to_string(&path).map_err(|e| FenceError::Failed {
            step,
            detail: format!("{path}: {e}"),
        })?;
        Ok(text.split_whitespace().next().and_then(|p| p.parse().ok()))
    };
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        if let Some(init) = first_child(bwrap_pid)?
            && let Ok(Some(command)) = first_child(init)
        {
            return Ok(command);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(FenceError::Failed {
                step,
                detail: format!("bwrap ({bwrap_pid}) started none within {READY_WITHIN:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether every nameserver in the host's `/etc/resolv.conf` is a loopback address (a local
/// stub such as systemd-resolved or dnsmasq), unreachable from the sandbox's namespace.
fn host_resolver_on_loopback() -> bool {
    resolv_on_loopback(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

fn resolv_on_loopback(text: &str) -> bool {
    let servers: Vec<IpAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    !servers.is_empty() && servers.iter().all(IpAddr::is_loopback)
}

/// A host file to bind over the sandbox's `/etc/resolv.conf`, when the host's own names only
/// a loopback stub and systemd-resolved publishes its upstream servers.
pub fn resolv_conf_override() -> Option<PathBuf> {
    let upstream = PathBuf::from(SYSTEMD_UPSTREAM_RESOLV);
    (host_resolver_on_loopback() && upstream.is_file()).then_some(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_stub_resolver_is_recognised() {
        assert!(resolv_on_loopback("nameserver 127.0.0.53\noptions edns0\n"));
        assert!(!resolv_on_loopback("nameserver 10.255.255.53\n"));
        assert!(!resolv_on_loopback(
            "nameserver 127.0.0.1\nnameserver 192.0.2.1\n"
        ));
        assert!(!resolv_on_loopback(""));
    }
}
