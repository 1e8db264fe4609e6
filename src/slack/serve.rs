//! `slipway serve`: the Slack bot as a service. [`Service::start`] checks the tokens with
//! `auth.test`, resumes the queue (interrupted runs are told in their threads and rerun
//! once) and the inbox (envelopes acked before a crash but not handled to the end), then
//! connects Socket Mode. [`Service::shutdown`] stops taking events first, lets handlers in
//! flight and running runs finish within the grace period, checkpoints the runs still
//! running at its end (they rerun after the next start), lets the thread messages drain,
//! closes the socket, and finally lets the web server stop gracefully.
//!
//! This is the wiring point of the Slack front end: it takes what each part needs from the
//! [`Runner`] it is given (store, forges, config bits) and hands it down explicitly. Must
//! not be reached through by anything below it (no `Queue::runner()` here or below).
#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::api::{SlackError, WebApi};
use super::bot::{Bot, BotParts};
use super::copy;
use super::egress::Egress;
use super::handlers::mention::MentionsSeen;
use super::handlers::{HandlerParts, Handlers};
use super::ingress::BotIdentity;
use super::socket::{self, SocketEnd, SocketStats};
use crate::actions::Settings;
use crate::config::Config;
use crate::queue::Queue;
use crate::runner::Runner;
use crate::store::StoreError;
use crate::task::now_ms;

/// Envelopes buffered between the socket and the handlers.
const ENVELOPE_BUFFER: usize = 4096;
/// How long a shutdown waits for the outbox to drain after the runs stopped.
const OUTBOX_FLUSH: Duration = Duration::from_secs(10);
/// How often merges left `Merging` (their outcome unknown) are asked about again.
const SETTLE_EVERY: Duration = Duration::from_secs(60);
/// How often expired dedupe records are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `auth.test` failed (token missing or rejected) or Slack is unreachable.
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// The queue could not be recovered from the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A `[[schedules]]` entry names a repo that is not configured (or repeats another).
    #[error(transparent)]
    Schedule(#[from] crate::schedule::ScheduleConfigError),
}

/// A running bot.
pub struct Service {
    /// The bot (intake and handlers).
    pub bot: Bot,
    /// The queue it submits to.
    pub queue: Queue,
    /// Socket Mode numbers.
    pub stats: Arc<SocketStats>,
    /// Who the bot is (`auth.test`).
    pub me: BotIdentity,
    /// Mentions acknowledged with 👀 (for `/metrics`).
    pub mentions: MentionsSeen,
    /// Cancelled at the end of [`Service::shutdown`]: the web server's graceful stop.
    web_stop: CancellationToken,
    /// Stops the socket (and with it, event intake).
    intake: CancellationToken,
    /// `None` once [`Service::socket_ended`] saw it end.
    socket: Option<JoinHandle<Result<SocketEnd, SlackError>>>,
    /// Every envelope's handler, so a shutdown lets a ✅ merge in flight finish.
    handlers: TaskTracker,
    /// Stops the outbox drain, last.
    outbox_stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Starts the bot on `runner`'s services. Errors: a missing or rejected bot token
    /// (`auth.test`), or a store that cannot be read.
    pub async fn start(cfg: Arc<Config>, runner: Runner) -> Result<Self, ServeError> {
        crate::schedule::validate(&cfg.file.schedules, &cfg.file.repos)?;
        let api = WebApi::new(&cfg.slack)?;
        let me = api.auth_test().await?;
        tracing::info!(user_id = me.user_id, bot_id = me.bot_id, "Slack identity");
        // Each part gets its handles here, once; nothing below reaches through the queue.
        let (store, forges) = (runner.store.clone(), runner.forges.clone());
        let deps = crate::actions::deps::DepsPlanner {
            workspaces: runner.workspaces.clone(),
            forges: forges.clone(),
            store: store.clone(),
            lookup: cfg.deps_lookup(),
        };
        let runner_forges = forges.clone();
        let settings = Arc::new(Settings::from_config(&cfg));
        let queue = Queue::new(runner, cfg.file.queue.concurrency);
        let egress = Egress::new(
            api.clone(),
            store.clone(),
            queue.clone(),
            cfg.secret_values.clone(),
        );
        let stats = Arc::new(SocketStats::default());
        let mentions = MentionsSeen::default();
        let web_stop = CancellationToken::new();
        let handlers = Handlers::new(HandlerParts {
            api: api.clone(),
            store: store.clone(),
            queue: queue.clone(),
            forges,
            settings: settings.clone(),
            egress: egress.clone(),
            concurrency: cfg.file.queue.concurrency,
            max_tasks_per_user_per_hour: cfg.file.queue.max_tasks_per_user_per_hour,
            mentions: mentions.clone(),
            deps: Some(deps),
        });
        let deps_start = handlers.mention.deps.clone();
        let bot = Bot::new(BotParts {
            store: store.clone(),
            me: me.clone(),
            dedupe_ttl_ms: cfg.file.queue.dedupe_ttl_s * 1000,
            handlers,
            egress: egress.clone(),
            mentions: mentions.clone(),
        });
        let mut tasks = Vec::new();
        // Subscribe before recovering, so interruptions reach their threads.
        let egress_settle = egress.clone();
        // One drain sends every thread message, in order, from the outbox.
        let outbox_stop = CancellationToken::new();
        tasks.push(tokio::spawn({
            let (outbox, stop) = (egress.outbox().clone(), outbox_stop.clone());
            async move { outbox.run(stop).await }
        }));
        tasks.push(tokio::spawn({
            let rx = queue.subscribe();
            async move { egress.follow(rx).await }
        }));
        // Merges cut off by the last stop are settled first: before the queue recovers (a
        // merging task must not run again) and before any ✅ is handled again.
        settle_merges(&store, &runner_forges, &settings.repos, &egress_settle).await;
        let resumed = queue.recover().await?;
        if !resumed.is_empty() {
            tracing::info!(tasks = resumed.len(), "interrupted runs found at start");
        }
        tasks.push(tokio::spawn({
            let q = queue.clone();
            async move { q.run().await }
        }));
        // Final reports a crash or a lagging egress kept from their threads.
        if let Err(e) = egress_settle.reconcile().await {
            tracing::error!(error = %e, "could not post missing reports");
        }
        // Envelopes acked before the last stop and not handled to the end go first.
        let handlers = TaskTracker::new();
        let unfinished = bot.resume()?;
        if !unfinished.is_empty() {
            tracing::info!(
                envelopes = unfinished.len(),
                "handling Slack events acked before the last stop"
            );
        }

        let intake = CancellationToken::new();
        // `[[schedules]]`: each due slot starts a task in a new thread of its channel; the
        // scheduler stops with intake.
        let scheduler = crate::schedule::Scheduler::new(
            cfg.file.schedules.clone(),
            store.clone(),
            Arc::new(super::schedule::SlackStarter {
                api: api.clone(),
                egress: egress_settle.clone(),
                bindings: super::bindings::Bindings::new(store.clone()),
                queue: queue.clone(),
                repos: settings.repos.clone(),
                github_configured: runner_forges.github.is_some(),
                deps: deps_start,
            }),
            Arc::new(crate::schedule::SystemClock),
        );
        tasks.push(tokio::spawn(scheduler.run(intake.clone())));
        let (tx, mut rx) = mpsc::channel(ENVELOPE_BUFFER);
        let socket = tokio::spawn({
            let (api, intake, stats, inbox) =
                (api.clone(), intake.clone(), stats.clone(), store.clone());
            async move { socket::listen(&api, &inbox, tx, intake, stats).await }
        });
        tasks.push(tokio::spawn({
            let (bot, handlers) = (bot.clone(), handlers.clone());
            async move {
                // The unfinished ones one at a time, in arrival order (a reply after the
                // mention that creates its task), before any new one; new envelopes are
                // stored and acked meanwhile and wait in the channel.
                handlers
                    .track_future(async {
                        for env in unfinished {
                            bot.handle(env).await;
                        }
                    })
                    .await;
                while let Some(env) = rx.recv().await {
                    let bot = bot.clone();
                    handlers.spawn(async move { bot.handle(env).await });
                }
            }
        }));
        // A merge whose outcome could not be read is asked about again every minute.
        tasks.push(tokio::spawn({
            let (store, forges, settings, egress) = (
                store.clone(),
                runner_forges.clone(),
                settings.clone(),
                egress_settle.clone(),
            );
            async move {
                loop {
                    tokio::time::sleep(SETTLE_EVERY).await;
                    settle_merges(&store, &forges, &settings.repos, &egress).await;
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                match store.sweep_dedupe(now_ms()).await {
                    Ok(n) => tracing::debug!(removed = n, "dedupe records swept"),
                    Err(e) => tracing::warn!(error = %e, "dedupe sweep failed"),
                }
            }
        }));
        Ok(Self {
            bot,
            queue,
            stats,
            me,
            mentions,
            web_stop,
            intake,
            socket: Some(socket),
            handlers,
            outbox_stop,
            tasks,
        })
    }

    /// Resolves at the end of [`Service::shutdown`] (after runs are checkpointed and the
    /// thread messages drained): the web server's cue to stop taking connections and
    /// finish the requests in flight.
    pub fn web_shutdown(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let stop = self.web_stop.clone();
        async move { stop.cancelled().await }
    }

    /// Waits until the socket ends by itself (`link_disabled`, or a rejected app token).
    pub async fn socket_ended(&mut self) -> Result<SocketEnd, SlackError> {
        let Some(handle) = self.socket.as_mut() else {
            return std::future::pending().await;
        };
        let ended = handle.await;
        self.socket = None;
        match ended {
            Ok(r) => r,
            Err(e) => Err(SlackError::Transport {
                method: "socket",
                message: e.to_string(),
            }),
        }
    }

    /// Graceful stop: no new events, running runs checkpointed (they rerun after the next
    /// start), thread messages drained for at most `grace`, socket closed, then the web
    /// server told to stop ([`Service::web_shutdown`]).
    pub async fn shutdown(self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.intake.cancel();
        self.queue.shutdown();
        // Handlers in flight (a ✅ merge, a reply being queued) finish first; one cut off at
        // the deadline keeps its inbox entry and is handled again after the restart.
        if let Some(socket) = self.socket.as_ref() {
            while !socket.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.handlers.close();
        if tokio::time::timeout_at(deadline, self.handlers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "Slack event handlers still busy at the end of the grace period; they resume after the restart"
            );
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.queue.wait_idle(left).await {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "runs still stopping at the end of the grace period"
            );
        }
        // The thread messages written so far go out (bounded): what is left stays in the
        // outbox and is sent after the restart.
        if !self.bot.quiesce(OUTBOX_FLUSH).await {
            tracing::warn!(
                "thread messages still waiting in the outbox; they are sent after the restart"
            );
        }
        self.outbox_stop.cancel();
        if let Some(socket) = self.socket {
            let _ = socket.await;
        }
        self.web_stop.cancel();
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Settles merges left `Merging` ([`crate::actions::merge::settle_merges`]) and tells each
/// merged one's thread, once (the message's key is the task's: `merged/<task id>`, the same
/// one a ✅ handler uses).
async fn settle_merges(
    store: &crate::store::Store,
    forges: &crate::forge::Forges,
    repos: &[crate::repos::RepoConfig],
    egress: &Egress,
) {
    match crate::actions::merge::settle_merges(store, forges, repos).await {
        Ok(settled) => {
            for m in settled {
                if let crate::task::Origin::Slack { channel, thread_ts } = &m.task.origin {
                    let text =
                        copy::merged(&m.task, &m.intent.tested, &m.merged.sha, &m.intent.actor);
                    egress
                        .say_once(channel, thread_ts, &merged_key(&m.task.id), &text)
                        .await;
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "could not settle interrupted merges"),
    }
}

/// The outbox key of the "merged" message of task `task_id`.
pub fn merged_key(task_id: &str) -> String {
    format!("merged/{task_id}")
}
