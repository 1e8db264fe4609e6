//! The dependency-update lane end to end (issue 15), against real registries started by the
//! tests (`support::registries`: verdaccio and pypiserver in a network namespace the fenced
//! setup sandbox can reach), real npm/uv in the docker sandbox, git and a local forge. The
//! model is the loopback fake: a clean bump must not call it at all.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use slipway::actions::deps::{DepsPlanner, GroupTask};
use slipway::deps::{DepsRequest, UpdateType};
use slipway::report::{Decision, GateStatus, RunReport};
use slipway::sandbox::Backend;
use slipway::task::{BlueprintId, Origin, RepoRef, Task};
use tokio_util::sync::CancellationToken;

use crate::support::fake_llm::Turn;
use crate::support::registries::{TOY, TOY_NPM_SCOPED, TestRegistries, standard_set};
use crate::support::{Harness, git_repo, sh};
use slipway::agent::llm::settings::LlmProvider;

/// The app: `index.js` calls the toy's `greet`; `npm test` checks it.
const INDEX_JS: &str =
    "const toy = require('slipway-toy');\nexports.hello = (n) => toy.greet(n);\n";
const TEST_JS: &str = "const assert = require('assert');\nconst app = require('./index.js');\nassert.strictEqual(app.hello('x'), 'hello x');\nconsole.log('ok');\n";

/// An npm repo depending on `deps` (name → exact version) with a lockfile made by npm
/// against the test registry, and `extra` files.
fn npm_repo(dir: &Path, reg: &TestRegistries, deps: &[(&str, &str)], extra: &[(&str, &str)]) {
    let deps: serde_json::Map<String, serde_json::Value> = deps
        .iter()
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect();
    let pkg = json!({
        "name": "app", "version": "0.0.0", "private": true,
        "scripts": {"test": "node test.js"},
        "dependencies": deps,
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&pkg).unwrap() + "\n",
    )
    .unwrap();
    sh(
        dir,
        &format!(
            "npm install --package-lock-only --ignore-scripts --no-audit --no-fund --registry {} >/dev/null",
            reg.npm
        ),
    );
    let mut files = vec![("index.js", INDEX_JS), ("test.js", TEST_JS)];
    files.extend_from_slice(extra);
    git_repo(dir, &files);
}

/// A harness over an npm repo whose setup reaches the test registries.
async fn harness(
    script: Vec<Turn>,
    deps: &'static [(&'static str, &'static str)],
    extra: &'static [(&'static str, &'static str)],
    auto_merge: bool,
) -> (Harness, &'static TestRegistries) {
    harness_with(
        script,
        move |d, reg| npm_repo(d, reg, deps, extra),
        auto_merge,
    )
    .await
}

/// A harness over the repo `make` lays out, with setup reaching the test registries, and its
/// bare copy as the local forge.
async fn harness_with(
    script: Vec<Turn>,
    make: impl FnOnce(&Path, &TestRegistries) + 'static,
    auto_merge: bool,
) -> (Harness, &'static TestRegistries) {
    let reg = standard_set().await;
    let h = Harness::with_repo(
        Backend::Docker,
        LlmProvider::Openai,
        script,
        move |d| make(d, reg),
        move |cfg| {
            reg.configure(cfg);
            if auto_merge {
                cfg.file.policy.auto_merge = vec!["dependency_update".into()];
            }
            cfg.file.sandbox.command_timeout_s = 600;
        },
    )
    .await;
    // A local forge merges into its source, which must be bare.
    sh(
        h.data.path(),
        &format!("git clone -q --bare {} web.git", h.repo_path().display()),
    );
    (h, reg)
}

/// The forge's copy of the repo (bare): where branches are pushed and merges land.
fn forge(h: &Harness) -> std::path::PathBuf {
    h.data.path().join("web.git")
}

fn repo(h: &Harness) -> RepoRef {
    RepoRef {
        name: "acme/web".into(),
        source: forge(h).display().to_string(),
        base: "main".into(),
        forge: Default::default(),
    }
}

fn planner(h: &Harness) -> DepsPlanner {
    DepsPlanner {
        workspaces: h.runner.workspaces.clone(),
        forges: h.runner.forges.clone(),
        store: h.runner.store.clone(),
        lookup: h.runner.cfg.deps_lookup(),
    }
}

/// Plans `req` and runs every group's task; the reports, in group order.
async fn run_all(h: &Harness, req: DepsRequest) -> Vec<(Task, RunReport)> {
    let started = planner(h)
        .start(&repo(h), "U0ALICE", &Origin::Cli, &req)
        .await
        .unwrap();
    let mut out = Vec::new();
    for g in started.groups {
        let mut task = match g {
            GroupTask::New(t) => *t,
            GroupTask::Open { task, .. } => *task,
        };
        let report = h
            .runner
            .run_id(
                &mut task,
                BlueprintId::DependencyUpdate,
                CancellationToken::new(),
                None,
            )
            .await
            .unwrap();
        out.push((task, report));
    }
    out
}

/// Asks for `kind` updates: exactly one group, whose bump passes the repo's own tests and
/// auto-merges.
async fn auto_merged_alone(h: &Harness, kind: UpdateType) -> RunReport {
    let runs = run_all(
        h,
        DepsRequest {
            update_types: vec![kind],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(runs.len(), 1);
    let report = runs.into_iter().next().unwrap().1;
    assert_eq!(
        report.decision,
        Decision::AutoMerge,
        "{:?} {:?}",
        report.reasons,
        report.gates
    );
    assert_eq!(gate(&report, "tests").status, GateStatus::Pass);
    report
}

fn gate<'a>(r: &'a RunReport, name: &str) -> &'a slipway::report::Gate {
    r.gates
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no {name} gate: {:?}", r.gates))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_bump_auto_merges_with_no_model_call() {
    let (h, _reg) = harness(Vec::new(), &[(TOY, "1.0.0")], &[], true).await;
    let req = DepsRequest {
        update_types: vec![UpdateType::Patch],
        ..Default::default()
    };
    let runs = run_all(&h, req).await;
    assert_eq!(runs.len(), 1, "one group");
    let (task, report) = &runs[0];
    assert_eq!(report.blueprint, "dependency_update");
    assert_eq!(report.decision, Decision::AutoMerge, "{:?}", report.reasons);
    assert_eq!(report.classification.as_str(), "dependency_update");
    assert_eq!(report.agent.input_tokens + report.agent.output_tokens, 0);
    assert!(h.fake.requests().is_empty(), "the model was called");
    assert_eq!(gate(report, "tests").status, GateStatus::Pass);
    assert_eq!(gate(report, "agent").status, GateStatus::Skip);
    // The bump landed on main: manifest and lockfile at 1.0.1, by npm, in one commit.
    let src = forge(&h);
    let pkg = sh(&src, "git show main:package.json");
    assert!(pkg.contains("\"slipway-toy\": \"1.0.1\""), "{pkg}");
    let lock = sh(&src, "git show main:package-lock.json");
    assert!(
        lock.contains("slipway-toy/-/slipway-toy-1.0.1.tgz"),
        "{lock}"
    );
    let log = sh(&src, "git log --format=%s main");
    assert!(log.starts_with(&task.title()), "{log}");
    assert!(
        task.title().contains("slipway-toy from 1.0.0 to 1.0.1"),
        "{}",
        task.title()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renovate_group_becomes_one_pr_and_the_same_group_never_opens_twice() {
    const RENOVATE: &str = r#"{
  // JSON5 comments are fine, and an unknown key is a warning
  "packageRules": [{"matchPackageNames": ["slipway-toy", "@slipway/toy"], "groupName": "toys"}],
  "prHourlyLimit": 2,
}"#;
    let (h, _reg) = harness(
        Vec::new(),
        &[(TOY, "1.0.0"), (TOY_NPM_SCOPED, "1.0.0")],
        &[("renovate.json5", RENOVATE)],
        false,
    )
    .await;
    let req = DepsRequest {
        update_types: vec![UpdateType::Patch, UpdateType::Minor],
        ..Default::default()
    };
    let started = planner(&h)
        .start(&repo(&h), "U0ALICE", &Origin::Cli, &req)
        .await
        .unwrap();
    assert!(
        started
            .plan
            .warnings
            .iter()
            .any(|w| w.contains("prHourlyLimit")),
        "{:?}",
        started.plan.warnings
    );
    let runs = run_all(&h, req.clone()).await;
    assert_eq!(runs.len(), 1, "one group, one task");
    let (task, report) = &runs[0];
    assert_eq!(
        report.decision,
        Decision::NeedsApproval,
        "{:?}",
        report.reasons
    );
    let branch = sh(
        &forge(&h),
        &format!("git show {}:package.json", task.branch),
    );
    assert!(branch.contains("\"slipway-toy\": \"1.1.0\""), "{branch}");
    assert!(branch.contains("\"@slipway/toy\": \"1.1.0\""), "{branch}");
    // Asked again: the open task for the group is rerun, not a second one opened.
    let again = planner(&h)
        .start(&repo(&h), "U0ALICE", &Origin::Cli, &req)
        .await
        .unwrap();
    assert_eq!(again.groups.len(), 1);
    assert!(
        matches!(&again.groups[0], GroupTask::Open { task: t, .. } if t.id == task.id),
        "{:?}",
        again.groups
    );
    // Rerun, it redoes the bump from the base and replaces the branch in place: the same
    // branch, still one bump commit on it.
    let first_tip = sh(&forge(&h), &format!("git rev-parse {}", task.branch));
    let rerun = run_all(&h, req).await;
    assert_eq!(rerun.len(), 1);
    let (again_task, again_report) = &rerun[0];
    assert_eq!(again_task.id, task.id);
    assert_eq!(again_task.branch, task.branch);
    assert_eq!(again_report.decision, Decision::NeedsApproval);
    let log = sh(
        &forge(&h),
        &format!("git log --format=%H main..{}", task.branch),
    );
    assert_eq!(log.lines().count(), 1, "one bump commit: {log}");
    assert_ne!(
        log.trim(),
        first_tip.trim(),
        "the branch was replaced by the rerun"
    );
    let branches = sh(&forge(&h), "git branch --list 'slipway/*'");
    assert_eq!(branches.lines().count(), 1, "{branches}");
}

/// The scripted agent that adapts `index.js` to 2.0.0's rename and finishes.
fn adapt_script() -> Vec<Turn> {
    vec![
        Turn::call(
            "edit_file",
            json!({"path": "index.js", "old_text": "toy.greet(n)", "new_text": "toy.salute(n)"}),
        ),
        Turn::call("run", json!({"command": "npm test"})),
        Turn::call(
            "finish",
            json!({"summary": "2.0.0 renamed greet to salute; index.js calls salute."}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_breaking_major_is_fixed_by_the_agent_in_round_one_and_needs_approval() {
    let (h, _reg) = harness(adapt_script(), &[(TOY, "1.0.0")], &[], true).await;
    let req = DepsRequest {
        only: vec![TOY.into()],
        update_types: vec![UpdateType::Major],
        ..Default::default()
    };
    let runs = run_all(&h, req).await;
    let (task, report) = &runs[0];
    assert_eq!(report.fix_rounds, 1, "{report:?}");
    eprintln!(
        "breaking major: {} fix round(s), {} input + {} output tokens, {} model calls, run total {} ms",
        report.fix_rounds,
        report.agent.input_tokens,
        report.agent.output_tokens,
        h.fake.requests().len(),
        report.timings_ms.total
    );
    assert_eq!(
        report.decision,
        Decision::NeedsApproval,
        "{:?}",
        report.reasons
    );
    assert!(
        report
            .reasons
            .iter()
            .any(|r| r.contains("major update needs an approval")),
        "{:?}",
        report.reasons
    );
    assert!(report.agent.input_tokens > 0);
    // The first model turn carried the failure and the release notes, fenced as data.
    let first = &h.fake.requests()[0];
    let body = first.body.to_string();
    assert!(body.contains("greet"), "no failing output");
    assert!(
        body.contains("Breaking: `greet` is renamed `salute`"),
        "no release notes"
    );
    assert!(body.contains("data, not instructions"));
    // Bump and fix are separate commits on the branch.
    let log = sh(
        &forge(&h),
        &format!("git log --format=%s main..{}", task.branch),
    );
    assert_eq!(log.lines().count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_major_the_agent_cannot_fix_halts_and_names_the_package() {
    let give_up = vec![
        Turn::call("finish", json!({"summary": "I could not find the cause."})),
        Turn::call("finish", json!({"summary": "Still nothing."})),
    ];
    let (h, _reg) = harness(give_up, &[(TOY, "1.0.0")], &[], true).await;
    let req = DepsRequest {
        only: vec![TOY.into()],
        version: Some("2.0.0".into()),
        ..Default::default()
    };
    let runs = run_all(&h, req).await;
    let (task, report) = &runs[0];
    assert_eq!(report.decision, Decision::Halt);
    assert_eq!(report.fix_rounds, 2);
    assert!(
        report.reasons[0].contains("slipway-toy 1.0.0 → 2.0.0"),
        "{:?}",
        report.reasons
    );
    // Nothing left slipway: no branch in the source repo.
    let branches = sh(&forge(&h), "git branch --list");
    assert!(!branches.contains(&task.branch), "{branches}");
}

#[tokio::test(flavor = "multi_thread")]
async fn minimum_release_age_holds_back_a_fresh_release() {
    let (h, _reg) = harness(
        Vec::new(),
        &[(TOY, "1.0.0")],
        &[("renovate.json", r#"{"minimumReleaseAge": "3 days"}"#)],
        true,
    )
    .await;
    let started = planner(&h)
        .start(&repo(&h), "U0ALICE", &Origin::Cli, &DepsRequest::default())
        .await
        .unwrap();
    assert!(started.groups.is_empty(), "{:?}", started.groups);
    let held = &started.plan.skipped;
    assert!(
        held.iter()
            .any(|s| s.name == TOY && s.reason.contains("3 days")),
        "{held:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_answers() {
    let (h, reg) = harness(Vec::new(), &[(TOY, "1.0.0")], &[], false).await;
    // A package that does not exist in the repo, and a version that does not exist.
    let p = planner(&h);
    let r = p
        .start(
            &repo(&h),
            "U0ALICE",
            &Origin::Cli,
            &DepsRequest {
                only: vec!["left-pad-nope".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(r.groups.is_empty());
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.reason.contains("not a dependency")),
        "{:?}",
        r.plan.skipped
    );
    let r = p
        .start(
            &repo(&h),
            "U0ALICE",
            &Origin::Cli,
            &DepsRequest {
                only: vec![TOY.into()],
                version: Some("9.9.9".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(r.groups.is_empty());
    assert!(
        r.plan
            .skipped
            .iter()
            .any(|s| s.version == "9.9.9" && s.reason.contains("does not exist")),
        "{:?}",
        r.plan.skipped
    );
    // The registry is down: one clear error naming it, nothing started.
    let mut down = p.clone();
    down.lookup.registries.npm = "http://127.0.0.1:9/".into();
    let e = down
        .start(&repo(&h), "U0ALICE", &Origin::Cli, &DepsRequest::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("127.0.0.1:9"), "{e}");
    assert!(e.contains("next"), "says it is retried: {e}");
    // A manifest the tool cannot parse: the error names the file.
    std::fs::write(h.repo_path().join("package.json"), "{ not json").unwrap();
    sh(&h.repo_path(), "git commit -qam broken");
    sh(
        &h.repo_path(),
        &format!("git push -q {} main", forge(&h).display()),
    );
    let e = p
        .start(&repo(&h), "U0ALICE", &Origin::Cli, &DepsRequest::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("package.json"), "{e}");
    let _ = reg;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_request_routes_explainably_and_opens_one_thread_per_group() {
    let (h, _reg) = harness(
        Vec::new(),
        &[(TOY, "1.0.0"), (TOY_NPM_SCOPED, "1.0.0")],
        &[],
        false,
    )
    .await;
    let bot = crate::suite::slack::Bot::start_on(h, |_| {}).await;
    let t0 = std::time::Instant::now();
    let asked = bot
        .mention("<@U0BOT> update patch and minor dependencies")
        .await;
    // The routing is said, with its reason, before anything runs.
    let routed = bot
        .wait_post(&asked.ts, "routed to `dependency_update`")
        .await;
    assert!(
        routed
            .text
            .contains("the request starts with `update patch and minor dependencies`"),
        "{}",
        routed.text
    );
    bot.wait_post(&asked.ts, "2 update group(s)").await;
    // One group runs in this thread; the other in a new top-level thread of the channel.
    bot.wait_reports(&asked, 1).await;
    eprintln!(
        "mention → first group's report (a branch; the local forge has no PR): {} ms",
        t0.elapsed().as_millis()
    );
    bot.slack
        .wait_until(120, "a second thread", |s| {
            s.top_level(crate::suite::slack::DEV)
                .iter()
                .any(|p| p.text.contains("Dependency update for"))
        })
        .await;
    let second = bot
        .slack
        .top_level(crate::suite::slack::DEV)
        .into_iter()
        .find(|p| p.text.contains("Dependency update for"))
        .unwrap();
    bot.wait_reports(&second, 1).await;
    let tasks = bot.tasks();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(
        tasks
            .iter()
            .all(|t| t.blueprint == BlueprintId::DependencyUpdate)
    );
    let mut branches: Vec<&str> = tasks.iter().map(|t| t.branch.as_str()).collect();
    branches.dedup();
    assert_eq!(branches.len(), 2, "one branch per group");
    // An ordinary request is not routed.
    let plain = bot.mention("<@U0BOT> update the docs").await;
    crate::suite::slack::settle().await;
    assert!(
        !bot.slack
            .bot_posts(crate::suite::slack::DEV, &plain.ts)
            .iter()
            .any(|p| p.text.contains("dependency_update")),
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cargo_minor_bump_goes_through_cargo_update_and_the_crate_s_own_checks() {
    let (h, reg) = harness_with(Vec::new(), |dir, reg| {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let files = [
            (
                "Cargo.toml",
                "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nslipway-toy = \"1.0\"\n",
            ),
            (
                "src/lib.rs",
                "pub fn hello(n: &str) -> String {\n    slipway_toy::greet(n)\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn hello() {\n        assert_eq!(super::hello(\"x\"), \"hello x\");\n    }\n}\n",
            ),
        ];
        for (p, c) in files {
            std::fs::write(dir.join(p), c).unwrap();
        }
        // The lockfile at 1.0.0, made by cargo through the mirror (a cargo home of its own).
        let home = dir.with_extension("cargo-home");
        let config =
            slipway::deps::registry::cargo_home_config(|k| reg.setup_env(k)).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("config.toml"), config).unwrap();
        sh(
            dir,
            &format!(
                "CARGO_HOME={} cargo generate-lockfile -q && CARGO_HOME={} cargo update -q -p slipway-toy --precise 1.0.0",
                home.display(),
                home.display()
            ),
        );
        git_repo(dir, &[]);
    }, true)
    .await;
    let _ = reg;
    auto_merged_alone(&h, UpdateType::Minor).await;
    let lock = sh(&forge(&h), "git show main:Cargo.lock");
    assert!(
        lock.contains("name = \"slipway-toy\"\nversion = \"1.1.0\""),
        "{lock}"
    );
    // The requirement already admitted 1.1.0: cargo changed the lockfile only.
    let toml = sh(&forge(&h), "git show main:Cargo.toml");
    assert!(toml.contains("slipway-toy = \"1.0\""), "{toml}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_go_patch_bump_goes_through_go_get_and_go_test() {
    let (h, _reg) = harness_with(Vec::new(), |dir, _reg| {
        git_repo(
            dir,
            &[
                (
                    "go.mod",
                    "module example.com/app\n\ngo 1.22\n\nrequire example.com/Slipway/toy v1.0.0\n",
                ),
                (
                    "app.go",
                    "package app\n\nimport \"example.com/Slipway/toy\"\n\nfunc Hello(n string) string { return toy.Greet(n) }\n",
                ),
                (
                    "app_test.go",
                    "package app\n\nimport \"testing\"\n\nfunc TestHello(t *testing.T) {\n\tif Hello(\"x\") != \"hello x\" {\n\t\tt.Fatal(Hello(\"x\"))\n\t}\n}\n",
                ),
            ],
        );
    }, true)
    .await;
    auto_merged_alone(&h, UpdateType::Patch).await;
    let gomod = sh(&forge(&h), "git show main:go.mod");
    assert!(gomod.contains("example.com/Slipway/toy v1.0.1"), "{gomod}");
    let gosum = sh(&forge(&h), "git show main:go.sum");
    assert!(
        gosum.contains("example.com/Slipway/toy v1.0.1 h1:"),
        "{gosum}"
    );
}

/// pytest and its dependencies, as wheels from PyPI, mirrored into the test index (the
/// detected Python setup installs pytest from the index the project uses). Once per process.
fn mirror_pytest(reg: &TestRegistries) {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        sh(
            &reg.root,
            "python3 -m pip download --quiet --only-binary=:all: --dest pypi pytest",
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_uv_minor_bump_goes_through_uv_lock_and_the_project_s_tests() {
    let (h, _reg) = harness_with(Vec::new(), |dir, reg| {
        mirror_pytest(reg);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("pyproject.toml"),
            "[project]\nname = \"app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.9\"\ndependencies = [\"slipway-toy>=1.0,<2\"]\n",
        )
        .unwrap();
        sh(
            dir,
            &format!(
                "UV_INDEX_URL={} uv lock -q --upgrade-package slipway-toy==1.0.0",
                reg.pypi
            ),
        );
        git_repo(
            dir,
            &[
                (
                    "app.py",
                    "import slipway_toy\n\n\ndef hello(n):\n    return slipway_toy.greet(n)\n",
                ),
                (
                    "test_app.py",
                    "import unittest\n\nimport app\n\n\nclass AppTest(unittest.TestCase):\n    def test_hello(self):\n        self.assertEqual(app.hello(\"x\"), \"hello x\")\n",
                ),
            ],
        );
    }, true)
    .await;
    auto_merged_alone(&h, UpdateType::Minor).await;
    let lock = sh(&forge(&h), "git show main:uv.lock");
    assert!(
        lock.contains("name = \"slipway-toy\"\nversion = \"1.1.0\""),
        "{lock}"
    );
}

/// A clock the test sets.
struct SetClock(std::sync::atomic::AtomicU64);
impl slipway::schedule::Clock for SetClock {
    fn now_ms(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The Slack starter of a `slipway serve` over `h`, its planner's registries as given.
fn starter(
    h: &Harness,
    slack: &crate::support::fake_slack::FakeSlack,
    planner: DepsPlanner,
    queue: &slipway::queue::Queue,
) -> Arc<slipway::slack::schedule::SlackStarter> {
    use slipway::slack::handlers::deps::DepsStart;
    let store = h.runner.store.clone();
    let api = slipway::slack::api::WebApi::new(&slack.endpoint()).unwrap();
    let egress = slipway::slack::egress::Egress::new(
        api.clone(),
        store.clone(),
        queue.clone(),
        slipway::config::SecretValues::default(),
    );
    let repo: slipway::repos::RepoConfig = toml::from_str(&format!(
        "name = \"acme/web\"\nurl = \"{}\"\nchannels = [\"C0DEPS\"]",
        forge(h).display()
    ))
    .unwrap();
    let settings = Arc::new(slipway::actions::Settings {
        slack: Default::default(),
        repos: vec![repo.clone()],
        budgets: Default::default(),
    });
    let bindings = slipway::slack::bindings::Bindings::new(store.clone());
    tokio::spawn({
        let outbox = egress.outbox().clone();
        async move { outbox.run(tokio_util::sync::CancellationToken::new()).await }
    });
    let actions = slipway::actions::Actions::new(
        store.clone(),
        h.runner.forges.clone(),
        Arc::new(queue.clone()),
        settings.clone(),
    );
    Arc::new(slipway::slack::schedule::SlackStarter {
        api: api.clone(),
        egress: egress.clone(),
        bindings: bindings.clone(),
        queue: queue.clone(),
        repos: vec![repo],
        github_configured: false,
        deps: Some(DepsStart {
            api,
            egress,
            bindings,
            queue: queue.clone(),
            store,
            actions,
            settings,
            planner,
        }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_update_says_a_registry_outage_and_the_next_slot_retries() {
    use chrono::TimeZone;
    use slipway::schedule::{Fired, ScheduleConfig, ScheduleSpec, Scheduler};
    use std::sync::atomic::Ordering;
    let (h, _reg) = harness(
        Vec::new(),
        &[(TOY, "1.0.0"), (TOY_NPM_SCOPED, "1.0.0")],
        &[],
        false,
    )
    .await;
    let slack = crate::support::fake_slack::FakeSlack::start().await;
    let queue = slipway::queue::Queue::new(h.runner.clone(), 1);
    let at = |hour: u32| {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, hour, 0, 0)
            .unwrap()
            .timestamp_millis() as u64
    };
    let schedule = || {
        vec![
            ScheduleConfig::new(ScheduleSpec {
                cron: "0 * * * *".into(),
                timezone: "UTC".into(),
                repo: "acme/web".into(),
                blueprint: "dependency_update".into(),
                args: vec!["--update-types".into(), "patch".into()],
                channel: "C0DEPS".into(),
            })
            .unwrap(),
        ]
    };
    let clock = Arc::new(SetClock(std::sync::atomic::AtomicU64::new(at(5) + 60_000)));
    // 06:00, the npm registry is down: the slot's thread says so; nothing is created.
    let mut down = planner(&h);
    down.lookup.registries.npm = "http://127.0.0.1:9/".into();
    let s = Scheduler::new(
        schedule(),
        h.runner.store.clone(),
        starter(&h, &slack, down, &queue),
        clock.clone(),
    );
    assert!(s.tick().await.is_empty(), "first seen");
    clock.0.store(at(6), Ordering::SeqCst);
    let fired = s.tick().await;
    assert!(matches!(&fired[..], [Fired::Failed { .. }]), "{fired:#?}");
    slack
        .wait_until(60, "the outage said in the slot's thread", |s| {
            s.bot_posts_in("C0DEPS")
                .iter()
                .any(|p| p.text.contains("could not look up dependency updates"))
        })
        .await;
    let said: Vec<String> = slack
        .bot_posts_in("C0DEPS")
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert!(said.iter().any(|t| t.contains("127.0.0.1:9")), "{said:#?}");
    assert!(h.runner.store.list_tasks().unwrap().is_empty());
    // 07:00, the registry is back (a restart with the same store): one task per group.
    let s = Scheduler::new(
        schedule(),
        h.runner.store.clone(),
        starter(&h, &slack, planner(&h), &queue),
        clock.clone(),
    );
    clock.0.store(at(7), Ordering::SeqCst);
    let fired = s.tick().await;
    assert!(matches!(&fired[..], [Fired::Started { .. }]), "{fired:#?}");
    let tasks = h.runner.store.list_tasks().unwrap();
    assert_eq!(tasks.len(), 2, "one task per group: {tasks:#?}");
    assert!(tasks.iter().all(|t| t.requester == "slipway"));
    // Not fired again within its slot.
    clock.0.store(at(7) + 600_000, Ordering::SeqCst);
    assert!(s.tick().await.is_empty());
}

/// A GitHub global advisory document, as `GET /advisories/{ghsa_id}` returns it.
fn toy_advisory() -> serde_json::Value {
    json!({
        "ghsa_id": "GHSA-9x4p-3m2q-r7vw",
        "cve_id": null,
        "summary": "slipway-toy greets with untrimmed names",
        "html_url": "https://github.com/advisories/GHSA-9x4p-3m2q-r7vw",
        "severity": "low",
        "vulnerabilities": [{
            "package": {"ecosystem": "npm", "name": "slipway-toy"},
            "vulnerable_version_range": "< 1.0.1",
            "first_patched_version": "1.0.1"
        }]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ghsa_advisory_becomes_a_labelled_security_pr_past_the_cooldown() {
    use crate::support::fake_github::FakeGithub;
    let reg = standard_set().await;
    let src = tempfile::tempdir().unwrap();
    npm_repo(&src.path().join("web"), reg, &[(TOY, "1.0.0")], &[]);
    sh(src.path(), "git clone -q --bare web web.git");
    let fake = FakeGithub::start(&src.path().join("web.git"), "acme", "web").await;
    fake.add_advisory(toy_advisory());
    let h = Harness::with_repo(
        Backend::Docker,
        LlmProvider::Openai,
        Vec::new(),
        |d| git_repo(d, &[("README.md", "unused: GitHub serves the repo\n")]),
        |cfg| {
            reg.configure(cfg);
            // Every release is minutes old: only a security fix may pass this cooldown.
            cfg.file.policy.min_release_age_days = 30;
            crate::suite::github::github_config(cfg, &fake);
        },
    )
    .await;
    let repo = RepoRef {
        name: "acme/web".into(),
        source: "https://github.com/acme/web.git".into(),
        base: "main".into(),
        forge: slipway::repos::ForgeKind::Github,
    };
    // Without the advisory, the cooldown holds 1.0.1 back.
    let plain = planner(&h)
        .start(&repo, "U0ALICE", &Origin::Cli, &DepsRequest::default())
        .await
        .unwrap();
    assert!(plain.groups.is_empty(), "{:?}", plain.groups);
    let routed = slipway::deps::intent::route("fix GHSA-9x4p-3m2q-r7vw").unwrap();
    let started = planner(&h)
        .start(&repo, "U0ALICE", &Origin::Cli, &routed.request)
        .await
        .unwrap();
    assert_eq!(started.groups.len(), 1, "{:?}", started.plan);
    let GroupTask::New(task) = started.groups.into_iter().next().unwrap() else {
        panic!("a new task")
    };
    let mut task = *task;
    assert!(
        task.title()
            .starts_with("Security fix: Update slipway-toy from 1.0.0 to 1.0.1")
    );
    let report = h
        .runner
        .run_id(
            &mut task,
            BlueprintId::DependencyUpdate,
            CancellationToken::new(),
            None,
        )
        .await
        .unwrap();
    assert_ne!(report.decision, Decision::Halt, "{:?}", report.reasons);
    eprintln!(
        "advisory bump → PR opened on the GitHub fake: run total {} ms, tokens {}",
        report.timings_ms.total,
        report.agent.input_tokens + report.agent.output_tokens
    );
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    let body = pr["body"].as_str().unwrap();
    assert!(
        body.contains("**Security patch:** GHSA-9x4p-3m2q-r7vw"),
        "{body}"
    );
    assert!(
        body.contains("| Package | From | To | Update | Release age | Changelog |"),
        "{body}"
    );
    assert!(
        body.contains("| 1.0.0 | 1.0.1 | patch · fixes GHSA-9x4p-3m2q-r7vw |"),
        "{body}"
    );
    assert!(
        body.contains("<details><summary>Release notes: slipway-toy 1.0.0 → 1.0.1</summary>"),
        "{body}"
    );
    assert!(
        body.contains("Fixed: \\`greet\\` trims the name")
            || body.contains("Fixed: `greet` trims the name"),
        "{body}"
    );
    assert!(
        body.contains("Nothing: the bump alone passes the checks"),
        "{body}"
    );
    let labels: Vec<&str> = pr["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(
        labels.contains(&"security") && labels.contains(&"dependencies"),
        "{labels:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_fixes_an_osv_advisory_and_prints_json_lines() {
    let (h, reg) = harness(Vec::new(), &[(TOY, "1.0.0")], &[], true).await;
    let osv = json!({
        "id": "OSV-2026-TOY-1",
        "summary": "slipway-toy greets with untrimmed names",
        "affected": [{
            "package": {"ecosystem": "npm", "name": "slipway-toy"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.1"}]}]
        }]
    });
    let dir = h.data.path();
    std::fs::write(dir.join("osv.json"), osv.to_string()).unwrap();
    let names: Vec<String> = reg
        .setup_vars()
        .iter()
        .map(|(k, _)| format!("{k:?}"))
        .collect();
    std::fs::write(
        dir.join("slipway.toml"),
        format!(
            "[sandbox]\nbackend = \"docker\"\nsetup_env = [{}]\n\n[policy]\nauto_merge = [\"dependency_update\"]\nmin_release_age_days = 30\n",
            names.join(", ")
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args([
        "run",
        "--config",
        "slipway.toml",
        "--blueprint",
        "dependency_update",
        "--repo",
        &forge(&h).display().to_string(),
        "--osv",
        "osv.json",
        "--json",
    ])
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", std::env::var("HOME").unwrap_or_default())
    .env("SLIPWAY_DATA_DIR", dir.join("cli-data"))
    .env("DOCKER_HOST", crate::support::docker_host())
    .env("USER", "U0CLI")
    .current_dir(dir);
    for (k, v) in reg.setup_vars() {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let out = cmd.output().unwrap();
    let wall_ms = started.elapsed().as_millis();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 1, "{stdout}");
    let r = &reports[0];
    assert_eq!(r["blueprint"], "dependency_update");
    assert_eq!(r["decision"], "auto_merge", "{r:#}");
    assert_eq!(r["agent"]["input_tokens"], 0);
    let pkg = sh(&forge(&h), "git show main:package.json");
    assert!(pkg.contains("\"slipway-toy\": \"1.0.1\""), "{pkg}");
    // Measured, not asserted: the README quotes these.
    eprintln!(
        "clean bump through the CLI: {wall_ms} ms wall, run total {} ms, tokens 0",
        r["timings_ms"]["total"]
    );
    // A bad flag for another blueprint is a usage error.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["run", "--repo", ".", "--only", "x", "fix it"])
        .env("SLIPWAY_DATA_DIR", dir.join("cli-data"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--blueprint dependency_update"));
}
