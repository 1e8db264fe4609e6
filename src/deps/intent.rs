//! Routing a Slack request to `dependency_update`: explicit and explainable, never guessed.
//! A request routes only when it starts with one of these shapes (after the mention and the
//! repo name are taken out), and the reason is echoed in the thread's status message:
//!
//! | shape | request |
//! |---|---|
//! | `bump NAME [to VERSION \| to the latest]`, `upgrade NAME to …`, `update NAME to …` | `--only NAME [--version VERSION]` (majors allowed: the package is named) |
//! | `update [patch] [and] [minor] [and] [major] dependencies` (`deps`, `packages`; `all`) | `--update-types …` (default patch, minor) |
//! | `lockfile maintenance`, `lock file maintenance` | `--lockfile-maintenance` |
//! | `fix GHSA-xxxx-xxxx-xxxx` | the advisory, looked up on the forge |
//!
//! Anything else is a `code_change` task, as before.

use std::sync::LazyLock;

use regex::Regex;

use super::{DepsRequest, UpdateType};
use crate::deps::AdvisoryInput;

/// A routed request and why it routed (for the status message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub request: DepsRequest,
    /// e.g. "the request starts with `bump lodash`".
    pub why: String,
}

static LOCKFILE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)^(?:run\s+|do\s+)?lock\s*-?\s*file\s+maintenance\b").ok());
static GHSA: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)^fix\s+(GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})\b").ok());
static TYPES: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:update|upgrade|bump)\s+(?:the\s+)?(all\s+|(?:(?:patch|minor|major)(?:\s*(?:,|and|&|\+|/)\s*)?\s*)+)?(?:dependencies|deps|packages)\b",
    )
    .ok()
});
static BUMP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:bump|upgrade|update)\s+`?(@?[a-z0-9][\w.\-/@]*)`?(?:\s+to\s+(?:the\s+)?(latest(?:\s+version)?|v?\d[\w.+\-]*))?\s*[.!]?\s*$",
    )
    .ok()
});

/// The request `text` routes to, or `None` for an ordinary task. `text` is the instruction
/// with the mention and the repo name already removed.
pub fn route(text: &str) -> Option<Routed> {
    let t = text.trim();
    let first_words = |n: usize| t.split_whitespace().take(n).collect::<Vec<_>>().join(" ");
    if LOCKFILE.as_ref()?.is_match(t) {
        return Some(Routed {
            request: DepsRequest {
                lockfile_maintenance: true,
                ..Default::default()
            },
            why: "the request asks for `lockfile maintenance`".into(),
        });
    }
    if let Some(c) = GHSA.as_ref()?.captures(t) {
        let id = c[1].to_string();
        let id = format!("GHSA{}", id[4..].to_ascii_lowercase());
        return Some(Routed {
            why: format!("the request asks to fix the advisory `{id}`"),
            request: DepsRequest {
                advisory: Some(AdvisoryInput::Ghsa { id }),
                ..Default::default()
            },
        });
    }
    if let Some(c) = TYPES.as_ref()?.captures(t) {
        let words = c.get(1).map_or("", |m| m.as_str()).to_ascii_lowercase();
        let mut types = Vec::new();
        if words.trim() == "all" {
            types = vec![UpdateType::Patch, UpdateType::Minor, UpdateType::Major];
        } else {
            for (w, ty) in [
                ("patch", UpdateType::Patch),
                ("minor", UpdateType::Minor),
                ("major", UpdateType::Major),
            ] {
                if words.contains(w) {
                    types.push(ty);
                }
            }
        }
        return Some(Routed {
            why: format!("the request starts with `{}`", first_words(6)),
            request: DepsRequest {
                update_types: types,
                ..Default::default()
            },
        });
    }
    if let Some(c) = BUMP.as_ref()?.captures(t) {
        let name = c[1].to_string();
        // "update the docs" is not a package: a bare word needs a version, or `bump`.
        let verb = t
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let version = c.get(2).map(|m| m.as_str().to_string());
        if verb != "bump" && version.is_none() {
            return None;
        }
        let version = version
            .filter(|v| !v.to_ascii_lowercase().starts_with("latest"))
            .map(|v| v.trim_start_matches(['v', 'V']).to_string());
        return Some(Routed {
            why: format!("the request starts with `{verb} {name}`"),
            request: DepsRequest {
                only: vec![name],
                version,
                ..Default::default()
            },
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_examples_route_and_ordinary_tasks_do_not() {
        let r = route("bump lodash to the latest").unwrap();
        assert_eq!(r.request.only, vec!["lodash"]);
        assert_eq!(r.request.version, None);
        assert!(r.why.contains("`bump lodash`"));
        let r = route("update patch and minor dependencies").unwrap();
        assert_eq!(
            r.request.update_types,
            vec![UpdateType::Patch, UpdateType::Minor]
        );
        assert!(
            route("lockfile maintenance")
                .unwrap()
                .request
                .lockfile_maintenance
        );
        let r = route("fix GHSA-jf85-cpcp-j695").unwrap();
        assert_eq!(
            r.request.advisory,
            Some(AdvisoryInput::Ghsa {
                id: "GHSA-jf85-cpcp-j695".into()
            })
        );
        let r = route("upgrade @acme/ui to v2.1.0").unwrap();
        assert_eq!(r.request.only, vec!["@acme/ui"]);
        assert_eq!(r.request.version.as_deref(), Some("2.1.0"));
        assert_eq!(
            route("update all deps").unwrap().request.update_types.len(),
            3
        );
        for ordinary in [
            "update the docs",
            "fix the flaky test in calc.py",
            "bump the retry count to 5 and add a test",
            "add a --verbose flag",
            "update README",
        ] {
            assert_eq!(route(ordinary), None, "{ordinary}");
        }
    }
}
