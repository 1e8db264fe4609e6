//! The Slack Web API calls slipway makes, through slack-morphism's client.
//!
//! One [`WebApi`] per process. It holds the bot token (`xoxb-…`) for Web API calls and the
//! app-level token (`xapp-…`) for `apps.connections.open`; both go to `SLACK_API_URL`
//! (FIELD_NOTES: "Pointing the client at a fake"). Rate limits: Slack answers HTTP 429 with
//! `Retry-After` in seconds; slack-morphism's rate control waits that long and retries (at
//! most [`MAX_RETRIES`] times), and a 429 that outlasts it comes back as
//! [`SlackError::RateLimited`]. Every failure names the method and Slack's error code, and
//! [`SlackError::advice`] says what a person can do about it.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::ingress::{BotIdentity, field};
use super::thread::ThreadMessage;
use crate::config::SlackEndpoint;

/// Retries of a rate-limited call before it fails.
pub const MAX_RETRIES: usize = 3;

/// Messages per `conversations.replies` page (Slack allows up to 1,000; 200 is its advice).
const PAGE: u16 = 200;

/// Pages read at most (a 100,000-message thread): a guard against a cursor that never ends.
const MAX_PAGES: usize = 500;

/// The HTTP connector slack-morphism runs on: rustls (ring provider), native roots, http or
/// https (so tests can use a loopback fake).
pub type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// A failed Web API call.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// `SLACK_BOT_TOKEN` or `SLACK_APP_TOKEN` is not set.
    #[error(
        "{0} is not set; `slipway serve` needs SLACK_APP_TOKEN (xapp-…) and SLACK_BOT_TOKEN (xoxb-…)"
    )]
    MissingToken(&'static str),
    /// Slack answered `{"ok": false, "error": code}`.
    #[error("Slack {method} failed: {code}")]
    Api { method: &'static str, code: String },
    /// Still rate-limited after the retries.
    #[error("Slack {method} is rate-limited (retry after {retry_after_s:?} s)")]
    RateLimited {
        method: &'static str,
        retry_after_s: Option<u64>,
    },
    /// The request did not get an answer (network, TLS, a malformed response).
    #[error("Slack {method} could not be reached: {message}")]
    Transport {
        method: &'static str,
        message: String,
    },
    /// The TLS connector could not be built (no native root certificates).
    #[error("cannot build the HTTPS client for Slack: {0}")]
    Connector(std::io::Error),
}

impl SlackError {
    /// Slack's error code, when Slack gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What a person can do about it, for logs and the thread.
    pub fn advice(&self) -> &'static str {
        match self.code() {
            Some("not_in_channel") => "invite the bot to the channel (`/invite @slipway`)",
            Some("channel_not_found") => {
                "the bot cannot see this channel: invite it, or check the app's scopes"
            }
            Some("invalid_auth" | "not_authed" | "token_revoked" | "account_inactive") => {
                "the Slack token is wrong or revoked: reinstall the app and update SLACK_BOT_TOKEN"
            }
            Some("missing_scope") => {
                "the app lacks a scope: compare it with deploy/slack-app-manifest.yaml and reinstall"
            }
            Some("is_archived") => "the channel is archived: unarchive it or use another",
            _ => match self {
                Self::RateLimited { .. } => "Slack is rate-limiting the bot; it will try again",
                Self::MissingToken(_) => "set the token and restart",
                _ => "check slipway's logs and Slack's status page",
            },
        }
    }
}

fn map_err(method: &'static str) -> impl Fn(SlackClientError) -> SlackError {
    move |e| match e {
        SlackClientError::ApiError(a) => SlackError::Api {
            method,
            code: a.code,
        },
        SlackClientError::RateLimitError(r) => SlackError::RateLimited {
            method,
            retry_after_s: r.retry_after.map(|d| d.as_secs()),
        },
        other => SlackError::Transport {
            method,
            message: other.to_string(),
        },
    }
}

/// Builds the production connector for `api_url` (`http://` allowed, for fakes), with rate
/// control. Uses the process's ring rustls provider (FIELD_NOTES, "TLS").
pub fn connector(api_url: &str) -> Result<Connector, SlackError> {
    crate::tls::ensure_provider();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(SlackError::Connector)?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(SlackClientHyperConnector::with_connector(https)
        // slack-morphism appends the method to this base and wants no trailing slash.
        .with_slack_api_url(api_url.trim_end_matches('/'))
        .with_rate_control(
            SlackApiRateControlConfig::new()
                .with_max_retries(MAX_RETRIES)
                .with_max_delay_timeout(Duration::from_secs(120)),
        ))
}

/// The Web API, with both tokens. Cheap to clone.
#[derive(Clone)]
pub struct WebApi {
    client: Arc<SlackClient<Connector>>,
    bot: SlackApiToken,
    app: Option<SlackApiToken>,
}

impl WebApi {
    /// A client for `endpoint`. Fails without `SLACK_BOT_TOKEN`; the app token is checked
    /// when Socket Mode connects.
    pub fn new(endpoint: &SlackEndpoint) -> Result<Self, SlackError> {
        let bot = endpoint
            .bot_token
            .as_deref()
            .ok_or(SlackError::MissingToken("SLACK_BOT_TOKEN"))?;
        Ok(Self {
            client: Arc::new(SlackClient::new(connector(&endpoint.api_url)?)),
            bot: SlackApiToken::new(bot.into()),
            app: endpoint
                .app_token
                .as_deref()
                .map(|t| SlackApiToken::new(t.into())),
        })
    }

    fn session(&self) -> SlackClientSession<'_, Connector> {
        self.client.open_session(&self.bot)
    }

    /// `auth.test`: the bot's own user and bot IDs.
    pub async fn auth_test(&self) -> Result<BotIdentity, SlackError> {
        let r = self
            .session()
            .auth_test()
            .await
            .map_err(map_err("auth.test"))?;
        Ok(BotIdentity {
            user_id: r.user_id.to_string(),
            bot_id: r.bot_id.map(|b| b.to_string()).unwrap_or_default(),
        })
    }

    /// `apps.connections.open` with the app-level token: a single-use `wss://` URL.
    pub async fn open_socket_url(&self) -> Result<String, SlackError> {
        let app = self
            .app
            .as_ref()
            .ok_or(SlackError::MissingToken("SLACK_APP_TOKEN"))?;
        let r = self
            .client
            .open_session(app)
            .apps_connections_open(&SlackApiAppsConnectionOpenRequest::new())
            .await
            .map_err(map_err("apps.connections.open"))?;
        Ok(r.url.0.to_string())
    }

    /// `conversations.replies`, every page: the whole thread, oldest first.
    pub async fn replies(
        &self,
        channel: &str,
        thread_ts: &str,
    ) -> Result<Vec<ThreadMessage>, SlackError> {
        let session = self.session();
        let mut out = Vec::new();
        let mut cursor = String::new();
        let limit = PAGE.to_string();
        for _ in 0..MAX_PAGES {
            let params = vec![
                ("channel", Some(channel)),
                ("ts", Some(thread_ts)),
                ("limit", Some(limit.as_str())),
                ("cursor", Some(cursor.as_str()).filter(|c| !c.is_empty())),
            ];
            // Slack's transport, rate control and errors, but a lenient page model: a
            // message with a Block Kit element slack-morphism does not model must not make
            // the whole thread unreadable.
            let page: RepliesPage = session
                .http_session_api
                .http_get(
                    "conversations.replies",
                    &params,
                    Some(&SLACK_TIER3_METHOD_CONFIG),
                )
                .await
                .map_err(map_err("conversations.replies"))?;
            out.extend(page.messages.iter().map(thread_message));
            cursor = page.response_metadata.next_cursor;
            if cursor.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// `chat.postMessage` in a thread: `text` is the notification and fallback text,
    /// `blocks` (Block Kit JSON) the layout. Returns the new message's `ts`. Blocks that
    /// slack-morphism cannot model are dropped and the text alone is posted.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
        blocks: Option<&Value>,
    ) -> Result<String, SlackError> {
        let req = SlackApiChatPostMessageRequest::new(channel.into(), content(text, blocks))
            .with_thread_ts(SlackTs::new(thread_ts.into()));
        let r = self
            .session()
            .chat_post_message(&req)
            .await
            .map_err(map_err("chat.postMessage"))?;
        Ok(r.ts.to_string())
    }

    /// `chat.postMessage` as a new top-level message in `channel` (it starts a thread):
    /// returns its `ts`, the thread's. Used by schedules (`super::schedule`).
    pub async fn post_top_level(&self, channel: &str, text: &str) -> Result<String, SlackError> {
        let req = SlackApiChatPostMessageRequest::new(channel.into(), content(text, None));
        let r = self
            .session()
            .chat_post_message(&req)
            .await
            .map_err(map_err("chat.postMessage"))?;
        Ok(r.ts.to_string())
    }

    /// `chat.update`: replaces a message's text and blocks.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Option<&Value>,
    ) -> Result<(), SlackError> {
        let req = SlackApiChatUpdateRequest::new(
            channel.into(),
            content(text, blocks),
            SlackTs::new(ts.into()),
        );
        self.session()
            .chat_update(&req)
            .await
            .map_err(map_err("chat.update"))?;
        Ok(())
    }

    /// `reactions.add`; `already_reacted` counts as success.
    pub async fn react(&self, channel: &str, ts: &str, name: &str) -> Result<(), SlackError> {
        let req = SlackApiReactionsAddRequest::new(
            channel.into(),
            SlackReactionName::new(name.into()),
            SlackTs::new(ts.into()),
        );
        match self.session().reactions_add(&req).await {
            Ok(_) => Ok(()),
            Err(SlackClientError::ApiError(a)) if a.code == "already_reacted" => Ok(()),
            Err(e) => Err(map_err("reactions.add")(e)),
        }
    }

    /// `chat.getPermalink`: a link to a message.
    pub async fn permalink(&self, channel: &str, ts: &str) -> Result<String, SlackError> {
        let req = SlackApiChatGetPermalinkRequest::new(channel.into(), SlackTs::new(ts.into()));
        let r = self
            .session()
            .chat_get_permalink(&req)
            .await
            .map_err(map_err("chat.getPermalink"))?;
        Ok(r.permalink.to_string())
    }

    /// `usergroups.users.list`: the members of a user group (`S…`). Needs `usergroups:read`.
    pub async fn group_members(&self, group: &str) -> Result<Vec<String>, SlackError> {
        let req = SlackApiUserGroupsUsersListRequest::new(SlackUserGroupId::new(group.into()));
        let r = self
            .session()
            .usergroups_users_list(&req)
            .await
            .map_err(map_err("usergroups.users.list"))?;
        Ok(r.users.iter().map(ToString::to_string).collect())
    }
}

/// Message content: the text always (the notification and the fallback), blocks when they
/// parse as Block Kit.
fn content(text: &str, blocks: Option<&Value>) -> SlackMessageContent {
    let blocks = blocks.and_then(
        |b| match serde_json::from_value::<Vec<SlackBlock>>(b.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "Block Kit did not parse; posting text only");
                None
            }
        },
    );
    SlackMessageContent::new()
        .with_text(text.into())
        .opt_blocks(blocks)
}

/// One `conversations.replies` page, read leniently (`messages` as JSON).
#[derive(Debug, Default, serde::Deserialize)]
struct RepliesPage {
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    response_metadata: PageMeta,
}

#[derive(Debug, Default, serde::Deserialize)]
struct PageMeta {
    #[serde(default)]
    next_cursor: String,
}

fn thread_message(m: &Value) -> ThreadMessage {
    let s = |k: &str| field(m, k).unwrap_or("").to_string();
    ThreadMessage {
        user: s("user"),
        text: s("text"),
        ts: s("ts"),
        files: m
            .get("files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| field(f, "name").or_else(|| field(f, "title")))
            .map(str::to_owned)
            .collect(),
        from_bot: field(m, "bot_id").is_some() || s("subtype") == "bot_message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Web API fixture with its placeholder `url` filled in: the samples put `""` in
    /// every field, which no URL parser accepts.
    fn fixture(name: &str, url: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../shared/fixtures/slack/api/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        v["url"] = serde_json::json!(url);
        v.to_string()
    }

    #[test]
    fn slacks_fullest_reply_and_auth_shapes_parse() {
        // Slack's fullest shape, placeholders and every Block Kit element included.
        let raw = std::fs::read_to_string(format!(
            "{}/../shared/fixtures/slack/api/conversations.replies.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let r: RepliesPage = serde_json::from_str(&raw).unwrap();
        let msgs: Vec<ThreadMessage> = r.messages.iter().map(thread_message).collect();
        assert!(!msgs.is_empty());
        let a: SlackApiAuthTestResponse =
            serde_json::from_str(&fixture("auth.test.json", "https://acme.slack.com/")).unwrap();
        assert!(a.bot_id.is_some() || a.user_id.to_string().is_empty());
        let _: SlackApiAppsConnectionOpenResponse = serde_json::from_str(&fixture(
            "apps.connections.open.json",
            "wss://wss-primary.slack.com/link/?ticket=1",
        ))
        .unwrap();
    }

    #[test]
    fn the_production_connector_builds_for_https_without_panicking() {
        assert!(connector("https://slack.com/api/").is_ok());
        let e = SlackError::Api {
            method: "chat.postMessage",
            code: "not_in_channel".into(),
        };
        assert!(e.advice().contains("/invite"));
    }
}
