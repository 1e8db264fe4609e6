//! The setup sandbox's network fence: blackhole routes, installed from the host inside the
//! sandbox's own network namespace before the setup command starts, so that setup reaches
//! package registries but never the host itself or a cloud metadata endpoint.
//!
//! What is fenced ([`fence_routes`]):
//! - `169.254.0.0/16`, link-local IPv4: the cloud metadata endpoint (`169.254.169.254`,
//!   AWS/GCP/Azure) and its neighbours;
//! - `fd00:ec2::254/128`, AWS's IPv6 metadata endpoint;
//! - every non-loopback address of the host's own interfaces (`ip -o addr`), IPv4 as `/32`
//!   and IPv6 as `/128`, which covers a bridge gateway (`cni-podman0`'s `10.88.0.1`) and a
//!   service bound on `0.0.0.0`;
//! - the namespace's gateways (`/32`), e.g. slirp4netns's `10.0.2.2`, which maps to the
//!   host's loopback.
//!
//! Loopback (`127.0.0.0/8`, `::1`) is never fenced: inside the namespace it is the sandbox's
//! own `lo`, not the host's. A blackhole route on the gateway's own address leaves the default
//! route through it working: the kernel resolves a next hop by neighbour lookup, not by a
//! route lookup (checked on this host: `http://169.254.169.254` fails with EINVAL while
//! `https://pypi.org` answers). The sandbox has every capability dropped, so it cannot delete
//! the routes.
//!
//! Routes go in with `nsenter --net=/proc/PID/ns/net ip -batch -` (util-linux, iproute2), as
//! root on the engine's host. Before anything is written, [`enter_target`] checks that the
//! target namespace is not the host's own: a wrong PID must never blackhole the host.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Why the setup sandbox cannot get a fenced network. Setup is refused then, never run
/// unfenced; each message says what the operator can do.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The engine runs elsewhere, so its containers' namespaces are not reachable from here.
    #[error(
        "the container engine at {host} is not on this machine, so slipway cannot fence the setup container's network (no host loopback, no cloud metadata); point DOCKER_HOST at the local engine's unix socket, or use SLIPWAY_SANDBOX=bwrap with slirp4netns installed"
    )]
    RemoteEngine { host: String },
    /// A host tool the fence needs is missing.
    #[error(
        "{tool} is not installed, so the setup sandbox cannot get a separate, fenced network; apt-get install {package}"
    )]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    /// The PID given as the sandbox's is in the host's own network namespace (or is not the
    /// sandbox's): nothing was changed.
    #[error(
        "refusing to fence process {pid}: its network namespace is not the sandbox's ({detail})"
    )]
    WrongNamespace { pid: u32, detail: String },
    /// A step failed (usually: not root on the engine's host).
    #[error(
        "cannot fence the setup sandbox's network ({step}): {detail}; slipway must run as root on the engine's host, with nsenter (util-linux) and ip (iproute2)"
    )]
    Failed { step: &'static str, detail: String },
}

/// One route destination: an address and a prefix length (bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The single address `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, len }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Cloud metadata endpoints, fenced whatever the host's addresses: all of IPv4 link-local
/// (`169.254.169.254` and neighbours) and AWS's IPv6 endpoint.
pub fn metadata_prefixes() -> Vec<Prefix> {
    vec![
        Prefix {
            addr: IpAddr::from([169, 254, 0, 0]),
            len: 16,
        },
        Prefix::host(IpAddr::from([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254])),
        // Alibaba Cloud's metadata service and Azure's WireServer.
        Prefix::host(IpAddr::from([100, 100, 100, 200])),
        Prefix::host(IpAddr::from([168, 63, 129, 16])),
    ]
}

/// The blackhole routes for a namespace: metadata, `host_addrs` and `gateways` as single
/// addresses. Loopback addresses are dropped (they are the namespace's own); IPv6 ones too
/// when the namespace has no IPv6 (`ipv6 == false`). Sorted, without duplicates.
pub fn fence_routes(host_addrs: &[IpAddr], gateways: &[IpAddr], ipv6: bool) -> Vec<Prefix> {
    let mut routes: Vec<Prefix> = metadata_prefixes();
    routes.extend(
        host_addrs
            .iter()
            .chain(gateways)
            .filter(|a| !a.is_loopback() && !a.is_unspecified())
            .map(|a| Prefix::host(*a)),
    );
    routes.retain(|p| ipv6 || p.addr.is_ipv4());
    routes.sort();
    routes.dedup();
    routes
}

/// Addresses of this host's interfaces, parsed from `ip -o addr show` (lines such as
/// `4: eth0    inet 192.0.2.2/24 brd … scope global eth0`).
pub async fn host_addresses(ip: &Path) -> Result<Vec<IpAddr>, FenceError> {
    let out = Command::new(ip)
        .args(["-o", "addr", "show"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| FenceError::Failed {
            step: "ip -o addr",
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(FenceError::Failed {
            step: "ip -o addr",
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(parse_ip_addr(&String::from_utf8_lossy(&out.stdout)))
}

/// The addresses in `ip -o addr` output (the word after `inet`/`inet6`, without its prefix
/// length).
pub fn parse_ip_addr(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse().ok()
        })
        .collect()
}

/// The host tools the fence runs.
#[derive(Debug, Clone)]
pub struct FenceTools {
    pub nsenter: PathBuf,
    pub ip: PathBuf,
}

impl FenceTools {
    /// Finds `nsenter` and `ip` in the system directories.
    pub fn detect() -> Result<Self, FenceError> {
        let nsenter = super::which("nsenter").ok_or(FenceError::Missing {
            tool: "nsenter",
            package: "util-linux",
        })?;
        let ip = super::which("ip").ok_or(FenceError::Missing {
            tool: "ip",
            package: "iproute2",
        })?;
        Ok(Self { nsenter, ip })
    }

    /// Runs `ip ARGS…` inside the network namespace of `pid`, feeding `stdin`; its stdout.
    async fn ip_in(&self, pid: u32, args: &[&str], stdin: &str) -> Result<String, FenceError> {
        let step = "nsenter … ip";
        let mut child = Command::new(&self.nsenter)
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .arg("--")
            .arg(&self.ip)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| FenceError::Failed {
                step,
                detail: e.to_string(),
            })?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .await
                .map_err(|e| FenceError::Failed {
                    step,
                    detail: e.to_string(),
                })?;
        }
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .map_err(|_| FenceError::Failed {
                step,
                detail: "no answer within 10 s".into(),
            })?
            .map_err(|e| FenceError::Failed {
                step,
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(FenceError::Failed {
                step,
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Installs `routes` as blackholes in the namespace of `pid` (one `ip -batch`; the first
    /// failing route fails the whole fence). Call [`enter_target`] first.
    pub async fn blackhole(&self, pid: u32, routes: &[Prefix]) -> Result<(), FenceError> {
        let batch: String = routes
            .iter()
            .map(|r| format!("route add blackhole {r}\n"))
            .collect();
        self.ip_in(pid, &["-batch", "-"], &batch).await.map(|_| ())
    }

    /// The addresses configured inside the namespace of `pid`.
    pub async fn addresses_in(&self, pid: u32) -> Result<Vec<IpAddr>, FenceError> {
        Ok(parse_ip_addr(
            &self.ip_in(pid, &["-o", "addr", "show"], "").await?,
        ))
    }
}

/// Checks that `pid` lives in a network namespace other than this process's (so a fence can
/// never touch the host's routes), and whether that namespace has IPv6 (its
/// `/proc/PID/net/if_inet6` lists any address).
pub fn enter_target(pid: u32) -> Result<bool, FenceError> {
    let ns = |p: &str| {
        std::fs::read_link(format!("/proc/{p}/ns/net")).map_err(|e| FenceError::WrongNamespace {
            pid,
            detail: format!("/proc/{p}/ns/net: {e}"),
        })
    };
    let target = ns(&pid.to_string())?;
    let own = ns("self")?;
    if pid == 0 || target == own {
        return Err(FenceError::WrongNamespace {
            pid,
            detail: "it is the host's own network namespace".into(),
        });
    }
    let ipv6 = std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6"))
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    Ok(ipv6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_to_do() {
        let missing = FenceError::Missing {
            tool: "slirp4netns",
            package: "slirp4netns",
        };
        assert!(missing.to_string().contains("apt-get install slirp4netns"));
        let remote = FenceError::RemoteEngine {
            host: "tcp://10.0.0.5:2375".into(),
        };
        assert!(remote.to_string().contains("DOCKER_HOST"));
        assert!(remote.to_string().contains("SLIPWAY_SANDBOX=bwrap"));
    }

    #[test]
    fn the_hosts_own_namespace_is_never_a_target() {
        let me = std::process::id();
        assert!(matches!(
            enter_target(me),
            Err(FenceError::WrongNamespace { .. })
        ));
    }

    #[test]
    fn ip_addr_output_is_parsed() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                    4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\ x\n\
                    4: eth0    inet6 fd00::2/64 scope global nodad \\ x\n\
                    5: cni-podman0    inet6 fe80::64af:96ff:feff:8074/64 scope link \\ x\n";
        let addrs = parse_ip_addr(text);
        assert_eq!(
            addrs,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "192.0.2.2".parse().unwrap(),
                "fd00::2".parse().unwrap(),
                "fe80::64af:96ff:feff:8074".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn the_fence_covers_metadata_and_the_host_but_not_loopback() {
        let host: Vec<IpAddr> = ["127.0.0.1", "192.0.2.2", "::1", "fd00::2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let gw: Vec<IpAddr> = vec!["10.88.0.1".parse().unwrap()];
        let routes: Vec<String> = fence_routes(&host, &gw, true)
            .iter()
            .map(ToString::to_string)
            .collect();
        for want in [
            "169.254.0.0/16",
            "192.0.2.2/32",
            "10.88.0.1/32",
            "fd00::2/128",
            "fd00:ec2::254/128",
        ] {
            assert!(routes.contains(&want.to_string()), "{want} in {routes:?}");
        }
        assert!(
            routes
                .iter()
                .all(|r| !r.starts_with("127.") && r != "::1/128")
        );
        let v4_only = fence_routes(&host, &gw, false);
        assert!(v4_only.iter().all(|p| p.addr.is_ipv4()));
    }
}
