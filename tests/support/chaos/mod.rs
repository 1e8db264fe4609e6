//! The chaos harness (reliability issue #14, "Prove it"): drives the real `slipway serve`
//! ([`World`]) with a Slack workload (mentions that create tasks, replies that refine, ✅ from
//! the approver that merges, ⏪ that reverts) and kills it with SIGKILL at chosen points (just
//! after a mention is sent, on its ack, at node boundaries seen as status edits, mid-push,
//! mid-PR, mid-merge, mid-egress), restarting it on the same data dir each time. Then it lets
//! the service settle and counts what went wrong ([`Counts`]).
//!
//! Slack's side is played fairly: an envelope the dead service never acked is redelivered
//! after the restart with `retry_attempt` n, at most 3 times, as Slack retries Events API
//! deliveries. An acked envelope is never redelivered (Slack does not).
//!
//! Used by `benches/chaos.rs` (the long run, ≥ 50 kills) and `tests/suite/chaos.rs` (5 kills).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

mod counts;
pub use counts::Counts;

use crate::support::fake_slack::{FakeSlack, Posted};
use crate::support::serve_child::{APPROVER, DEV, REQUESTER, World, WorldOpts, thread_of};

/// Slack retries an unacknowledged Events API delivery up to 3 times.
const MAX_REDELIVERIES: u64 = 3;

/// How a chaos run is shaped.
#[derive(Clone, Debug)]
pub struct ChaosOpts {
    /// SIGKILLs before the final restart.
    pub kills: usize,
    /// Seed of the random choices (actions, kill points, delays).
    pub seed: u64,
    pub world: WorldOpts,
    /// The longest a kill point is waited for before killing anyway (it is then counted as
    /// "not reached").
    pub trigger_cap: Duration,
    /// Quiet (no Slack, GitHub or model traffic) this long means settled.
    pub quiet: Duration,
    /// The longest the final settle waits for quiet.
    pub settle_cap: Duration,
    /// Print each step to stderr.
    pub verbose: bool,
}

impl Default for ChaosOpts {
    fn default() -> Self {
        Self {
            kills: 5,
            seed: 14,
            world: WorldOpts::default(),
            trigger_cap: Duration::from_secs(60),
            quiet: Duration::from_secs(6),
            settle_cap: Duration::from_secs(600),
            verbose: false,
        }
    }
}

/// Where a kill lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KillPoint {
    /// 0–20 ms after the envelope is sent: before or just after its ack.
    AfterSend,
    /// As soon as the fake sees the ack.
    OnAck,
    /// On the n-th status edit (`chat.update`) after the action: a node boundary.
    NodeBoundary,
    /// When a `git-receive-pack` (push) request reaches the fake GitHub.
    MidPush,
    /// When `POST /pulls` reaches the fake GitHub.
    MidPr,
    /// When `PUT …/merge` reaches the fake GitHub (it merges, then waits before answering).
    MidMerge,
    /// When a Block Kit report is posted (egress, after the run finished).
    MidEgress,
    /// A random moment within 3 s.
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Mention,
    Reply,
    Approve,
    Revert,
}

/// A thread the workload started.
struct Thread {
    root: Posted,
    /// A unique token per refining reply sent, e.g. `refine-3`.
    replies: Vec<String>,
    approved: bool,
    reverted: bool,
}

/// One delivery target: an event and every envelope that carried it.
struct Event {
    envelopes: Vec<String>,
    last: Value,
    /// Mention events are what "lost task" is judged on: `(thread_ts, kind)`.
    mention_of: Option<String>,
}

/// The harness state between kills.
struct Chaos {
    w: World,
    opts: ChaosOpts,
    rng: fastrand::Rng,
    threads: Vec<Thread>,
    events: HashMap<String, Event>,
    /// Reply token → (thread index, event id).
    reply_events: Vec<(usize, String, String)>,
    counts: Counts,
    next_reply: usize,
}

/// Runs the whole chaos scenario and returns the counts. `bin` is the `slipway` binary.
pub async fn run(bin: &std::path::Path, opts: ChaosOpts) -> Counts {
    let mut w = World::new(bin, opts.world.clone()).await;
    // Widen the merge window: GitHub has merged, the answer is still on its way.
    w.github.set_merge_delay(Duration::from_millis(400));
    w.spawn().await;
    let mut c = Chaos {
        w,
        rng: fastrand::Rng::with_seed(opts.seed),
        opts,
        threads: Vec::new(),
        events: HashMap::new(),
        reply_events: Vec::new(),
        counts: Counts::default(),
        next_reply: 0,
    };
    while c.counts.kills < c.opts.kills {
        c.cycle().await;
    }
    c.settle().await;
    c.count().await;
    if c.opts.verbose {
        eprintln!("serve log: {}", c.w.log_path().display());
    }
    let counts = c.counts.clone();
    if std::env::var_os("CHAOS_KEEP").is_some() {
        let kept = c.w.dir.keep();
        eprintln!("kept {}", kept.display());
    }
    counts
}

impl Chaos {
    fn say(&self, what: &str) {
        if self.opts.verbose {
            eprintln!("[chaos {}] {what}", self.counts.kills);
        }
    }

    /// One action, one armed kill point, one SIGKILL, one restart.
    async fn cycle(&mut self) {
        // Let recovery make progress (and be killed in turn) now and then.
        let pause = self.rng.u64(0..1500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let action = self.pick_action();
        let marks = self.marks();
        let point = self.pick_point(action);
        self.say(&format!("{action:?}, kill {point:?}"));
        self.act(action).await;
        let hit = self.wait_for(point, marks).await;
        let e = self
            .counts
            .kills_by_point
            .entry(format!("{point:?}"))
            .or_default();
        e.1 += 1;
        if hit {
            e.0 += 1;
        }
        self.w.kill9().await;
        self.counts.kills += 1;
        self.w.spawn().await;
        self.redeliver().await;
    }

    fn pick_action(&mut self) -> Action {
        let reported = |t: &Thread, s: &FakeSlack| !s.reports(DEV, &t.root.ts).is_empty();
        let slack = self.w.slack.clone();
        let mut options = vec![(Action::Mention, 4)];
        if self
            .threads
            .iter()
            .any(|t| !t.approved && t.replies.len() < 2 && reported(t, &slack))
        {
            options.push((Action::Reply, 2));
        }
        if self
            .threads
            .iter()
            .any(|t| !t.approved && reported(t, &slack))
        {
            options.push((Action::Approve, 3));
        }
        if self
            .threads
            .iter()
            .any(|t| t.approved && !t.reverted && merged(t, &slack))
        {
            options.push((Action::Revert, 2));
        }
        let total: u32 = options.iter().map(|(_, w)| w).sum();
        let mut r = self.rng.u32(0..total);
        for (a, w) in options {
            if r < w {
                return a;
            }
            r -= w;
        }
        Action::Mention
    }

    fn pick_point(&mut self, action: Action) -> KillPoint {
        use KillPoint::*;
        let choices: &[KillPoint] = match action {
            Action::Mention => &[
                AfterSend,
                OnAck,
                NodeBoundary,
                NodeBoundary,
                MidPush,
                MidPr,
                MidEgress,
                Random,
            ],
            Action::Reply => &[OnAck, NodeBoundary, MidPush, MidEgress, Random],
            Action::Approve => &[MidMerge, MidMerge, OnAck, Random],
            Action::Revert => &[OnAck, NodeBoundary, MidPush, MidPr, MidEgress],
        };
        choices[self.rng.usize(0..choices.len())]
    }

    /// Counters the kill points watch, taken before the action.
    fn marks(&self) -> Marks {
        let gh = self.w.github.calls();
        Marks {
            acks: self.w.slack.acks().len(),
            updates: self.w.slack.calls("chat.update").len(),
            reports: self.report_posts(),
            pushes: gh.iter().filter(|c| is_push(c)).count(),
            prs: gh
                .iter()
                .filter(|c| c.method == "POST" && c.path.ends_with("/pulls"))
                .count(),
            merges: gh
                .iter()
                .filter(|c| c.method == "PUT" && c.path.ends_with("/merge"))
                .count(),
        }
    }

    fn report_posts(&self) -> usize {
        self.w
            .slack
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.params.get("blocks").is_some())
            .count()
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Mention => {
                let n = self.threads.len() + 1;
                let root = self.w.slack.say(
                    DEV,
                    REQUESTER,
                    &format!("<@U0BOT> chaos task {n}: add a note"),
                    None,
                );
                self.deliver(FakeSlack::mention_event(&root), Some(root.ts.clone()))
                    .await;
                self.deliver(FakeSlack::message_event(&root), Some(root.ts.clone()))
                    .await;
                self.threads.push(Thread {
                    root,
                    replies: Vec::new(),
                    approved: false,
                    reverted: false,
                });
                self.counts.mentions += 1;
            }
            Action::Reply => {
                let slack = self.w.slack.clone();
                let Some(ix) = self.threads.iter().position(|t| {
                    !t.approved && t.replies.len() < 2 && !slack.reports(DEV, &t.root.ts).is_empty()
                }) else {
                    return;
                };
                self.next_reply += 1;
                let token = format!("refine-{}", self.next_reply);
                let p = self.w.slack.say(
                    DEV,
                    REQUESTER,
                    &format!("also add another note ({token})"),
                    Some(&self.threads[ix].root.ts),
                );
                let id = self.deliver(FakeSlack::message_event(&p), None).await;
                self.threads[ix].replies.push(token.clone());
                self.reply_events.push((ix, token, id));
                self.counts.replies += 1;
            }
            Action::Approve => {
                let slack = self.w.slack.clone();
                let Some(ix) = self
                    .threads
                    .iter()
                    .position(|t| !t.approved && !slack.reports(DEV, &t.root.ts).is_empty())
                else {
                    return;
                };
                let report = slack.reports(DEV, &self.threads[ix].root.ts);
                let report = report.last().unwrap().ts.clone();
                if self.rng.u32(0..3) == 0 {
                    self.w.github.merge_then_answer(502);
                    self.counts.lost_merge_replies += 1;
                }
                self.deliver(
                    FakeSlack::reaction_event(APPROVER, "white_check_mark", DEV, &report),
                    None,
                )
                .await;
                self.threads[ix].approved = true;
                self.counts.approvals += 1;
            }
            Action::Revert => {
                let slack = self.w.slack.clone();
                let Some(ix) = self
                    .threads
                    .iter()
                    .position(|t| t.approved && !t.reverted && merged(t, &slack))
                else {
                    return;
                };
                let report = slack.reports(DEV, &self.threads[ix].root.ts);
                let report = report.last().unwrap().ts.clone();
                self.deliver(
                    FakeSlack::reaction_event(REQUESTER, "rewind", DEV, &report),
                    None,
                )
                .await;
                self.threads[ix].reverted = true;
                self.counts.reverts += 1;
            }
        }
    }

    /// Sends `event` in a fresh envelope and remembers it for redelivery; returns its
    /// `event_id`.
    async fn deliver(&mut self, event: Value, mention_of: Option<String>) -> String {
        let env = self.w.slack.envelope(event);
        let id = env["payload"]["event_id"].as_str().unwrap().to_string();
        self.w.slack.send(&env).await;
        self.events.insert(
            id.clone(),
            Event {
                envelopes: vec![env["envelope_id"].as_str().unwrap().to_string()],
                last: env,
                mention_of,
            },
        );
        id
    }

    fn acked_ids(&self) -> HashSet<String> {
        self.w.slack.acks().into_iter().map(|(id, _)| id).collect()
    }

    /// After a restart: every event none of whose envelopes was acked goes again, as Slack
    /// retries it (at most [`MAX_REDELIVERIES`] times).
    async fn redeliver(&mut self) {
        // The new connection's first frames may still be in flight; give acks a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let acked = self.acked_ids();
        let mut again = Vec::new();
        for (id, e) in &self.events {
            let attempts = e.envelopes.len() as u64 - 1;
            if attempts < MAX_REDELIVERIES && !e.envelopes.iter().any(|x| acked.contains(x)) {
                again.push((id.clone(), attempts + 1));
            }
        }
        again.sort();
        for (id, attempt) in again {
            let e = self.events.get_mut(&id).unwrap();
            let env = FakeSlack::redelivery(&e.last, attempt);
            e.envelopes
                .push(env["envelope_id"].as_str().unwrap().to_string());
            e.last = env.clone();
            self.w.slack.send(&env).await;
            self.counts.redeliveries += 1;
        }
    }

    /// Waits for `point` (or the cap); true when it was reached.
    async fn wait_for(&mut self, point: KillPoint, m: Marks) -> bool {
        let start = Instant::now();
        let nth_update = m.updates + self.rng.usize(1..4);
        let random = Duration::from_millis(self.rng.u64(0..3000));
        let after_send = Duration::from_millis(self.rng.u64(0..20));
        while start.elapsed() < self.opts.trigger_cap {
            let reached = match point {
                KillPoint::AfterSend => start.elapsed() >= after_send,
                KillPoint::Random => start.elapsed() >= random,
                KillPoint::OnAck => self.w.slack.acks().len() > m.acks,
                KillPoint::NodeBoundary => self.w.slack.calls("chat.update").len() >= nth_update,
                KillPoint::MidEgress => self.report_posts() > m.reports,
                KillPoint::MidPush | KillPoint::MidPr | KillPoint::MidMerge => {
                    let gh = self.w.github.calls();
                    match point {
                        KillPoint::MidPush => gh.iter().filter(|c| is_push(c)).count() > m.pushes,
                        KillPoint::MidPr => {
                            gh.iter()
                                .filter(|c| c.method == "POST" && c.path.ends_with("/pulls"))
                                .count()
                                > m.prs
                        }
                        _ => {
                            gh.iter()
                                .filter(|c| c.method == "PUT" && c.path.ends_with("/merge"))
                                .count()
                                > m.merges
                        }
                    }
                }
            };
            if reached {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    }

    /// Final restart is done; redeliver what is still unacked, then wait for quiet.
    async fn settle(&mut self) {
        let start = Instant::now();
        let mut last = self.traffic();
        let mut quiet_since = Instant::now();
        let mut settled = false;
        while start.elapsed() < self.opts.settle_cap {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.traffic();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= self.opts.quiet {
                settled = true;
                break;
            }
        }
        self.counts.info_settled = settled;
        self.say(&format!(
            "settled={settled} after {} s",
            start.elapsed().as_secs()
        ));
        self.counts.info_final_exit = self.w.stop(Duration::from_secs(120)).await;
    }

    fn traffic(&self) -> (usize, usize, usize, usize) {
        (
            self.w.slack.calls("chat.postMessage").len() + self.w.slack.calls("chat.update").len(),
            self.w.github.calls().len(),
            self.w.llm.requests().len(),
            self.w.slack.acks().len(),
        )
    }
}

#[derive(Clone, Copy)]
struct Marks {
    acks: usize,
    updates: usize,
    reports: usize,
    pushes: usize,
    prs: usize,
    merges: usize,
}

fn is_push(c: &crate::support::fake_github::Call) -> bool {
    c.method == "POST" && c.path.ends_with("/git-receive-pack")
}

/// Whether the thread says its task merged.
fn merged(t: &Thread, s: &FakeSlack) -> bool {
    s.bot_posts(DEV, &t.root.ts)
        .iter()
        .any(|p| p.text.contains("Merged"))
}
