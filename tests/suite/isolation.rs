//! The sandbox walls, on both backends: no network, no host secrets, no writes outside
//! `/workspace`, commands killed at their timeout, output capped, cleanup on cancel and drop.
//! Network probes target only this machine's loopback.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::support::{self, python_repo};
use slipway::sandbox::settings::SandboxConfig;
use slipway::sandbox::{Backend, NetworkAccess, SandboxPolicy, SandboxSpec, Session};

struct Boxed {
    session: Box<dyn Session>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    run_id: String,
}

async fn start(backend: Backend, tweak: impl FnOnce(&mut SandboxConfig)) -> Boxed {
    let ws = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    python_repo(ws.path());
    let mut cfg = SandboxConfig {
        command_timeout_s: 30,
        ..Default::default()
    };
    tweak(&mut cfg);
    let run_id = slipway::task::new_id();
    let spec = SandboxSpec {
        workspace: ws.path().to_path_buf(),
        git_dir: ws.path().join(".git"),
        home: home.path().to_path_buf(),
        policy: SandboxPolicy::for_run(&cfg, NetworkAccess::None),
        run_id: run_id.clone(),
        image: None,
        mounts: Vec::new(),
        pool: None,
    };
    let session = support::sandbox(backend).await.start(&spec).await.unwrap();
    Boxed {
        session,
        _dirs: (ws, home),
        run_id,
    }
}

async fn exec(b: &Boxed, cmd: &str) -> slipway::sandbox::ExecOutput {
    b.session
        .exec(cmd, Duration::from_secs(30), &CancellationToken::new())
        .await
        .unwrap()
}

async fn no_host_secret_gets_in(backend: Backend) {
    let b = start(backend, |_| {}).await;
    let out = exec(&b, "env").await;
    assert!(out.success());
    for key in [
        "GITHUB_TOKEN",
        "SLACK_BOT_TOKEN",
        "SLIPWAY_LLM_API_KEY",
        "DOCKER_HOST",
        "CARGO_HOME",
        "RUSTUP_HOME",
    ] {
        assert!(
            !out.output.contains(&format!("{key}=")),
            "{key} leaked:\n{}",
            out.output
        );
    }
    assert!(out.output.contains("HOME=/home/sandbox"));
    // Host files are not there: a marker in a host temp dir, the engine socket, /root.
    let host = tempfile::tempdir().unwrap();
    let marker = host.path().join("host-secret.txt");
    std::fs::write(&marker, "HOST-ONLY-MARKER").unwrap();
    let probe = format!(
        "cat {} 2>&1; ls /root /run/podman 2>&1; echo END",
        marker.display()
    );
    let out = exec(&b, &probe).await;
    assert!(!out.output.contains("HOST-ONLY-MARKER"), "{}", out.output);
    assert!(!out.output.contains("podman.sock"), "{}", out.output);
    if backend == Backend::Bwrap {
        // bwrap shows an allowlist of the host's /etc; its password hashes are not in it.
        let out = exec(&b, "cat /etc/shadow 2>&1 | head -c 20; echo END").await;
        assert!(!out.output.contains("root:"), "{}", out.output);
    }
    b.session.close().await.unwrap();
}

async fn the_network_is_unreachable(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let b = start(backend, |_| {}).await;
    let ifaces = exec(
        &b,
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
    )
    .await;
    assert_eq!(ifaces.output.trim(), "lo");
    let probe = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)\" 2>&1; echo rc=$?"
    );
    let out = exec(&b, &probe).await;
    assert!(
        out.output.contains("rc=1") && out.output.contains("Connection refused"),
        "{}",
        out.output
    );
    b.session.close().await.unwrap();
    drop(listener);
}

async fn writes_outside_the_workspace_fail(backend: Backend) {
    let b = start(backend, |_| {}).await;
    for path in [
        "/etc/slipway-test",
        "/usr/slipway-test",
        "/workspace/.git/hooks/pre-commit",
        "/slipway-test",
    ] {
        let out = exec(&b, &format!("touch {path}")).await;
        assert!(!out.success(), "{path} was writable");
    }
    for path in ["/workspace/new.txt", "/tmp/x", "/home/sandbox/x"] {
        let out = exec(&b, &format!("touch {path}")).await;
        assert!(out.success(), "{path} was not writable: {}", out.output);
    }
    b.session.close().await.unwrap();
}

async fn a_hung_command_is_killed_at_its_timeout(backend: Backend) {
    let b = start(backend, |_| {}).await;
    let out = b
        .session
        .exec(
            "sleep 600",
            Duration::from_secs(2),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(out.timed_out, "{out:?}");
    assert!(!out.success());
    assert!(out.render(100).contains("timeout"));
    // The sandbox still works afterwards.
    assert!(exec(&b, "true").await.success());
    b.session.close().await.unwrap();
}

async fn a_flood_of_output_is_capped(backend: Backend) {
    let b = start(backend, |c| c.output_cap_bytes = 4096).await;
    let out = exec(
        &b,
        "head -c 20000000 /dev/zero | tr '\\0' x; echo; echo THE-END",
    )
    .await;
    assert!(out.success());
    assert!(out.omitted_bytes > 19_000_000, "{}", out.omitted_bytes);
    assert!(out.output.len() < 5000);
    assert!(out.output.trim_end().ends_with("THE-END"));
    assert!(out.render(4096).contains("capped at 4096 bytes"));
    b.session.close().await.unwrap();
}

async fn filling_the_disk_is_refused(backend: Backend) {
    let b = start(backend, |c| c.tmp_mb = 32).await;
    let out = exec(
        &b,
        "dd if=/dev/zero of=/workspace/big bs=1M count=100 2>&1; echo rc=$?",
    )
    .await;
    assert!(!out.output.contains("rc=0"), "{}", out.output);
    let out = exec(
        &b,
        "dd if=/dev/zero of=/tmp/big bs=1M count=100 2>&1; echo rc=$?",
    )
    .await;
    assert!(!out.output.contains("rc=0"), "{}", out.output);
    b.session.close().await.unwrap();
}

async fn cancellation_stops_a_running_command(backend: Backend) -> String {
    let b = start(backend, |_| {}).await;
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    });
    let r = b
        .session
        .exec("sleep 600", Duration::from_secs(600), &cancel)
        .await;
    assert!(
        matches!(r, Err(slipway::sandbox::SandboxError::Cancelled)),
        "{r:?}"
    );
    b.session.close().await.unwrap();
    b.run_id.clone()
}

/// Commands run as the unprivileged sandbox user, what they write is that user's on the
/// host, and a setuid copy of a shell grants nothing (nosuid / no-new-privileges).
async fn the_sandbox_runs_as_an_unprivileged_user(backend: Backend) {
    use std::os::unix::fs::MetadataExt;
    let b = start(backend, |_| {}).await;
    let out = exec(
        &b,
        "id -u; id -g; grep NoNewPrivs /proc/self/status; \
         cp /bin/sh ~/x && chmod 4755 ~/x && ~/x -c 'echo euid=$(id -u)'; \
         touch /workspace/made; mkdir -p /workspace/newdir/sub; echo END",
    )
    .await;
    assert!(out.success(), "{}", out.output);
    let lines: Vec<&str> = out.output.lines().map(str::trim).collect();
    let uid = slipway::sandbox::user::SANDBOX_UID.to_string();
    let gid = slipway::sandbox::user::SANDBOX_GID.to_string();
    assert_eq!(lines.first(), Some(&uid.as_str()), "{}", out.output);
    assert_eq!(lines.get(1), Some(&gid.as_str()), "{}", out.output);
    assert!(
        out.output.contains("NoNewPrivs:\t1") || out.output.contains("NoNewPrivs: 1"),
        "{}",
        out.output
    );
    assert!(
        out.output.contains(&format!("euid={uid}")),
        "a setuid binary made inside gave another uid:\n{}",
        out.output
    );
    let (ws, home) = (b._dirs.0.path(), b._dirs.1.path());
    for host in [home.join("x"), ws.join("made"), ws.join("newdir/sub")] {
        let m = std::fs::metadata(&host).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (
                slipway::sandbox::user::SANDBOX_UID,
                slipway::sandbox::user::SANDBOX_GID
            ),
            "{} is owned by {}:{}",
            host.display(),
            m.uid(),
            m.gid()
        );
    }
    b.session.close().await.unwrap();
}

#[tokio::test]
async fn docker_runs_as_an_unprivileged_user() {
    the_sandbox_runs_as_an_unprivileged_user(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_runs_as_an_unprivileged_user() {
    the_sandbox_runs_as_an_unprivileged_user(Backend::Bwrap).await;
}

/// Removes a file planted under the host's `/etc`, whatever the test does.
struct Planted(std::path::PathBuf);
impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn bwrap_sees_only_an_allowlisted_etc_and_the_toolchains_still_run() {
    let marker = format!("SLIPWAY-ETC-SECRET-{}", slipway::task::new_id());
    let planted = Planted(std::path::PathBuf::from(format!(
        "/etc/slipway-test-secret-{}.env",
        slipway::task::new_id()
    )));
    std::fs::write(&planted.0, format!("SLACK_BOT_TOKEN={marker}\n")).unwrap();
    let b = start(Backend::Bwrap, |_| {}).await;
    let probe = format!(
        "cat {} 2>&1; ls /etc/ssh /etc/ssl/private 2>&1; grep -rl SLIPWAY-ETC-SECRET /etc 2>/dev/null; echo END",
        planted.0.display()
    );
    let out = exec(&b, &probe).await;
    assert!(!out.output.contains(&marker), "{}", out.output);
    assert!(
        !out.output.contains("ssh_host") && !out.output.contains(".key"),
        "{}",
        out.output
    );
    for cmd in [
        "python3 -c 'import ssl, json, urllib.request; ssl.create_default_context(); print(\"py ok\")'",
        "python3 -m pip --version",
        "node -e 'console.log(require(\"tls\").rootCertificates.length > 0)'",
        "npm --version",
        "git --version && git -C /workspace status --short && git -C /workspace log --oneline -1",
        "uv --version",
        "getent passwd root",
    ] {
        let out = exec(&b, cmd).await;
        assert!(out.success(), "{cmd}: {}", out.output);
    }
    b.session.close().await.unwrap();
}

/// A secret of the process in a file the agent reads (with `run` and with `read_file`)
/// never reaches the model.
#[tokio::test]
async fn tool_results_are_redacted_before_the_model_sees_them() {
    use serde_json::json;
    const SECRET: &str = "xoxb-slipway-test-9f8e7d6c5b4a";
    let script = vec![
        crate::support::fake_llm::Turn::call("run", json!({"command": "cat deploy.env"})),
        crate::support::fake_llm::Turn::call("read_file", json!({"path": "deploy.env"})),
        crate::support::fake_llm::Turn::call("finish", json!({"summary": "looked"})),
    ];
    let h = support::Harness::with_repo(
        Backend::Bwrap,
        slipway::agent::llm::settings::LlmProvider::Anthropic,
        script,
        |dir| {
            python_repo(dir);
            std::fs::write(
                dir.join("deploy.env"),
                format!("SLACK_BOT_TOKEN={SECRET}\n"),
            )
            .unwrap();
            support::sh(dir, "git add -A && git commit -qm 'deploy env'");
        },
        |c| c.secret_values.0.push(SECRET.into()),
    )
    .await;
    let mut task = h.task("look at the deploy settings");
    let _ = h.run(&mut task).await;
    let reqs = h.fake.requests();
    assert!(reqs.len() >= 3, "{} requests", reqs.len());
    for r in &reqs {
        assert!(!r.body.to_string().contains(SECRET), "{}", r.body);
    }
    assert!(
        reqs[1].body.to_string().contains("<redacted>"),
        "{}",
        reqs[1].body
    );
}

#[tokio::test]
async fn docker_keeps_host_secrets_out() {
    no_host_secret_gets_in(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_keeps_host_secrets_out() {
    no_host_secret_gets_in(Backend::Bwrap).await;
}
#[tokio::test]
async fn docker_has_no_network() {
    the_network_is_unreachable(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_has_no_network() {
    the_network_is_unreachable(Backend::Bwrap).await;
}
#[tokio::test]
async fn docker_refuses_writes_outside_the_workspace() {
    writes_outside_the_workspace_fail(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_refuses_writes_outside_the_workspace() {
    writes_outside_the_workspace_fail(Backend::Bwrap).await;
}
#[tokio::test]
async fn docker_kills_a_hung_command() {
    a_hung_command_is_killed_at_its_timeout(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_kills_a_hung_command() {
    a_hung_command_is_killed_at_its_timeout(Backend::Bwrap).await;
}
#[tokio::test]
async fn docker_caps_an_output_flood() {
    a_flood_of_output_is_capped(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_caps_an_output_flood() {
    a_flood_of_output_is_capped(Backend::Bwrap).await;
}
#[tokio::test]
async fn docker_refuses_to_fill_the_disk() {
    filling_the_disk_is_refused(Backend::Docker).await;
}
#[tokio::test]
async fn bwrap_refuses_to_fill_the_disk() {
    filling_the_disk_is_refused(Backend::Bwrap).await;
}

#[tokio::test]
async fn docker_cancellation_removes_the_container() {
    let run_id = cancellation_stops_a_running_command(Backend::Docker).await;
    assert!(support::containers_of(&run_id).await.is_empty());
}

#[tokio::test]
async fn bwrap_cancellation_stops_the_command() {
    cancellation_stops_a_running_command(Backend::Bwrap).await;
}

#[tokio::test]
async fn docker_survives_a_fork_bomb_under_its_pids_limit() {
    let b = start(Backend::Docker, |c| c.pids = 128).await;
    let out = b
        .session
        .exec(
            "bomb() { bomb | bomb & }; bomb; sleep 3; echo survived",
            Duration::from_secs(10),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    // The command returns (its "survived" may sit in the capped middle of the bomb's output).
    assert!(
        out.exit_code.is_some() || out.timed_out,
        "exit {:?}, timed out {}",
        out.exit_code,
        out.timed_out
    );
    // The container is still usable once the bomb is gone (restart or timeout).
    let after = b
        .session
        .exec(
            "echo alive",
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(after.output.contains("alive"), "{after:?}");
    b.session.close().await.unwrap();
}

#[tokio::test]
async fn a_dropped_docker_session_is_removed() {
    let b = start(Backend::Docker, |_| {}).await;
    let run_id = b.run_id.clone();
    assert_eq!(support::containers_of(&run_id).await.len(), 1);
    drop(b);
    let mut gone = false;
    for _ in 0..100 {
        if support::containers_of(&run_id).await.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "container of a dropped session still exists");
}
