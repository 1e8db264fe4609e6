//! Ingress: a Slack event callback's `event` (JSON, as the Events API and Socket Mode deliver
//! it) normalised into what slipway acts on, or the reason it is ignored. Pure: no I/O, so
//! every rule is tested on Slack's own payloads.
//!
//! Facts this encodes (`shared/fixtures/slack/socket_mode.md`): a mention in a channel the
//! bot is in arrives twice, as `app_mention` and as `message`, with the same `(channel, ts)`
//! (so both normalise to one [`Ingress::Mention`] with one dedupe key); the bot's own posts
//! come back as `message` events with `bot_id` and often no subtype; reaction names come
//! without colons and may carry a skin tone (`thumbsup::skin-tone-2`); `item_user` may be
//! missing and `item.type` may be `file`. Slack sends empty strings for absent fields in some
//! payloads; they count as absent here.

use serde_json::Value;

/// Who the bot is (from `auth.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: String,
    pub bot_id: String,
}

/// A normalised event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress {
    /// A mention in a channel, or any message in a DM to the bot: may start a task or run a
    /// command.
    Mention {
        channel: String,
        ts: String,
        /// The thread it belongs to (its own `ts` when it starts one).
        thread_ts: String,
        user: String,
        text: String,
        is_dm: bool,
    },
    /// A reply in a thread (the caller checks the thread belongs to a task).
    ThreadReply {
        channel: String,
        ts: String,
        thread_ts: String,
        user: String,
        text: String,
    },
    /// A reaction added to a message.
    Reaction {
        channel: String,
        /// The message reacted to.
        item_ts: String,
        user: String,
        /// Without colons or skin tone: `white_check_mark`, `x`, `repeat`, `rewind`.
        reaction: String,
        event_ts: String,
    },
    Ignore(String),
}

impl Ingress {
    /// The key that makes a redelivered or doubled event a duplicate: `(channel, ts)` for
    /// messages (so `app_mention` and `message` of one mention collide), and the reaction
    /// with its `event_ts` for reactions (so removing and re-adding a ✅ counts again).
    /// `None` for ignored events.
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            Self::Mention { channel, ts, .. } | Self::ThreadReply { channel, ts, .. } => {
                Some(format!("msg/{channel}/{ts}"))
            }
            Self::Reaction {
                channel,
                item_ts,
                user,
                reaction,
                event_ts,
            } => Some(format!(
                "reaction/{channel}/{item_ts}/{user}/{reaction}/{event_ts}"
            )),
            Self::Ignore(_) => None,
        }
    }
}

/// A string field, with `""` counting as absent.
pub(crate) fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Subtypes that still carry a person's message.
const PERSON_SUBTYPES: &[&str] = &["file_share", "thread_broadcast"];

/// Normalises one event (the `event` object of an event callback).
pub fn normalize(event: &Value, bot: &BotIdentity) -> Ingress {
    let kind = field(event, "type").unwrap_or("");
    match kind {
        "app_mention" | "message" => message(kind, event, bot),
        "reaction_added" => reaction(event, bot),
        other => Ingress::Ignore(format!("event type {other:?} is not handled")),
    }
}

fn message(kind: &str, e: &Value, bot: &BotIdentity) -> Ingress {
    if let Some(sub) = field(e, "subtype")
        && !PERSON_SUBTYPES.contains(&sub)
    {
        return Ingress::Ignore(format!("message subtype {sub}"));
    }
    if field(e, "bot_id").is_some() || field(e, "user").is_some_and(|u| u == bot.user_id) {
        return Ingress::Ignore("the bot's own message".into());
    }
    let (Some(channel), Some(ts), Some(user)) =
        (field(e, "channel"), field(e, "ts"), field(e, "user"))
    else {
        return Ingress::Ignore("message without channel, ts or user".into());
    };
    let text = field(e, "text").unwrap_or("").to_string();
    let thread_ts = field(e, "thread_ts").unwrap_or(ts).to_string();
    let is_dm = field(e, "channel_type") == Some("im") || channel.starts_with('D');
    let mentioned = kind == "app_mention" || text.contains(&format!("<@{}>", bot.user_id));
    let in_thread = thread_ts != ts;
    if mentioned || (is_dm && !in_thread) {
        return Ingress::Mention {
            channel: channel.into(),
            ts: ts.into(),
            thread_ts,
            user: user.into(),
            text,
            is_dm,
        };
    }
    if in_thread {
        return Ingress::ThreadReply {
            channel: channel.into(),
            ts: ts.into(),
            thread_ts,
            user: user.into(),
            text,
        };
    }
    Ingress::Ignore("neither a mention nor a thread reply".into())
}

fn reaction(e: &Value, bot: &BotIdentity) -> Ingress {
    let Some(user) = field(e, "user") else {
        return Ingress::Ignore("reaction without a user".into());
    };
    if user == bot.user_id {
        return Ingress::Ignore("the bot's own reaction".into());
    }
    let item = e.get("item").cloned().unwrap_or(Value::Null);
    if field(&item, "type") != Some("message") {
        return Ingress::Ignore("reaction on something that is not a message".into());
    }
    let (Some(channel), Some(item_ts)) = (field(&item, "channel"), field(&item, "ts")) else {
        return Ingress::Ignore("reaction without a message".into());
    };
    let reaction = field(e, "reaction")
        .unwrap_or("")
        .split("::")
        .next()
        .unwrap_or("")
        .to_string();
    Ingress::Reaction {
        channel: channel.into(),
        item_ts: item_ts.into(),
        user: user.into(),
        reaction,
        event_ts: field(e, "event_ts").unwrap_or("").into(),
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> BotIdentity {
        BotIdentity {
            user_id: "U0BOT".into(),
            bot_id: "B0BOT".into(),
        }
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../shared/fixtures/slack/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v.get("event").cloned().unwrap_or(v)
    }

    /// Fills a fixture's empty fields, as a live event would have them.
    fn with(mut v: Value, fields: Value) -> Value {
        for (k, val) in fields.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    #[test]
    fn slacks_fullest_payloads_parse_and_the_empty_ones_are_ignored_with_a_reason() {
        for name in [
            "AppMentionPayload.json",
            "MessagePayload.json",
            "ReactionAddedPayload.json",
            "MessageBotPayload.json",
            "MessageChangedPayload.json",
            "MessageDeletedPayload.json",
            "MessageFileSharePayload.json",
            "MessageRepliedPayload.json",
            "MessageThreadBroadcastPayload.json",
            "ReactionRemovedPayload.json",
        ] {
            // Placeholder payloads lack the fields a real event has: each is ignored, never a panic.
            assert!(
                matches!(normalize(&fixture(name), &bot()), Ingress::Ignore(_)),
                "{name}"
            );
        }
    }

    #[test]
    fn a_mention_arrives_twice_and_dedupes_to_one() {
        let app = with(
            fixture("AppMentionPayload.json"),
            json!({"user": "U0ALICE", "text": "<@U0BOT> in acme/api: make the retry limit configurable", "ts": "1700000000.000100", "channel": "C0DEV", "bot_id": "", "subtype": "", "thread_ts": ""}),
        );
        let msg = with(
            fixture("MessagePayload.json"),
            json!({"user": "U0ALICE", "text": "<@U0BOT> in acme/api: make the retry limit configurable", "ts": "1700000000.000100", "channel": "C0DEV", "bot_id": "", "thread_ts": "", "channel_type": "channel"}),
        );
        let (a, m) = (normalize(&app, &bot()), normalize(&msg, &bot()));
        assert!(
            matches!(&a, Ingress::Mention { thread_ts, is_dm: false, .. } if thread_ts == "1700000000.000100"),
            "{a:?}"
        );
        assert_eq!(a.dedupe_key(), m.dedupe_key());
        assert!(a.dedupe_key().is_some());
    }

    #[test]
    fn replies_dms_and_noise_are_told_apart() {
        let reply = json!({"type": "message", "user": "U0ALICE", "text": "also document it in the README", "ts": "1700000050.000200", "thread_ts": "1700000000.000100", "parent_user_id": "U0ALICE", "channel": "C0DEV", "channel_type": "channel"});
        assert!(matches!(
            normalize(&reply, &bot()),
            Ingress::ThreadReply { .. }
        ));
        let dm = json!({"type": "message", "user": "U0ALICE", "text": "fix the flaky test in acme/api", "ts": "1.1", "channel": "D0DM", "channel_type": "im"});
        assert!(matches!(
            normalize(&dm, &bot()),
            Ingress::Mention { is_dm: true, .. }
        ));
        let own = json!({"type": "message", "user": "U0BOT", "bot_id": "B0BOT", "text": "Working on it…", "ts": "1.2", "thread_ts": "1.0", "channel": "C0DEV"});
        assert_eq!(
            normalize(&own, &bot()),
            Ingress::Ignore("the bot's own message".into())
        );
        let edit = json!({"type": "message", "subtype": "message_changed", "hidden": true, "channel": "C0DEV", "ts": "1.3"});
        assert!(
            matches!(normalize(&edit, &bot()), Ingress::Ignore(r) if r.contains("message_changed"))
        );
        let chatter = json!({"type": "message", "user": "U0ALICE", "text": "lunch?", "ts": "1.4", "channel": "C0DEV"});
        assert!(matches!(normalize(&chatter, &bot()), Ingress::Ignore(_)));
        let unknown = json!({"type": "team_join", "user": {"id": "U1"}});
        assert!(
            matches!(normalize(&unknown, &bot()), Ingress::Ignore(r) if r.contains("team_join"))
        );
    }

    #[test]
    fn reactions_lose_their_skin_tone_and_the_bots_own_are_ignored() {
        let r = json!({"type": "reaction_added", "user": "U0BOB", "reaction": "white_check_mark::skin-tone-2", "item": {"type": "message", "channel": "C0DEV", "ts": "1700000300.000400"}, "event_ts": "1700000400.000500"});
        assert!(
            matches!(normalize(&r, &bot()), Ingress::Reaction { reaction, .. } if reaction == "white_check_mark")
        );
        let own = json!({"type": "reaction_added", "user": "U0BOT", "reaction": "eyes", "item": {"type": "message", "channel": "C0DEV", "ts": "1.0"}});
        assert!(matches!(normalize(&own, &bot()), Ingress::Ignore(_)));
        let file = json!({"type": "reaction_added", "user": "U0BOB", "reaction": "x", "item": {"type": "file", "file": "F1"}});
        assert!(matches!(normalize(&file, &bot()), Ingress::Ignore(_)));
    }
}
