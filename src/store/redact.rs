//! Secret redaction for what the store writes: a JSON value with every known secret value,
//! as is and JSON-escaped (a PEM key's newlines are `\n` there), replaced by `<redacted>`.

use serde_json::Value;

/// `v` with each of `secrets` replaced by `<redacted>` wherever it occurs in its JSON text.
/// Empty secrets are ignored; a value that no longer parses after replacement (it cannot,
/// as only string contents change) is kept as one string.
pub(super) fn redact_json(secrets: &[String], v: Value) -> Value {
    if secrets.is_empty() {
        return v;
    }
    let spellings = secrets
        .iter()
        .flat_map(|s| {
            let escaped = serde_json::to_string(s).unwrap_or_default();
            [s.clone(), escaped.trim_matches('"').to_string()]
        })
        .collect();
    match crate::redact::replace_spellings(&v.to_string(), spellings) {
        Some(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_as_is_and_json_escaped() {
        let secrets = vec![
            "tok-123".to_string(),
            "line1\nline2".to_string(),
            String::new(),
        ];
        let v = json!({"error": "401 with tok-123", "key": "line1\nline2", "n": 3});
        let r = redact_json(&secrets, v);
        assert_eq!(
            r,
            json!({"error": "401 with <redacted>", "key": "<redacted>", "n": 3})
        );
        assert_eq!(
            redact_json(&[], json!({"a": "tok-123"})),
            json!({"a": "tok-123"})
        );
        let nested = vec!["abc".to_string(), "xxabcxx".to_string()];
        assert_eq!(
            redact_json(&nested, json!("key xxabcxx")),
            json!("key <redacted>")
        );
    }
}
