//! CI on one commit: check runs (GitHub Checks API) and commit statuses (the combined status),
//! narrowed to the required checks, judged as pending, passed or failed. Pure: the forge does
//! the fetching and the waiting.
//!
//! It must not call GitHub: `ci_wait` fetches and polls.

use serde::Deserialize;

use crate::untrusted::strip_controls;

/// The parts of a check run slipway reads (`GET /repos/{o}/{r}/commits/{sha}/check-runs`).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed` (also `waiting`, `requested`, `pending`).
    #[serde(default)]
    pub status: String,
    /// Set once completed: `success`, `failure`, `neutral`, `cancelled`, `skipped`,
    /// `timed_out`, `action_required`, `stale`, `startup_failure`.
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub output: CheckOutput,
}

/// A check run's `output`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckOutput {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// One commit status (`GET /repos/{o}/{r}/commits/{sha}/status`, `.statuses[]`).
#[derive(Debug, Clone, Deserialize)]
pub struct CommitStatus {
    pub context: String,
    /// `success`, `pending`, `failure`, `error`.
    pub state: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
}

/// One failed check, with what the agent needs to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiFailure {
    pub name: String,
    pub conclusion: String,
    /// Title, summary and text of the check's output (or the status description).
    pub output: String,
    pub url: Option<String>,
    /// The check run's id, for its annotations; `None` for a commit status.
    pub check_run_id: Option<u64>,
}

/// CI's state on one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiState {
    /// Something required has not finished (or not reported yet).
    Pending { waiting: Vec<String> },
    /// Every considered check passed.
    Passed { names: Vec<String> },
    /// At least one considered check failed (reported as soon as one fails).
    Failed { failures: Vec<CiFailure> },
    /// No check run and no status at all, and nothing is required.
    None,
}

fn passed(conclusion: &str) -> bool {
    matches!(conclusion, "success" | "neutral" | "skipped")
}

/// Judges CI from the check runs and statuses on one commit. `required` comes from branch
/// protection (`None` when the base is unprotected or protection is unreadable: then every
/// check counts). A re-run check is judged by its newest run (highest id).
pub fn evaluate(
    runs: &[CheckRun],
    statuses: &[CommitStatus],
    required: Option<&[String]>,
) -> CiState {
    let mut newest: Vec<&CheckRun> = Vec::new();
    for r in runs {
        match newest.iter_mut().find(|n| n.name == r.name) {
            Some(n) if n.id < r.id => *n = r,
            Some(_) => {}
            None => newest.push(r),
        }
    }
    let counts = |name: &str| required.is_none_or(|req| req.iter().any(|q| q == name));
    let mut waiting = Vec::new();
    let mut names = Vec::new();
    let mut failures = Vec::new();
    for r in newest.iter().filter(|r| counts(&r.name)) {
        match (r.status.as_str(), r.conclusion.as_deref()) {
            ("completed", Some(c)) if passed(c) => names.push(r.name.clone()),
            ("completed", Some(c)) => failures.push(CiFailure {
                name: r.name.clone(),
                conclusion: c.to_string(),
                output: [&r.output.title, &r.output.summary, &r.output.text]
                    .into_iter()
                    .flatten()
                    .map(|s| s.trim())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n"),
                url: r.html_url.clone(),
                check_run_id: Some(r.id),
            }),
            _ => waiting.push(r.name.clone()),
        }
    }
    for s in statuses.iter().filter(|s| counts(&s.context)) {
        match s.state.as_str() {
            "success" => names.push(s.context.clone()),
            "failure" | "error" => failures.push(CiFailure {
                name: s.context.clone(),
                conclusion: s.state.clone(),
                output: s.description.clone().unwrap_or_default(),
                url: s.target_url.clone(),
                check_run_id: None,
            }),
            _ => waiting.push(s.context.clone()),
        }
    }
    if let Some(req) = required {
        for q in req {
            let seen =
                newest.iter().any(|r| &r.name == q) || statuses.iter().any(|s| &s.context == q);
            if !seen {
                waiting.push(q.clone());
            }
        }
    }
    if !failures.is_empty() {
        CiState::Failed { failures }
    } else if !waiting.is_empty() {
        CiState::Pending { waiting }
    } else if names.is_empty() {
        CiState::None
    } else {
        CiState::Passed { names }
    }
}

/// The failures as the agent's CI fix round sees them: each check's name, conclusion, link
/// and output (each capped at `cap` characters), plus annotations when fetched. CI logs are
/// test runners' output: terminal control sequences are stripped before the model sees them.
pub fn failures_text(
    failures: &[CiFailure],
    annotations: &[(String, Vec<String>)],
    cap: usize,
) -> String {
    let mut out = String::new();
    for f in failures {
        out.push_str(&format!("### CI check `{}`: {}\n", f.name, f.conclusion));
        if let Some(u) = &f.url {
            out.push_str(&format!("{u}\n"));
        }
        if !f.output.is_empty() {
            out.push_str(&format!(
                "```\n{}\n```\n",
                crate::task::truncate_chars(&strip_controls(&f.output), cap).replace("```", "ʼʼʼ")
            ));
        }
        if let Some((_, notes)) = annotations.iter().find(|(n, _)| n == &f.name)
            && !notes.is_empty()
        {
            out.push_str("Annotations:\n");
            for n in notes {
                out.push_str(&format!("- {}\n", strip_controls(n)));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, name: &str, status: &str, conclusion: Option<&str>) -> CheckRun {
        CheckRun {
            id,
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_owned),
            html_url: None,
            output: CheckOutput {
                title: Some(format!("{name} output")),
                summary: None,
                text: None,
            },
        }
    }

    fn status(context: &str, state: &str) -> CommitStatus {
        CommitStatus {
            context: context.into(),
            state: state.into(),
            description: Some("desc".into()),
            target_url: None,
        }
    }

    #[test]
    fn ci_is_judged_on_required_checks_and_newest_runs() {
        let runs = [
            run(1, "build", "completed", Some("success")),
            run(2, "test", "completed", Some("failure")),
            run(3, "test", "completed", Some("success")), // re-run wins
            run(4, "lint", "in_progress", None),
        ];
        // Everything counts without protection: lint is still running.
        assert_eq!(
            evaluate(&runs, &[], None),
            CiState::Pending {
                waiting: vec!["lint".into()]
            }
        );
        // Only build and test are required: lint does not hold it up.
        let req = ["build".to_string(), "test".to_string()];
        assert!(matches!(
            evaluate(&runs, &[], Some(&req)),
            CiState::Passed { .. }
        ));
        // A required check that has not reported yet is pending.
        let req = ["build".to_string(), "deploy-preview".to_string()];
        assert_eq!(
            evaluate(&runs, &[], Some(&req)),
            CiState::Pending {
                waiting: vec!["deploy-preview".into()]
            }
        );
        // A failed status fails, even while other checks run.
        let st = [status("ci/legacy", "failure")];
        match evaluate(&runs, &st, None) {
            CiState::Failed { failures } => {
                assert_eq!(failures[0].name, "ci/legacy");
                assert_eq!(failures[0].output, "desc");
            }
            other => panic!("{other:?}"),
        }
        // Neutral and skipped pass; timed_out fails.
        let runs = [
            run(1, "a", "completed", Some("neutral")),
            run(2, "b", "completed", Some("skipped")),
        ];
        assert!(matches!(evaluate(&runs, &[], None), CiState::Passed { .. }));
        let runs = [run(1, "a", "completed", Some("timed_out"))];
        assert!(matches!(evaluate(&runs, &[], None), CiState::Failed { .. }));
        // Nothing at all.
        assert_eq!(evaluate(&[], &[], None), CiState::None);
    }

    #[test]
    fn failure_text_is_capped_and_fenced() {
        let f = CiFailure {
            name: "test".into(),
            conclusion: "failure".into(),
            output: format!("```{}", "x".repeat(50)),
            url: Some("https://ci/1".into()),
            check_run_id: Some(1),
        };
        let t = failures_text(
            &[f],
            &[("test".into(), vec!["calc.py:3 assert".into()])],
            10,
        );
        assert!(t.contains("### CI check `test`: failure") && t.contains("https://ci/1"));
        assert!(t.contains("calc.py:3 assert"));
        assert_eq!(t.matches("```").count(), 2, "{t}");
    }

    #[test]
    fn ci_logs_reach_the_model_without_terminal_sequences() {
        let f = CiFailure {
            name: "test".into(),
            conclusion: "failure".into(),
            output: "\x1b[31mFAILED\x1b[0m test_add\x1b]0;pwned\x07".into(),
            url: None,
            check_run_id: Some(1),
        };
        let notes = vec!["\x1b[1mcalc.py:3\x1b[0m".to_string()];
        let t = failures_text(&[f], &[("test".into(), notes)], 100);
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(
            t.contains("FAILED test_add") && t.contains("calc.py:3"),
            "{t}"
        );
    }
}
