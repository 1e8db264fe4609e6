//! The setup sandbox's walls, on both backends: it has a network, but not the host's
//! namespace: no host loopback, no host address, no cloud metadata endpoint; it reaches a real
//! registry (PyPI) through this network's TLS-inspecting proxy with the operator's CA bundle;
//! it alone sees the CA variables and the allowlisted host variables.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::support::{self, python_repo};
use slipway::sandbox::settings::SandboxConfig;
use slipway::sandbox::setup_env::{SETUP_CA_BUNDLE, SetupHostEnv};
use slipway::sandbox::{Backend, NetworkAccess, SandboxPolicy, SandboxSpec, Session};

struct Boxed {
    session: Box<dyn Session>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A fake host value of an allowlisted variable.
const INDEX_URL: &str = "https://pypi.org/simple";

async fn start(backend: Backend, network: NetworkAccess, ca_bundle: &str) -> Boxed {
    let ws = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    python_repo(ws.path());
    let cfg = SandboxConfig {
        command_timeout_s: 60,
        ca_bundle: ca_bundle.into(),
        ..Default::default()
    };
    let host = SetupHostEnv::capture(
        &cfg.setup_env,
        |k| (k == "PIP_INDEX_URL").then(|| INDEX_URL.to_string()),
        &[],
    )
    .unwrap();
    let (policy, mounts) = match network {
        NetworkAccess::Setup => {
            let s = SandboxPolicy::for_setup(&cfg, &host).unwrap();
            (s.policy, s.mounts)
        }
        NetworkAccess::None => (SandboxPolicy::for_run(&cfg, network), Vec::new()),
    };
    let spec = SandboxSpec {
        workspace: ws.path().to_path_buf(),
        git_dir: ws.path().join(".git"),
        home: home.path().to_path_buf(),
        policy,
        run_id: slipway::task::new_id(),
        image: None,
        mounts,
        pool: None,
    };
    let session = support::sandbox(backend).await.start(&spec).await.unwrap();
    Boxed {
        session,
        _dirs: (ws, home),
    }
}

async fn exec(b: &Boxed, cmd: &str) -> slipway::sandbox::ExecOutput {
    b.session
        .exec(cmd, Duration::from_secs(60), &CancellationToken::new())
        .await
        .unwrap()
}

/// Tries a TCP connection to each `(host, port)` from inside; one line per target, `OPEN` or
/// `closed <why>`.
fn connect_probe(targets: &[(String, u16)]) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|(h, p)| format!("('{h}', {p})"))
        .collect();
    format!(
        "python3 -c \"
import socket
for h, p in [{}]:
    try:
        socket.create_connection((h, p), timeout=3).close(); print(h, p, 'OPEN')
    except Exception as e:
        print(h, p, 'closed', repr(e))
\"",
        list.join(", ")
    )
}

/// This host's non-loopback IPv4 addresses.
async fn host_ipv4() -> Vec<String> {
    let ip = std::path::Path::new("/usr/sbin/ip");
    slipway::sandbox::fence::host_addresses(ip)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.is_ipv4() && !a.is_loopback())
        .map(|a| a.to_string())
        .collect()
}

/// (a) host loopback, (b) the host's own addresses (a `0.0.0.0` listener), (c) the metadata
/// endpoint: none reachable from setup, although setup has a network.
async fn setup_cannot_reach_the_host_or_metadata(backend: Backend) {
    let lo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let (lo_port, any_port) = (
        lo.local_addr().unwrap().port(),
        any.local_addr().unwrap().port(),
    );
    let addrs = host_ipv4().await;
    assert!(!addrs.is_empty(), "this host has no non-loopback address");
    // The listeners are real: the host itself connects.
    std::net::TcpStream::connect(("127.0.0.1", lo_port)).unwrap();
    std::net::TcpStream::connect((addrs[0].as_str(), any_port)).unwrap();
    let mut targets = vec![
        ("127.0.0.1".to_string(), lo_port),
        ("169.254.169.254".to_string(), 80),
    ];
    targets.extend(addrs.iter().map(|a| (a.clone(), any_port)));
    // slirp4netns's and the bridge's gateways stand for the host too.
    targets.push(("10.0.2.2".to_string(), lo_port));
    targets.push(("10.0.2.2".to_string(), any_port));
    let b = start(backend, NetworkAccess::Setup, "").await;
    let out = exec(&b, &connect_probe(&targets)).await;
    assert!(out.success(), "{}", out.output);
    assert_eq!(out.output.matches(" closed ").count(), targets.len());
    assert!(!out.output.contains("OPEN"), "{}", out.output);
    // The fence cannot be taken down from inside.
    let undo = exec(
        &b,
        "ip route del blackhole 169.254.0.0/16 2>&1; echo rc=$?; cat /proc/net/route | grep -c . ",
    )
    .await;
    assert!(!undo.output.contains("rc=0"), "{}", undo.output);
    // Yet it has a network: a real registry answers.
    let out = exec(&b, &fetch_pypi()).await;
    assert!(out.output.contains("status 200"), "{}", out.output);
    b.session.close().await.unwrap();
}

/// (d) a real registry over TLS, through this network's TLS-inspecting proxy.
fn fetch_pypi() -> String {
    "python3 -c \"
import urllib.request
try:
    r = urllib.request.urlopen('https://pypi.org/simple/six/', timeout=30)
    print('status', r.status, len(r.read()))
except Exception as e:
    print('failed', repr(e))
\""
    .into()
}

/// (e) setup sees the CA variables, the bundle and the allowlisted variable; the offline
/// sandbox sees none of them and has no network.
async fn only_setup_gets_the_ca_and_the_allowlisted_variables(backend: Backend) {
    let b = start(backend, NetworkAccess::Setup, "").await;
    let out = exec(&b, "env; head -c 27 \"$SSL_CERT_FILE\"").await;
    for var in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "PIP_CERT",
        "NODE_EXTRA_CA_CERTS",
        "CARGO_HTTP_CAINFO",
        "GIT_SSL_CAINFO",
        "npm_config_cafile",
    ] {
        assert!(
            out.output.contains(&format!("{var}={SETUP_CA_BUNDLE}\n")),
            "{var} missing:\n{}",
            out.output
        );
    }
    assert!(out.output.contains(&format!("PIP_INDEX_URL={INDEX_URL}\n")));
    assert!(out.output.contains("-----BEGIN CERTIFICATE-----"));
    b.session.close().await.unwrap();

    let b = start(backend, NetworkAccess::None, "").await;
    let out = exec(&b, "env; ls /run/slipway 2>&1").await;
    for var in ["SSL_CERT_FILE", "PIP_CERT", "PIP_INDEX_URL", "HTTPS_PROXY"] {
        assert!(!out.output.contains(&format!("{var}=")), "{}", out.output);
    }
    assert!(!out.output.contains("ca-bundle.crt"), "{}", out.output);
    let out = exec(&b, &fetch_pypi()).await;
    assert!(out.output.contains("failed"), "{}", out.output);
    b.session.close().await.unwrap();
}

#[tokio::test]
async fn docker_setup_cannot_reach_the_host_or_metadata() {
    setup_cannot_reach_the_host_or_metadata(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_setup_cannot_reach_the_host_or_metadata() {
    setup_cannot_reach_the_host_or_metadata(Backend::Bwrap).await;
}
#[tokio::test]
async fn docker_only_setup_gets_the_ca_and_the_allowlisted_variables() {
    only_setup_gets_the_ca_and_the_allowlisted_variables(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_only_setup_gets_the_ca_and_the_allowlisted_variables() {
    only_setup_gets_the_ca_and_the_allowlisted_variables(Backend::Bwrap).await;
}

/// Without the operator's CA the image's own trust store meets this network's inspecting
/// proxy and PyPI fails verification: the CA bundle is what makes (d) pass. (bwrap shows the
/// host's `/etc`, whose system bundle already holds the CA, so only docker can show this.)
#[tokio::test]
async fn docker_setup_without_the_ca_bundle_fails_tls_verification() {
    let b = start(Backend::Docker, NetworkAccess::Setup, "none").await;
    let out = exec(&b, &fetch_pypi()).await;
    assert!(
        out.output.contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        out.output
    );
    b.session.close().await.unwrap();
}

/// slirp4netns processes started by this test process that are still running although the
/// sandbox they served (the PID on their command line) is gone.
fn leaked_helpers() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut leaked = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        if !stat.contains("(slirp4netns)") {
            continue;
        }
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let (state, ppid) = (fields[0], fields[1]);
        if ppid != me || state == "Z" {
            continue;
        }
        let cmdline = std::fs::read_to_string(dir.join("cmdline")).unwrap_or_default();
        let args: Vec<&str> = cmdline.split('\0').filter(|a| !a.is_empty()).collect();
        let Some(target) = args.len().checked_sub(2).map(|i| args[i]) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{target}")).exists() {
            leaked.push(cmdline.replace('\0', " "));
        }
    }
    leaked
}

/// The bwrap setup network's helper ends with its command: after a normal end, a timeout, a
/// cancel and a dropped session, no slirp4netns outlives its sandbox.
#[tokio::test]
async fn bwrap_setup_network_helpers_end_with_their_command() {
    let b = start(Backend::Bwrap, NetworkAccess::Setup, "").await;
    let settle = || async {
        for _ in 0..100 {
            if leaked_helpers().is_empty() {
                return Vec::new();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        leaked_helpers()
    };
    assert!(exec(&b, "true").await.success());
    assert_eq!(settle().await, Vec::<String>::new());
    let out = b
        .session
        .exec(
            "sleep 600",
            Duration::from_secs(1),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(out.timed_out);
    assert_eq!(settle().await, Vec::<String>::new());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let r = b
        .session
        .exec("sleep 600", Duration::from_secs(60), &cancel)
        .await;
    assert!(matches!(r, Err(slipway::sandbox::SandboxError::Cancelled)));
    assert_eq!(settle().await, Vec::<String>::new());
    drop(b);
    assert_eq!(settle().await, Vec::<String>::new());
}
