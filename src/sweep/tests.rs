use super::*;

fn plant(data: &Path, rel: &str) -> PathBuf {
    let p = data.join(rel);
    std::fs::create_dir_all(p.join("sub")).unwrap();
    std::fs::write(p.join("sub/file"), "x").unwrap();
    p
}

#[test]
fn the_sweep_removes_a_dead_owners_run_directories_and_keeps_a_live_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let dead = [
        plant(data, "worktrees/deadrun"),
        plant(data, "gitdirs/deadrun"),
        plant(data, "homes/deadrun"),
        plant(data, "envs/.bases/deadrun"),
        plant(data, "worktrees/merge-dead1"),
        plant(data, "mirrors/.tmp-dead2"),
        plant(data, "envs/.building/k-dead3"),
    ];
    std::fs::write(data.join("envs/.bases/deadrun.index"), "i").unwrap();
    // A dead owner's claim file (its lock went with its process).
    std::fs::create_dir_all(data.join("claims")).unwrap();
    std::fs::write(data.join("claims/deadrun"), "").unwrap();

    let _live = Claim::take(data, "liverun").unwrap();
    let _merge = Claim::take(data, "merge-live").unwrap();
    let live = [
        plant(data, "worktrees/liverun"),
        plant(data, "homes/liverun"),
        plant(data, "worktrees/merge-live"),
    ];
    let mirror = plant(data, "mirrors/acme_calc.git");

    let swept = sweep_data_dir(data);
    for d in &dead {
        assert!(!d.exists(), "{} should be gone", d.display());
    }
    assert!(!data.join("envs/.bases/deadrun.index").exists());
    assert!(!data.join("claims/deadrun").exists());
    for d in &live {
        assert!(d.join("sub/file").exists(), "{} should stay", d.display());
    }
    assert!(mirror.exists(), "mirrors are not per-run");
    assert_eq!(
        swept,
        Swept {
            removed: 8,
            kept: 3,
            claims: 1
        }
    );
}

#[test]
fn a_claim_is_released_when_dropped_and_cannot_be_taken_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Claim::take(tmp.path(), "r1").unwrap();
    assert!(is_claimed(tmp.path(), "r1"));
    let again = Claim::take(tmp.path(), "r1").unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::WouldBlock);
    drop(c);
    assert!(!is_claimed(tmp.path(), "r1"));
    assert!(!tmp.path().join("claims/r1").exists());
}

#[test]
fn the_sweep_does_not_follow_symlinks_planted_in_a_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("keep")).unwrap();
    std::fs::write(outside.join("keep/precious"), "p").unwrap();
    let home = plant(&data, "homes/deadrun");
    std::os::unix::fs::symlink(&outside, home.join("link")).unwrap();
    // A read-only directory forces remove_tree's chmod walk.
    let ro = home.join("ro");
    std::fs::create_dir_all(ro.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, ro.join("link")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // A whole entry that is a symlink to a host directory.
    std::os::unix::fs::symlink(&outside, data.join("worktrees/evil")).unwrap_or_else(|_| {
        std::fs::create_dir_all(data.join("worktrees")).unwrap();
        std::os::unix::fs::symlink(&outside, data.join("worktrees/evil")).unwrap();
    });
    let outside_mode = std::fs::metadata(&outside).unwrap().permissions().mode();

    sweep_data_dir(&data);
    assert!(!home.exists());
    assert!(std::fs::symlink_metadata(data.join("worktrees/evil")).is_err());
    assert!(outside.join("keep/precious").exists());
    assert_eq!(
        std::fs::metadata(&outside).unwrap().permissions().mode(),
        outside_mode
    );
}
