//! Property-based tests of [`super::normalize`] over events shaped like Slack's
//! (`shared/fixtures/slack/events/`): `message` with and without subtypes, `app_mention`,
//! `reaction_added`, the bot's own posts (`bot_id`, its user), `edited`, `thread_ts`, empty
//! strings and values of the wrong JSON type where Slack sends a string. Cases:
//! `PROPTEST_CASES` (256 by default; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{BotIdentity, Ingress, normalize};
use crate::fuzz_support::any_json;

const BOT_USER: &str = "U0BOT";
const BOT_ID: &str = "B0BOT";

fn bot() -> BotIdentity {
    BotIdentity {
        user_id: BOT_USER.into(),
        bot_id: BOT_ID.into(),
    }
}

/// A field Slack sends as a string: absent, one of `pool`, empty, any text, or (rarely) a
/// value of another type.
fn field(pool: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        6 => prop::sample::select(pool).prop_map(|s| Some(Value::String(s.into()))),
        1 => Just(Some(Value::String(String::new()))),
        1 => ".{0,12}".prop_map(|s| Some(Value::String(s))),
        1 => any_json().prop_map(Some),
    ]
}

fn text() -> impl Strategy<Value = Option<Value>> {
    let part = prop_oneof![
        Just("<@U0BOT>".to_string()),
        Just("<@U0BOT|slipway>".to_string()),
        Just("<@U0ALICE>".to_string()),
        Just(" in acme/api: ".to_string()),
        Just("fix the retry".to_string()),
        Just("<https://example.com/a|a>".to_string()),
        ".{0,8}",
    ];
    prop_oneof![
        1 => Just(None),
        6 => prop::collection::vec(part, 0..5).prop_map(|p| Some(Value::String(p.concat()))),
        1 => any_json().prop_map(Some),
    ]
}

const TS: &[&str] = &["1700000000.000100", "1700000050.000200", "1.0"];

/// One event as Slack shapes it (the `event` object of a callback).
fn slack_event() -> impl Strategy<Value = Value> {
    (
        (
            field(&[
                "message",
                "app_mention",
                "reaction_added",
                "reaction_removed",
                "team_join",
            ]),
            field(&[
                "bot_message",
                "message_changed",
                "message_deleted",
                "file_share",
                "thread_broadcast",
                "channel_join",
                "me_message",
            ]),
            field(&[BOT_USER, "U0ALICE", "U0BOB"]),
            field(&[BOT_ID, "B0OTHER"]),
            field(&["C0DEV", "D0DM", "G0PRIV"]),
            field(&["channel", "im", "group", "mpim"]),
            field(TS),
            field(TS),
        ),
        (
            text(),
            prop::option::of(any_json()),
            prop::option::of((
                field(&["message", "file"]),
                field(&["C0DEV", "D0DM"]),
                field(TS),
            )),
            field(&[
                "white_check_mark",
                "x",
                "repeat",
                "rewind",
                "thumbsup::skin-tone-2",
                "::",
            ]),
            field(TS),
            prop::collection::vec((".{1,6}", any_json()), 0..3),
        ),
    )
        .prop_map(
            |(
                (kind, subtype, user, bot_id, channel, channel_type, ts, thread_ts),
                (text, edited, item, reaction, event_ts, extra),
            )| {
                let mut e: Map<String, Value> = extra.into_iter().collect();
                let item = item.map(|(t, c, ts)| {
                    let mut i = Map::new();
                    put(&mut i, "type", t);
                    put(&mut i, "channel", c);
                    put(&mut i, "ts", ts);
                    Value::Object(i)
                });
                for (k, v) in [
                    ("type", kind),
                    ("subtype", subtype),
                    ("user", user),
                    ("bot_id", bot_id),
                    ("channel", channel),
                    ("channel_type", channel_type),
                    ("ts", ts),
                    ("thread_ts", thread_ts),
                    ("text", text),
                    ("edited", edited),
                    ("item", item),
                    ("reaction", reaction),
                    ("event_ts", event_ts),
                ] {
                    put(&mut e, k, v);
                }
                Value::Object(e)
            },
        )
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    match v {
        Some(v) => m.insert(k.into(), v),
        None => m.remove(k),
    };
}

/// A string field as `normalize` reads it: `""` counts as absent.
fn s<'a>(e: &'a Value, k: &str) -> Option<&'a str> {
    e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

proptest! {
    #[test]
    fn any_json_normalizes_without_panic(e in any_json()) {
        let n = normalize(&e, &bot());
        prop_assert_eq!(n.dedupe_key().is_none(), matches!(n, Ingress::Ignore(_)));
    }

    /// The bot never answers itself: its own posts and reactions are never a mention, a
    /// reply or a reaction to act on. What is acted on carries the event's own fields.
    #[test]
    fn the_bots_own_events_are_ignored_and_the_rest_keep_their_fields(e in slack_event()) {
        let n = normalize(&e, &bot());
        prop_assert_eq!(n.dedupe_key().is_none(), matches!(n, Ingress::Ignore(_)));
        let own = s(&e, "bot_id").is_some() || s(&e, "user") == Some(BOT_USER);
        match &n {
            Ingress::Mention { channel, ts, thread_ts, user, text, .. }
            | Ingress::ThreadReply { channel, ts, thread_ts, user, text } => {
                prop_assert!(!own, "the bot's own message became {:?}", n);
                prop_assert!(matches!(s(&e, "type"), Some("message" | "app_mention")));
                prop_assert_eq!(Some(channel.as_str()), s(&e, "channel"));
                prop_assert_eq!(Some(ts.as_str()), s(&e, "ts"));
                prop_assert_eq!(Some(user.as_str()), s(&e, "user"));
                prop_assert_eq!(text.as_str(), s(&e, "text").unwrap_or(""));
                prop_assert_eq!(thread_ts.as_str(), s(&e, "thread_ts").unwrap_or(ts));
                if let Some(sub) = s(&e, "subtype") {
                    prop_assert!(matches!(sub, "file_share" | "thread_broadcast"), "{}", sub);
                }
                if matches!(n, Ingress::ThreadReply { .. }) {
                    prop_assert_ne!(thread_ts, ts);
                }
            }
            Ingress::Reaction { channel, item_ts, user, reaction, event_ts } => {
                prop_assert_eq!(s(&e, "type"), Some("reaction_added"));
                prop_assert_ne!(user.as_str(), BOT_USER);
                prop_assert_eq!(Some(user.as_str()), s(&e, "user"));
                let item = e.get("item").cloned().unwrap_or(Value::Null);
                prop_assert_eq!(s(&item, "type"), Some("message"));
                prop_assert_eq!(Some(channel.as_str()), s(&item, "channel"));
                prop_assert_eq!(Some(item_ts.as_str()), s(&item, "ts"));
                prop_assert!(!reaction.contains("::"), "{}", reaction);
                prop_assert!(s(&e, "reaction").unwrap_or("").starts_with(reaction.as_str()));
                prop_assert_eq!(event_ts.as_str(), s(&e, "event_ts").unwrap_or(""));
            }
            Ingress::Ignore(_) => {}
        }
    }

    /// A mention in a channel arrives twice, as `app_mention` and as `message` (which also
    /// carries `channel_type`): both give the same answer and one dedupe key.
    #[test]
    fn both_forms_of_a_mention_dedupe_to_one(e in slack_event(), channel_type in prop::option::of(prop::sample::select(&["channel", "group"][..]))) {
        let mut app = e.clone();
        app["type"] = json!("app_mention");
        app.as_object_mut().map(|o| o.remove("channel_type"));
        if s(&app, "channel").is_some_and(|c| c.starts_with('D')) {
            app["channel"] = json!("C0DEV");
        }
        let text = s(&app, "text").unwrap_or("").to_string();
        app["text"] = json!(format!("<@{BOT_USER}> {text}"));
        let mut msg = app.clone();
        msg["type"] = json!("message");
        if let Some(t) = channel_type {
            msg["channel_type"] = json!(t);
        }
        let (a, m) = (normalize(&app, &bot()), normalize(&msg, &bot()));
        prop_assert_eq!(a.dedupe_key(), m.dedupe_key());
        prop_assert_eq!(&a, &m);
    }
}
