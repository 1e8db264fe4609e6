//! The `secrets` gate: scans the lines a change adds for credentials.
//!
//! Rules follow the shapes gitleaks' default configuration documents for the token formats
//! vendors publish (AWS key ids, GitHub, Slack, Stripe, Google, Anthropic and OpenAI keys,
//! private key blocks, JWTs), plus a generic rule: a secret-looking name assigned a quoted
//! value of high Shannon entropy. A `RegexSet` prefilter keeps the common case (no match)
//! to one pass per line. Findings show only a redacted prefix of the value.
//!
//! Owns the rules and the scan; it must not keep, log or report a secret's full value.

use regex::{Regex, RegexSet};

/// One rule: id, pattern, and the capture group holding the secret (0 = whole match).
struct Rule {
    id: &'static str,
    pattern: &'static str,
    group: usize,
}

const RULES: &[Rule] = &[
    Rule {
        id: "aws-access-key-id",
        pattern: r"\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        group: 1,
    },
    Rule {
        id: "aws-secret-access-key",
        pattern: r#"(?i)aws_?(?:secret)?_?(?:access)?_?key['"]?\s*[:=]\s*['"]?([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        group: 1,
    },
    Rule {
        id: "gitlab-token",
        pattern: r"\b(glpat-[0-9A-Za-z_-]{20,})",
        group: 1,
    },
    Rule {
        id: "npm-token",
        pattern: r"\b(npm_[A-Za-z0-9]{36})\b",
        group: 1,
    },
    Rule {
        id: "google-oauth-secret",
        pattern: r"\b(GOCSPX-[A-Za-z0-9_-]{28})",
        group: 1,
    },
    Rule {
        id: "github-token",
        pattern: r"\b((?:ghp|gho|ghu|ghs|ghr)_[0-9A-Za-z]{36})\b",
        group: 1,
    },
    Rule {
        id: "github-fine-grained-token",
        pattern: r"\b(github_pat_[0-9A-Za-z_]{82})\b",
        group: 1,
    },
    Rule {
        id: "slack-token",
        pattern: r"\b(xox[abeprs]-[0-9A-Za-z-]{10,})",
        group: 1,
    },
    Rule {
        id: "slack-app-token",
        pattern: r"\b(xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)",
        group: 1,
    },
    Rule {
        id: "slack-webhook",
        pattern: r"(https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/]{40,})",
        group: 1,
    },
    Rule {
        id: "private-key",
        pattern: r"(-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)",
        group: 1,
    },
    Rule {
        id: "google-api-key",
        pattern: r"\b(AIza[0-9A-Za-z_-]{35})\b",
        group: 1,
    },
    Rule {
        id: "stripe-secret-key",
        pattern: r"\b((?:sk|rk)_live_[0-9A-Za-z]{24,})\b",
        group: 1,
    },
    Rule {
        id: "anthropic-api-key",
        pattern: r"\b(sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,})",
        group: 1,
    },
    Rule {
        id: "openai-api-key",
        pattern: r"\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,})",
        group: 1,
    },
    Rule {
        id: "jwt",
        pattern: r"\b(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
        group: 1,
    },
    Rule {
        id: "generic-secret",
        pattern: r#"(?i)(?:secret|token|passwd|password|api_?key|access_?key|private_?key|client_?secret|auth)[A-Za-z0-9_]*['"]?\s*[:=]{1,2}\s*['"]?([^'"\s,;]{16,})"#,
        group: 1,
    },
];

/// Shannon entropy a generic value must reach, bits per character. Random base64 and hex
/// keys are ≥ 3.5; words and placeholders rarely are.
const GENERIC_MIN_ENTROPY: f64 = 3.5;

/// Values that are obviously not secrets.
const PLACEHOLDERS: &[&str] = &[
    "example",
    "xxxx",
    "changeme",
    "your_",
    "your-",
    "<",
    "${",
    "{{",
    "dummy",
    "placeholder",
    "redacted",
    "test",
];

/// A credential found in an added line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub path: String,
    /// Line number in the new file.
    pub line: usize,
    /// The first 4 characters and a mask.
    pub redacted: String,
}

/// The compiled rules. Build once; scanning is `&self`.
pub struct Scanner {
    set: RegexSet,
    rules: Vec<(&'static str, Regex, usize)>,
}

impl Scanner {
    pub fn new() -> Self {
        // The patterns are constants checked by the tests below; an invalid one would be a
        // build defect, so fall back to a scanner without it rather than panic.
        let rules: Vec<(&'static str, Regex, usize)> = RULES
            .iter()
            .filter_map(|r| Regex::new(r.pattern).ok().map(|re| (r.id, re, r.group)))
            .collect();
        let set = RegexSet::new(rules.iter().map(|(_, re, _)| re.as_str()))
            .unwrap_or_else(|_| RegexSet::empty());
        Self { set, rules }
    }

    /// Scans one line; returns (rule, secret) pairs.
    pub fn scan_line<'l>(&self, line: &'l str) -> Vec<(&'static str, &'l str)> {
        let hits = self.set.matches(line);
        if !hits.matched_any() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for i in hits.iter() {
            let (id, re, group) = &self.rules[i];
            for caps in re.captures_iter(line) {
                let Some(m) = caps.get(*group) else { continue };
                let value = m.as_str();
                if *id == "generic-secret" {
                    let lower = value.to_ascii_lowercase();
                    if PLACEHOLDERS.iter().any(|p| lower.contains(p))
                        || entropy(value) < GENERIC_MIN_ENTROPY
                    {
                        continue;
                    }
                }
                out.push((*id, value));
            }
        }
        // One finding per value: a vendor rule beats the generic one.
        let specific: Vec<&str> = out
            .iter()
            .filter(|(id, _)| *id != "generic-secret")
            .map(|(_, v)| *v)
            .collect();
        out.retain(|(id, v)| {
            *id != "generic-secret" || !specific.iter().any(|s| s.contains(v) || v.contains(s))
        });
        out
    }

    /// Scans the added lines of a unified diff (`git diff` output). File headers are only
    /// read between a `diff --git` line and the first hunk, so an added line that starts
    /// with `++ ` is content, not a header.
    pub fn scan_diff(&self, diff: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut path = String::new();
        let mut new_line = 0usize;
        let mut in_header = false;
        for line in diff.lines() {
            if line.starts_with("diff --git ") {
                in_header = true;
                continue;
            }
            if line.starts_with("@@") {
                in_header = false;
                // @@ -a,b +c,d @@: the next added line is line c.
                new_line = line
                    .split_whitespace()
                    .find_map(|t| t.strip_prefix('+'))
                    .and_then(|t| t.split(',').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                continue;
            }
            if in_header || (path.is_empty() && line.starts_with("+++ ")) {
                if let Some(p) = line.strip_prefix("+++ ") {
                    path = crate::workspace::unquote_path(p)
                        .trim_start_matches("b/")
                        .to_string();
                }
                continue;
            }
            if let Some(added) = line.strip_prefix('+') {
                for (rule, value) in self.scan_line(added) {
                    findings.push(Finding {
                        rule,
                        path: path.clone(),
                        line: new_line,
                        redacted: redact(value),
                    });
                }
                new_line += 1;
            } else if !line.starts_with('-') && !line.starts_with('\\') {
                new_line += 1;
            }
        }
        findings
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

/// Shannon entropy of `s`, bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn redact(value: &str) -> String {
    let prefix: String = value.chars().take(4).collect();
    format!("{prefix}…({} chars)", value.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles() {
        assert_eq!(Scanner::new().rules.len(), RULES.len());
    }

    #[test]
    fn vendor_tokens_are_found() {
        let s = Scanner::new();
        let cases = [
            ("aws-access-key-id", "key = AKIAIOSFODNN7EXAMPLQ"),
            (
                "aws-secret-access-key",
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKZ",
            ),
            (
                "github-token",
                "token: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            ),
            ("slack-token", "SLACK=xoxb-1234567890-abcdefghij"),
            ("private-key", "-----BEGIN RSA PRIVATE KEY-----"),
            ("google-api-key", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
            ("stripe-secret-key", "sk_live_abcdefghijklmnopqrstuvwx"),
            ("gitlab-token", "GITLAB=glpat-abcdefghij0123456789"),
            (
                "npm-token",
                "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
            ),
            (
                "aws-secret-access-key",
                "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE+/",
            ),
        ];
        for (rule, line) in cases {
            let hits = s.scan_line(line);
            assert!(
                hits.iter().any(|(r, _)| *r == rule),
                "{rule} not found in {line:?}: {hits:?}"
            );
        }
    }

    #[test]
    fn generic_secrets_need_entropy_and_no_placeholder() {
        let s = Scanner::new();
        assert!(
            !s.scan_line(r#"password = "q8Zr3vLm0xT7pW2sK9nB""#)
                .is_empty()
        );
        assert!(
            s.scan_line(r#"password = "correcthorsebattery""#)
                .is_empty(),
            "low entropy"
        );
        assert!(
            s.scan_line(r#"api_key = "your_api_key_goes_here_1234""#)
                .is_empty(),
            "placeholder"
        );
        assert!(s.scan_line("let total = add(a, b);").is_empty());
    }

    #[test]
    fn unquoted_env_values_and_added_plus_lines_are_scanned() {
        let s = Scanner::new();
        assert!(!s.scan_line("DB_PASSWORD=q8Zr3vLm0xT7pW2sK9nB").is_empty());
        let diff = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -0,0 +1,2 @@\n+++ token = 'ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789'\n+y\n";
        let f = s.scan_diff(diff);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].path.as_str(), f[0].line), ("x", 1));
    }

    #[test]
    fn only_added_lines_count_with_their_line_numbers() {
        let diff = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,4 @@\n import os\n-OLD = 'AKIAIOSFODNN7EXAMPLQ'\n+KEY = 'AKIAIOSFODNN7EXAMPLZ'\n+x = 1\n y = 2\n";
        let f = Scanner::new().scan_diff(diff);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, "app.py");
        assert_eq!(f[0].line, 2);
        assert_eq!(f[0].rule, "aws-access-key-id");
        assert!(!f[0].redacted.contains("EXAMPLZ"));
    }

    #[test]
    fn a_finding_names_a_file_whose_name_has_a_space_exactly() {
        let diff = "diff --git a/conf/a b.py b/conf/a b.py\nnew file mode 100644\n--- /dev/null\n+++ b/conf/a b.py\t\n@@ -0,0 +1 @@\n+KEY = 'AKIAIOSFODNN7EXAMPLZ'\n";
        let f = Scanner::new().scan_diff(diff);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, "conf/a b.py");
    }
}
