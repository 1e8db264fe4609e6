//! `slipway serve`: the Slack bot as a service. [`Service::start`] checks the tokens with
//! `auth.test`, resumes the queue (interrupted runs are told in their threads and rerun
//! once), then connects Socket Mode. [`Service::shutdown`] stops taking events first, then
//! checkpoints running runs (they rerun after the next start), lets the thread messages
//! drain, and closes the socket.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::{SlackError, WebApi};
use super::bot::Bot;
use super::ingress::BotIdentity;
use super::socket::{self, SocketEnd, SocketStats};
use crate::config::Config;
use crate::queue::Queue;
use crate::runner::Runner;
use crate::store::StoreError;
use crate::task::now_ms;

/// Envelopes buffered between the socket and the handlers.
const ENVELOPE_BUFFER: usize = 4096;
/// How often expired dedupe records are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running bot.
pub struct Service {
    pub bot: Bot,
    pub queue: Queue,
    pub stats: Arc<SocketStats>,
    pub me: BotIdentity,
    /// Stops the socket (and with it, event intake).
    intake: CancellationToken,
    /// `None` once [`Service::socket_ended`] saw it end.
    socket: Option<JoinHandle<Result<SocketEnd, SlackError>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Service {
    /// Starts the bot on `runner`'s services. Errors: a missing or rejected bot token
    /// (`auth.test`), or a store that cannot be read.
    pub async fn start(cfg: Arc<Config>, runner: Runner) -> Result<Self, ServeError> {
        let api = WebApi::new(&cfg.slack)?;
        let me = api.auth_test().await?;
        tracing::info!(user_id = me.user_id, bot_id = me.bot_id, "Slack identity");
        let (store, forges) = (runner.store.clone(), runner.forges.clone());
        let queue = Queue::new(runner, cfg.file.queue.concurrency);
        let bot = Bot::new(
            cfg.clone(),
            api.clone(),
            queue.clone(),
            me.clone(),
            store.clone(),
            forges,
        );
        let mut tasks = Vec::new();
        // Subscribe before recovering, so interruptions reach their threads.
        tasks.push(tokio::spawn({
            let (bot, rx) = (bot.clone(), queue.subscribe());
            async move { bot.follow(rx).await }
        }));
        let resumed = queue.recover().await?;
        if !resumed.is_empty() {
            tracing::info!(tasks = resumed.len(), "interrupted runs found at start");
        }
        tasks.push(tokio::spawn({
            let q = queue.clone();
            async move { q.run().await }
        }));
        let intake = CancellationToken::new();
        let stats = Arc::new(SocketStats::default());
        let (tx, mut rx) = mpsc::channel(ENVELOPE_BUFFER);
        let socket = tokio::spawn({
            let (api, intake, stats) = (api.clone(), intake.clone(), stats.clone());
            async move { socket::listen(&api, tx, intake, stats).await }
        });
        tasks.push(tokio::spawn({
            let bot = bot.clone();
            async move {
                while let Some(env) = rx.recv().await {
                    let bot = bot.clone();
                    tokio::spawn(async move { bot.handle(env).await });
                }
            }
        }));
        tasks.push(tokio::spawn({
            async move {
                loop {
                    tokio::time::sleep(SWEEP_EVERY).await;
                    match store.sweep_dedupe(now_ms()).await {
                        Ok(n) => tracing::debug!(removed = n, "dedupe records swept"),
                        Err(e) => tracing::warn!(error = %e, "dedupe sweep failed"),
                    }
                }
            }
        }));
        Ok(Self {
            bot,
            queue,
            stats,
            me,
            intake,
            socket: Some(socket),
            tasks,
        })
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
    /// start), thread messages drained for at most `grace`, socket closed.
    pub async fn shutdown(self, grace: Duration) {
        self.intake.cancel();
        self.queue.shutdown();
        if !self.queue.wait_idle(grace).await {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "runs still stopping at the end of the grace period"
            );
        }
        // The last edit may still be in flight: the egress lock is released after it.
        self.bot.quiesce().await;
        if let Some(socket) = self.socket {
            let _ = socket.await;
        }
        for t in self.tasks {
            t.abort();
        }
    }
}
