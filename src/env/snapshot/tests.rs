//! Tests of the snapshot store.
use super::*;

fn meta(key: &EnvKey, repo: &str) -> SnapshotMeta {
    SnapshotMeta {
        key: key.clone(),
        repo: repo.into(),
        source: "detected from package-lock.json".into(),
        image: "sha256:abc".into(),
        base_sha: "0".repeat(40),
        created_ms: crate::task::now_ms(),
        setup_ms: 10,
        bytes: 0,
        carry: vec!["node_modules".into(), "absent".into()],
        generated: vec!["src/pkg/_version.py".into()],
    }
}

fn inputs(lock: &[u8]) -> KeyInputs<'static> {
    KeyInputs {
        image: "sha256:abc",
        source: "detected from package-lock.json",
        setup: &[],
        env: None,
        files: vec![("package-lock.json".into(), Some(lock.to_vec()))],
    }
}

#[test]
fn the_key_changes_with_every_input() {
    let base = inputs(b"{}").key();
    assert_eq!(base, inputs(b"{}").key());
    assert_ne!(base, inputs(b"{ }").key());
    let mut other = inputs(b"{}");
    other.image = "sha256:def";
    assert_ne!(base, other.key());
    let mut absent = inputs(b"{}");
    absent.files = vec![("package-lock.json".into(), None)];
    assert_ne!(base, absent.key());
    let cmds = ["npm ci".to_string()];
    let mut with_setup = inputs(b"{}");
    with_setup.setup = &cmds;
    assert_ne!(base, with_setup.key());
    // Concatenation cannot collide: ("ab","c") and ("a","bc").
    let ab = ["ab".to_string(), "c".to_string()];
    let bc = ["a".to_string(), "bc".to_string()];
    let (mut x, mut y) = (inputs(b""), inputs(b""));
    x.setup = &ab;
    y.setup = &bc;
    assert_ne!(x.key(), y.key());
}

#[test]
fn a_committed_build_is_found_and_carries_its_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EnvStore::new(tmp.path(), Duration::from_secs(3600));
    let key = inputs(b"{}").key();
    assert!(store.lookup("acme/web", &key).is_none());
    let b = store.begin("acme/web", &key).unwrap();
    std::fs::create_dir_all(b.src_dir().join("node_modules/left-pad")).unwrap();
    std::fs::write(b.src_dir().join("node_modules/left-pad/index.js"), "x").unwrap();
    std::fs::write(b.src_dir().join("package.json"), "{}").unwrap();
    std::fs::create_dir_all(b.src_dir().join("src/pkg")).unwrap();
    std::fs::write(b.src_dir().join("src/pkg/_version.py"), "v = 1").unwrap();
    std::fs::create_dir_all(b.home_dir().join(".cache/pip")).unwrap();
    std::fs::write(b.env_dir().join("marker"), "venv").unwrap();
    let snap = b.commit(meta(&key, "acme/web")).unwrap();
    assert_eq!(snap.meta.carry, vec!["node_modules".to_string()]);
    assert!(
        snap.carry_dir("node_modules")
            .join("left-pad/index.js")
            .is_file()
    );
    assert!(!snap.dir.join("src").exists(), "the base tree is not kept");
    assert!(!snap.env_dir().join("home/.cache").exists());
    assert_eq!(
        std::fs::read_to_string(snap.generated_dir().join("src/pkg/_version.py")).unwrap(),
        "v = 1"
    );
    assert_eq!(snap.meta.bytes, 10);
    let found = store.lookup("acme/web", &key).expect("hit");
    assert_eq!(found.meta, snap.meta);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(
        std::fs::read_dir(tmp.path().join("envs/.building"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn an_abandoned_build_leaves_nothing_and_is_never_found() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EnvStore::new(tmp.path(), Duration::from_secs(3600));
    let key = inputs(b"{}").key();
    let b = store.begin("acme/web", &key).unwrap();
    std::fs::write(b.env_dir().join("half"), "x").unwrap();
    drop(b);
    assert!(store.lookup("acme/web", &key).is_none());
    assert!(store.list().unwrap().is_empty());
    assert!(
        std::fs::read_dir(tmp.path().join("envs/.building"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// Commits an entry of `key` for `acme/web` created two hours ago (past a 1 h TTL).
fn commit_expired(store: &EnvStore, key: &EnvKey, source: &str) {
    let mut old = meta(key, "acme/web");
    old.created_ms -= 7_200_000;
    old.source = source.into();
    store.begin("acme/web", key).unwrap().commit(old).unwrap();
}

#[test]
fn an_expired_entry_is_replaced_by_the_new_build() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EnvStore::new(tmp.path(), Duration::from_secs(3600));
    let key = inputs(b"1").key();
    commit_expired(&store, &key, "old");
    assert!(store.lookup("acme/web", &key).is_none(), "expired");
    let b = store.begin("acme/web", &key).unwrap();
    std::fs::write(b.env_dir().join("new"), "x").unwrap();
    let snap = b.commit(meta(&key, "acme/web")).unwrap();
    assert!(
        snap.env_dir().join("new").is_file(),
        "the new build is in place"
    );
    let found = store.lookup("acme/web", &key).expect("fresh again");
    assert_ne!(found.meta.source, "old");
    assert!(
        std::fs::read_dir(tmp.path().join("envs/.trash"))
            .unwrap()
            .next()
            .is_some(),
        "the old one was set aside, not deleted under a running sandbox"
    );
}

#[test]
fn similar_repo_names_never_share_snapshots() {
    assert_ne!(repo_dir("a/b_c"), repo_dir("a_b/c"));
    assert!(repo_dir("acme/calc").starts_with("acme_calc-"));
}

#[test]
fn expired_and_superseded_entries_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let store = EnvStore::new(tmp.path(), Duration::from_secs(3600));
    let k1 = inputs(b"1").key();
    let k2 = inputs(b"2").key();
    commit_expired(&store, &k1, "old");
    store
        .begin("acme/web", &k2)
        .unwrap()
        .commit(meta(&k2, "acme/web"))
        .unwrap();
    assert!(store.lookup("acme/web", &k1).is_none(), "past the TTL");
    assert!(store.lookup("acme/web", &k2).is_some());
    let removed = store.prune(false, 3).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].key, k1);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.prune(true, 3).unwrap().len(), 1);
    assert!(store.list().unwrap().is_empty());
}
