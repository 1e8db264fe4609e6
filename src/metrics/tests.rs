use super::*;
use crate::report::*;
use crate::run::events::NodeKind;

fn report(decision: Decision, warm: bool) -> RunReport {
    RunReport {
        task_id: "0123456789ab".into(),
        revision: 1,
        run_id: "ba9876543210".into(),
        repo: "acme/calc".into(),
        base: "main".into(),
        branch: "slipway/01234567-fix-add".into(),
        commit: None,
        pr_url: None,
        blueprint: "code_change".into(),
        decision,
        reasons: vec![],
        classification: Classification::Docs,
        gates: vec![],
        tools: vec![],
        fix_rounds: 0,
        agent: AgentTotals {
            steps: 2,
            input_tokens: 1200,
            output_tokens: 80,
            cost_usd: 0.25,
        },
        timings_ms: Timings::default(),
        sandbox: SandboxInfo {
            backend: "bwrap".into(),
            image: "/".into(),
            network: false,
            warm,
        },
    }
}

fn run(task: &str, event: RunEvent) -> QueueEvent {
    QueueEvent::Run {
        task_id: task.into(),
        event,
    }
}

fn node(name: &str, duration_ms: u64) -> RunEvent {
    RunEvent::NodeFinished {
        node: name.into(),
        kind: NodeKind::Deterministic,
        ok: true,
        detail: String::new(),
        duration_ms,
    }
}

fn started(task: &str) -> QueueEvent {
    run(
        task,
        RunEvent::RunStarted {
            task_id: task.into(),
            run_id: "r".into(),
            revision: 1,
            branch: "b".into(),
        },
    )
}

#[test]
fn renders_runs_nodes_tokens_sandboxes_and_queue_with_help_and_type() {
    let m = Metrics::new();
    m.observe(&started("t1"));
    m.observe(&run("t1", node("sandbox", 300)));
    m.observe(&run("t1", node("checks", 7_000)));
    m.observe(&run("t1", node("sandbox", 200)));
    m.observe(&run(
        "t1",
        RunEvent::RunFinished {
            report: Box::new(report(Decision::AutoMerge, true)),
        },
    ));
    m.observe(&started("t2"));
    m.observe(&run(
        "t2",
        RunEvent::RunFailed {
            error: "boom".into(),
        },
    ));
    // The queue's own failure after a reported failure is not a second run.
    m.observe(&QueueEvent::Failed {
        task_id: "t2".into(),
        error: "boom".into(),
    });
    let mut out = String::new();
    m.render(
        QueueGauges {
            depth: 3,
            oldest_age_s: 12.5,
        },
        &mut out,
    );
    for want in [
        "# HELP slipway_runs_total ",
        "# TYPE slipway_runs_total counter\n",
        "slipway_runs_total{blueprint=\"code_change\",decision=\"auto_merge\"} 1\n",
        "slipway_runs_total{blueprint=\"unknown\",decision=\"failed\"} 1\n",
        "# TYPE slipway_node_duration_seconds histogram\n",
        "slipway_node_duration_seconds_bucket{node=\"checks\",le=\"5\"} 0\n",
        "slipway_node_duration_seconds_bucket{node=\"checks\",le=\"10\"} 1\n",
        "slipway_node_duration_seconds_bucket{node=\"checks\",le=\"+Inf\"} 1\n",
        "slipway_node_duration_seconds_sum{node=\"checks\"} 7\n",
        "slipway_node_duration_seconds_count{node=\"sandbox\"} 2\n",
        "slipway_node_duration_seconds_bucket{node=\"sandbox\",le=\"0.5\"} 2\n",
        "# TYPE slipway_model_tokens_total counter\n",
        "slipway_model_tokens_total{repo=\"acme/calc\",direction=\"input\"} 1200\n",
        "slipway_model_tokens_total{repo=\"acme/calc\",direction=\"output\"} 80\n",
        "# TYPE slipway_model_cost_usd_total counter\n",
        "slipway_model_cost_usd_total{repo=\"acme/calc\"} 0.25\n",
        "# TYPE slipway_sandbox_starts_total counter\n",
        "slipway_sandbox_starts_total{kind=\"warm\"} 1\n",
        "slipway_sandbox_starts_total{kind=\"cold\"} 1\n",
        "# TYPE slipway_queue_depth gauge\nslipway_queue_depth 3\n",
        "# TYPE slipway_queue_oldest_age_seconds gauge\nslipway_queue_oldest_age_seconds 12.5\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Every sample line belongs to a family announced before it.
    let mut typed = Vec::new();
    for l in out.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap_or_default().to_string());
        } else if !l.starts_with('#') {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                typed.iter().any(|t| name.starts_with(t.as_str())),
                "{name} has no TYPE line"
            );
        }
    }
}

#[test]
fn label_values_are_escaped() {
    let mut out = String::new();
    line(&mut out, "x", &[("repo", "a\"b\\c\nd")], 1);
    assert_eq!(out, "x{repo=\"a\\\"b\\\\c\\nd\"} 1\n");
}
