//! The docker backend's setup network: fencing a started container's namespace from the
//! host (metadata, the gateway, every host address) before anything runs in it.

use std::net::IpAddr;

use bollard::query_parameters::InspectContainerOptions;

use super::DockerSandbox;
use crate::sandbox::fence::{self, FenceError, FenceTools};

impl DockerSandbox {
    /// Fences the network of the started container `id` from the host: checks that the
    /// engine is local and that the namespace at the container's `State.Pid` is not the
    /// host's and holds the address the engine gave the container, then installs the
    /// blackholes. PID 1 only sleeps until then, so nothing has run on the network yet.
    pub(super) async fn fence(&self, id: &str) -> Result<(), FenceError> {
        if !self.host.starts_with("unix://") {
            return Err(FenceError::RemoteEngine {
                host: self.host.clone(),
            });
        }
        let tools = FenceTools::detect()?;
        let inspect = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| FenceError::Failed {
                step: "inspecting the container",
                detail: e.to_string(),
            })?;
        let pid = inspect
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| FenceError::Failed {
                step: "inspecting the container",
                detail: "the engine reported no process ID".into(),
            })?;
        let (mut addrs, mut gateways) = (Vec::new(), Vec::new());
        if let Some(net) = &inspect.network_settings {
            let push = |ip: &Option<String>, into: &mut Vec<IpAddr>| {
                if let Some(a) = ip.as_deref().and_then(|s| s.parse().ok()) {
                    into.push(a);
                }
            };
            for n in net.networks.iter().flat_map(|m| m.values()) {
                push(&n.ip_address, &mut addrs);
                push(&n.global_ipv6_address, &mut addrs);
                push(&n.gateway, &mut gateways);
                push(&n.ipv6_gateway, &mut gateways);
            }
        }
        let ipv6 = fence::enter_target(pid)?;
        // A remote engine behind a local socket would name a PID of this machine that is not
        // the container: the namespace must hold the container's own address.
        let inside = tools.addresses_in(pid).await?;
        if addrs.is_empty() || !addrs.iter().any(|a| inside.contains(a)) {
            return Err(FenceError::WrongNamespace {
                pid,
                detail: format!(
                    "the engine gave the container {addrs:?}, the namespace holds {inside:?}; is the engine on this machine?"
                ),
            });
        }
        let host = fence::host_addresses(&tools.ip).await?;
        tools
            .blackhole(pid, &fence::fence_routes(&host, &gateways, ipv6))
            .await
    }
}
