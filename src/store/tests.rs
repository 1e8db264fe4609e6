//! The store's own tests.
use super::*;
use crate::task::{Origin, RepoRef};

fn task() -> Task {
    Task::new(
        RepoRef {
            name: "o/n".into(),
            source: "/x".into(),
            base: "main".into(),
            forge: Default::default(),
        },
        "alice",
        Origin::Cli,
        "fix it",
    )
}

#[tokio::test]
async fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let t = task();
    {
        let s = Store::open(dir.path()).unwrap();
        s.put_task(&t).await.unwrap();
        s.audit_now(Some(&t.id), None, "alice", AuditEvent::CancelRequested {})
            .await
            .unwrap();
        s.append_transcript(
            "run1",
            &TranscriptEntry {
                kind: "llm_request".into(),
                at_ms: 1,
                duration_ms: 2,
                body: serde_json::json!({"a": 1}),
            },
        )
        .await
        .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.get_task(&t.id).unwrap().unwrap().branch, t.branch);
    assert_eq!(s.audit_log(Some(&t.id)).unwrap().len(), 1);
    assert_eq!(s.transcript("run1").unwrap()[0].body["a"], 1);
    assert!(s.transcript("run").unwrap().is_empty());
}

#[tokio::test]
async fn the_queue_is_fifo_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let item = |t: &str| QueueItem {
        task_id: t.into(),
        revision: 1,
        enqueued_ms: 0,
        reruns: 0,
    };
    {
        let s = Store::open(dir.path()).unwrap();
        s.enqueue(&item("a")).await.unwrap();
        let b = s.enqueue(&item("b")).await.unwrap();
        s.enqueue(&item("c")).await.unwrap();
        s.dequeue(b).await.unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let ids: Vec<String> = s
        .queued()
        .unwrap()
        .into_iter()
        .map(|(_, i)| i.task_id)
        .collect();
    assert_eq!(ids, ["a", "c"]);
}

#[tokio::test]
async fn dedupe_sees_each_key_once_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert!(s.first_sighting("Ev01", 1000, 10).await.unwrap());
    assert!(!s.first_sighting("Ev01", 1000, 500).await.unwrap());
    assert!(
        s.first_sighting("C0DEV/1700000000.000100", 1000, 500)
            .await
            .unwrap()
    );
    assert!(
        s.first_sighting("Ev01", 1000, 2000).await.unwrap(),
        "expired records count as new"
    );
    assert_eq!(s.sweep_dedupe(10_000).await.unwrap(), 2);
    // Concurrent deliveries of one event: exactly one wins.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.first_sighting("Ev02", 1000, 20_000).await.unwrap()
        }));
    }
    let mut wins = 0;
    for h in handles {
        wins += usize::from(h.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn values_are_versioned_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let t = task();
    s.put_task(&t).await.unwrap();
    let raw = s.tasks.get(t.id.as_bytes()).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["v"], 1);
    assert_eq!(v["data"]["id"], t.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_racing_claims_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for round in 0..50 {
        let key = format!("revert/{round}");
        let (first, second) = ("first".to_string(), "second".to_string());
        let (a, b) = tokio::join!(
            store.claim_binding(&key, &first),
            store.claim_binding(&key, &second)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.is_none() ^ b.is_none(), "round {round}: {a:?} {b:?}");
        let winner: String = store.binding(&key).unwrap().unwrap();
        // The loser is told the winner's value.
        assert_eq!(a.or(b), Some(winner));
    }
}
