//! A network namespace of the test process's own, for servers that the setup sandbox must
//! reach. The setup sandbox's fence blackholes every address of the host's interfaces and the
//! slirp gateway, so a server on the host's loopback (or on `0.0.0.0`) is out of its reach by
//! design. An address inside another namespace is not a host address: a Podman bridge
//! container's traffic to it is routed (and masqueraded) through the host, and slirp4netns
//! connects to it from the host like any remote address.
//!
//! Nothing outlives the test process, even when it is killed: the namespace is held by an
//! unnamed `unshare --net sleep` (no `ip netns add` mount to forget), the host's end of the
//! veth pair goes with the namespace, and every process started here gets
//! `setpriv --pdeathsig KILL`. The death signal fires when the *thread* that spawned the
//! process ends, so every spawn goes through [`Keeper`], one thread that never ends. Files go
//! the same way: a janitor shell removes the registries' directory on its TERM.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;

/// A spawn request for the keeper thread: the command and where to send the child.
type Job = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The thread every long-lived child is spawned from (see the module docs).
pub struct Keeper(Mutex<mpsc::Sender<Job>>);

impl Keeper {
    pub fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("registries-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx.iter() {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static: this point is never reached, and the thread
                // (the children's "parent") lives as long as the process.
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        Self(Mutex::new(tx))
    }

    /// Spawns `program args…` under `setpriv --pdeathsig KILL` from the keeper thread.
    pub fn spawn(&self, program: &str, args: &[&str], log: &Path) -> Child {
        self.spawn_with(("KILL", program), args, log)
    }

    /// Spawns `program args…` from the keeper thread; it gets `signal` when the process ends.
    pub fn spawn_with(&self, (signal, program): (&str, &str), args: &[&str], log: &Path) -> Child {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", signal, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        let (reply, rx) = mpsc::channel();
        self.0.lock().unwrap().send((cmd, reply)).unwrap();
        rx.recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    }
}

/// The namespace: its holder process and the two ends of its /30.
pub struct NetNs {
    holder: Child,
    /// The namespace's address; servers bind here.
    pub addr: Ipv4Addr,
    /// The host's end of the veth pair.
    pub host_addr: Ipv4Addr,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{cmd} {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl NetNs {
    /// Creates the namespace with a veth pair on a /30 of 10.231.0.0/16 picked from the
    /// process id (the next free one when another test process holds it).
    pub fn create(keeper: &Keeper, logs: &Path) -> Self {
        let holder = keeper.spawn(
            "unshare",
            &["--net", "sleep", "infinity"],
            &logs.join("netns-holder.log"),
        );
        let pid = holder.id();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        // unshare has switched namespaces once its link differs from ours.
        while std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .as_ref()
            == Some(&own)
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let host_if = format!("swreg{}", std::process::id());
        let pid_s = pid.to_string();
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &pid_s,
            ],
        )
        .unwrap();
        let netns = format!("--net=/proc/{pid}/ns/net");
        // Linux accepts one address on two interfaces, so a /30 another test process uses is
        // skipped by looking, not by `ip addr add` failing.
        let taken = run("ip", &["-o", "-4", "addr", "show"]).unwrap();
        let start = std::process::id() as usize % 16384;
        let (host_addr, addr) = (0..16384)
            .map(|i| {
                let slot = ((start + i) % 16384) as u32;
                let base = u32::from(Ipv4Addr::new(10, 231, 0, 0)) + slot * 4;
                (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
            })
            .find(|(h, _)| !taken.contains(&format!(" {h}/")))
            .unwrap();
        run(
            "ip",
            &["addr", "add", &format!("{host_addr}/30"), "dev", &host_if],
        )
        .unwrap();
        run("ip", &["link", "set", &host_if, "up"]).unwrap();
        // A route to the /30 from elsewhere (not an address) would win silently: check.
        let route = run("ip", &["route", "get", &addr.to_string()]).unwrap();
        let inside = format!(
            "ip addr add {addr}/30 dev eth0 && ip link set eth0 up && ip link set lo up && ip route add default via {host_addr}"
        );
        run("nsenter", &[&netns, "sh", "-c", &inside]).unwrap();
        assert!(
            route.contains(&host_if),
            "{addr} is not routed via {host_if}: {route}"
        );
        Self {
            holder,
            addr,
            host_addr,
        }
    }

    /// `nsenter --net=…` arguments that run a program inside.
    pub fn enter(&self) -> String {
        format!("--net=/proc/{}/ns/net", self.holder.id())
    }
}
