//! Property-based tests of Socket Mode frame parsing ([`super::parse`]): any text read off
//! the socket gives a frame, never a panic, and an envelope keeps the id it must be acked
//! with. Frame shapes follow `shared/fixtures/slack/socket_mode.md`. Cases: `PROPTEST_CASES`
//! (256 by default; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{Frame, parse};
use crate::fuzz_support::any_json;

/// A string, or sometimes a value of another JSON type where Slack sends a string.
fn stringish() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop_oneof![
            Just("events_api".to_string()),
            Just("hello".to_string()),
            Just("disconnect".to_string()),
            Just("interactive".to_string()),
            Just(String::new()),
            ".{0,16}",
        ]
        .prop_map(Value::String),
        1 => any_json(),
    ]
}

proptest! {
    #[test]
    fn any_text_parses_to_a_frame(text in ".{0,200}") {
        let frame = parse(&text);
        if serde_json::from_str::<Value>(&text).is_err() {
            prop_assert_eq!(frame, Frame::Other("not JSON".into()));
        }
    }

    #[test]
    fn any_json_parses_to_a_frame(v in any_json()) {
        let frame = parse(&v.to_string());
        let id = v.get("envelope_id").and_then(Value::as_str);
        prop_assert_eq!(id.is_some(), matches!(frame, Frame::Envelope { .. }), "{:?}", frame);
    }

    /// An envelope keeps its id, type, retry and payload exactly; a frame without an id is
    /// `hello`, `disconnect` (with its reason) or other, by its type.
    #[test]
    fn frame_fields_survive_parsing(
        envelope_id in prop::option::of(stringish()),
        kind in prop::option::of(stringish()),
        retry_attempt in prop::option::of(prop_oneof![any::<u64>().prop_map(Value::from), any_json()]),
        retry_reason in prop::option::of(stringish()),
        reason in prop::option::of(stringish()),
        payload in prop::option::of(any_json()),
        extra in prop::collection::vec((".{1,8}", any_json()), 0..4),
    ) {
        let mut obj: Map<String, Value> = extra.into_iter().collect();
        for (k, v) in [
            ("envelope_id", &envelope_id),
            ("type", &kind),
            ("retry_attempt", &retry_attempt),
            ("retry_reason", &retry_reason),
            ("reason", &reason),
            ("payload", &payload),
        ] {
            match v {
                Some(v) => obj.insert(k.into(), v.clone()),
                None => obj.remove(k),
            };
        }
        let frame = parse(&Value::Object(obj).to_string());
        let str_of = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).unwrap_or("").to_string();
        match envelope_id.as_ref().and_then(Value::as_str) {
            Some(id) => prop_assert_eq!(frame, Frame::Envelope {
                id: id.to_string(),
                kind: str_of(&kind),
                retry_attempt: retry_attempt.as_ref().and_then(Value::as_u64).unwrap_or(0),
                retry_reason: str_of(&retry_reason),
                // As serde_json reads it back: its default float parsing may round the last digit.
                payload: payload.map_or(Value::Null, |p| serde_json::from_str(&p.to_string()).unwrap_or(Value::Null)),
            }),
            None => prop_assert_eq!(frame, match str_of(&kind).as_str() {
                "hello" => Frame::Hello,
                "disconnect" => Frame::Disconnect(str_of(&reason)),
                other => Frame::Other(other.to_string()),
            }),
        }
    }

    /// The ack slipway writes names the same envelope: the id round-trips through JSON,
    /// whatever characters it holds.
    #[test]
    fn the_ack_names_the_envelope(id in ".{0,64}") {
        let frame = parse(&json!({"envelope_id": id, "type": "events_api", "payload": {}}).to_string());
        let Frame::Envelope { id: parsed, .. } = frame else {
            return Err(TestCaseError::fail("an envelope with an id is an envelope"));
        };
        let ack: Value = serde_json::from_str(&json!({ "envelope_id": parsed }).to_string())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ack["envelope_id"].as_str(), Some(id.as_str()));
    }
}
