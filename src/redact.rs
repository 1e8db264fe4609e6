//! Replacing known secret values in text: the one mechanism behind every writer's redaction
//! (the store's audit and transcript entries, Slack messages, logs). Each writer only says
//! which spellings of a secret it may meet (as is, JSON-escaped, Slack-escaped).
//!
//! A leaf: imports nothing from the crate.

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// `text` with every occurrence of each of `spellings` replaced by [`REDACTED`], longest
/// first so a short secret inside a longer one leaves no piece of it; empty spellings are
/// ignored. `None` when no spelling occurs (the caller keeps its value as it is).
pub fn replace_spellings(text: &str, mut spellings: Vec<String>) -> Option<String> {
    spellings.retain(|s| !s.is_empty());
    spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    if !spellings.iter().any(|s| text.contains(s.as_str())) {
        return None;
    }
    let mut out = text.to_string();
    for s in &spellings {
        out = out.replace(s.as_str(), REDACTED);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_spelling_goes_first_and_empty_ones_are_ignored() {
        let got = replace_spellings(
            "a xxabcxx b abc",
            vec!["abc".into(), "xxabcxx".into(), String::new()],
        );
        assert_eq!(got.as_deref(), Some("a <redacted> b <redacted>"));
        assert_eq!(replace_spellings("nothing here", vec!["abc".into()]), None);
    }
}

/// Secret values known to this process. Its `Debug` prints only a count.
#[derive(Clone, Default)]
pub struct SecretValues(pub Vec<String>);

impl SecretValues {
    /// `text` with every known secret value replaced by `<redacted>`, in its own spelling
    /// and in its Slack-escaped one (Slack copy escapes `&<>` in quoted errors before egress
    /// redacts them).
    pub fn redact(&self, text: &str) -> String {
        let spellings = self
            .0
            .iter()
            .flat_map(|s| [s.clone(), crate::untrusted::mrkdwn(s)])
            .collect();
        replace_spellings(text, spellings).unwrap_or_else(|| text.to_string())
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValues(<{} redacted>)", self.0.len())
    }
}
