//! What a killed slipway leaves behind, and who cleans it: the startup sweep of dead
//! owners' containers and per-run directories, never a live owner's.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use slipway::sweep::Claim;
use slipway::sweep::process::ProcessId;

use crate::support::fake_llm::FakeLlm;
use crate::support::{IMAGE, containers_labelled, docker_host, fix_script, python_repo};

async fn engine() -> bollard::Docker {
    let host = docker_host();
    bollard::Docker::connect_with_unix(
        host.trim_start_matches("unix://"),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
    .negotiate_version()
    .await
    .unwrap()
}

/// Creates (does not start) a container with slipway's labels, owned by `owner`.
async fn planted_container(d: &bollard::Docker, tag: &str, owner: &ProcessId) -> String {
    let labels = HashMap::from([
        ("slipway.managed".to_string(), "1".to_string()),
        ("slipway.pid".to_string(), owner.pid.to_string()),
        ("slipway.owner".to_string(), owner.to_string()),
        ("slipway.run".to_string(), tag.to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_string()),
        cmd: Some(vec!["true".to_string()]),
        labels: Some(labels),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::new().name(tag).build();
    d.create_container(Some(opts), body).await.unwrap().id
}

fn plant_dir(data: &Path, rel: &str) {
    let p = data.join(rel);
    std::fs::create_dir_all(p.join("sub")).unwrap();
    std::fs::write(p.join("sub/file"), "x").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_removes_a_dead_owners_leftovers_and_keeps_a_live_ones() {
    let data = tempfile::tempdir().unwrap();
    let me = ProcessId::current().unwrap();
    let d = engine().await;
    let tag = slipway::task::new_id();
    // A dead owner whose pid now belongs to a live process (this one): pid reuse.
    let reused = ProcessId {
        start: me.start + 1,
        ..me.clone()
    };
    let dead_c = planted_container(&d, &format!("sweep-dead-{tag}"), &reused).await;
    let live_c = planted_container(&d, &format!("sweep-live-{tag}"), &me).await;
    let dead_dirs = [
        "worktrees/deadrun",
        "gitdirs/deadrun",
        "homes/deadrun",
        "envs/.bases/deadrun",
        "worktrees/merge-dead",
        "mirrors/.tmp-dead",
    ];
    for rel in dead_dirs {
        plant_dir(data.path(), rel);
    }
    // A live owner (this test process) holds its claims.
    let _live = Claim::take(data.path(), "liverun").unwrap();
    let live_dirs = ["worktrees/liverun", "gitdirs/liverun", "homes/liverun"];
    for rel in live_dirs {
        plant_dir(data.path(), rel);
    }

    // A one-shot `slipway run` on the docker backend starts, sweeps, runs.
    let fake = FakeLlm::start(fix_script()).await;
    let repo = tempfile::tempdir().unwrap();
    python_repo(repo.path());
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "run",
            "--repo",
            &repo.path().display().to_string(),
            "fix add()",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("SLIPWAY_DATA_DIR", data.path())
        .env("DOCKER_HOST", docker_host())
        .env("SLIPWAY_SANDBOX", "docker")
        .env("SLIPWAY_LLM_PROVIDER", "openai")
        .env("SLIPWAY_LLM_BASE_URL", format!("http://{}/v1", fake.addr))
        .env("SLIPWAY_LLM_MODEL", "scripted-model")
        .env("SLIPWAY_LLM_API_KEY", "sk-test")
        .env("RUST_LOG", "info")
        .current_dir(data.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");

    for rel in dead_dirs {
        assert!(!data.path().join(rel).exists(), "{rel} should be swept");
    }
    for rel in live_dirs {
        assert!(
            data.path().join(rel).join("sub/file").exists(),
            "{rel} is a live owner's"
        );
    }
    let dead_left = containers_labelled(&format!("slipway.run=sweep-dead-{tag}")).await;
    let live_left = containers_labelled(&format!("slipway.run=sweep-live-{tag}")).await;
    let rm = RemoveContainerOptionsBuilder::new().force(true).build();
    let _ = d.remove_container(&live_c, Some(rm.clone())).await;
    let _ = d.remove_container(&dead_c, Some(rm)).await;
    assert!(
        dead_left.is_empty(),
        "the dead owner's container is removed"
    );
    assert_eq!(live_left.len(), 1, "the live owner's container is kept");
}
