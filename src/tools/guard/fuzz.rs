//! Property-based tests of the command guard ([`super::CommandGuard::check`]): any command
//! gets a verdict (never a panic or a stack overflow), a refusal survives being placed in a
//! longer command line, and the verdict does not depend on how words are spaced. Cases:
//! `PROPTEST_CASES` (256 by default; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;

use super::{CommandGuard, Verdict};

fn guard() -> CommandGuard {
    CommandGuard::new(&["make deploy".into(), "npm  publish".into()])
}

/// Shell words that matter to the guard: programs it refuses, wrappers, options, quotes,
/// separators and substitutions.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&[
            "git", "push", "remote", "config", "credential.helper", "-c", "-C", ".", "alias.p=push",
            "curl", "wget", "/usr/bin/curl", "ssh", "sudo", "env", "-i", "-u", "nice", "-n", "5",
            "timeout", "-s", "KILL", "eval", "bash", "sh", "-ec", "-c", "xargs", "FOO=1", "make",
            "deploy", "npm", "publish", "echo", "ls", "cat", "README.md", ".git/hooks/pre-commit",
            ";", "&&", "||", "|", "&", "(", ")", "$(", "`", "{", "}", "'", "\"", "'git push'",
            "\"curl x\"", "\\", "#", "=", "-", "--",
        ][..]).prop_map(str::to_string),
        1 => "[^\\s]{0,6}",
    ]
}

/// A word that whitespace around it cannot change: no quote left open, no trailing
/// backslash (which would escape the next blank), no newline (a command separator).
fn plain_word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&[
            "git", "push", "remote", "config", "credential.helper", "-c", "-C", ".", "curl",
            "/usr/bin/wget", "sudo", "env", "-u", "HOME", "nice", "-n", "5", "timeout", "-s",
            "KILL", "eval", "bash", "sh", "-ec", "xargs", "FOO=1", "make", "deploy", "npm",
            "publish", "echo", "ls", ";", "&&", "||", "|", "&", "(", ")", "$(", "`",
            "'git push'", "\"curl x\"", "'a  b'", "\"$(wget y)\"",
        ][..]).prop_map(str::to_string),
        1 => "[a-z0-9=./-]{1,6}",
    ]
}

/// Blanks between words: spaces and tabs (a newline would separate commands).
fn blanks() -> impl Strategy<Value = String> {
    "[ \t]{1,4}"
}

fn is_deny(v: &Verdict) -> bool {
    matches!(v, Verdict::Deny(_))
}

proptest! {
    #[test]
    fn any_text_gets_a_verdict(cmd in ".{0,200}") {
        let _ = guard().check(&cmd);
    }

    #[test]
    fn any_shell_like_command_gets_a_verdict(words in prop::collection::vec(word(), 0..24)) {
        let _ = guard().check(&words.join(" "));
    }

    /// A refused command is still refused after another command and `;`, `&&` or `|`, and
    /// before one.
    #[test]
    fn a_refusal_survives_composition(
        words in prop::collection::vec(plain_word(), 1..10),
        other in prop::collection::vec("[a-z0-9./-]{1,6}", 1..4),
        sep in prop::sample::select(&[";", "&&", "||", "|", "\n", "&"][..]),
    ) {
        let cmd = words.join(" ");
        let other = other.join(" ");
        if is_deny(&guard().check(&cmd)) {
            prop_assert!(is_deny(&guard().check(&format!("{other} {sep} {cmd}"))), "{} {} {}", other, sep, cmd);
            prop_assert!(is_deny(&guard().check(&format!("{cmd} {sep} {other}"))), "{} {} {}", cmd, sep, other);
        }
    }

    /// A refused command is still refused when a shell runs it (`bash -c '…'`), however
    /// many shells deep, quoted as a shell quotes it.
    #[test]
    fn a_refusal_survives_running_in_a_shell(
        words in prop::collection::vec(plain_word(), 1..8),
        shells in prop::collection::vec(prop::sample::select(&["bash -c", "sh -c", "bash -ec", "eval", "env sh -c"][..]), 1..6),
    ) {
        let cmd = words.join(" ");
        if is_deny(&guard().check(&cmd)) {
            let mut wrapped = cmd.clone();
            for sh in &shells {
                let quoted = shlex::try_quote(&wrapped).map_err(|e| TestCaseError::reject(e.to_string()))?;
                wrapped = format!("{sh} {quoted}");
                prop_assert!(is_deny(&guard().check(&wrapped)), "{:?} refused, {:?} allowed", cmd, wrapped);
            }
        }
    }

    /// Spacing between words (spaces or tabs, one or more, leading or trailing) does not
    /// change the shell's meaning, so it does not change the verdict.
    #[test]
    fn spacing_does_not_change_the_verdict(
        words in prop::collection::vec((plain_word(), blanks()), 1..12),
        lead in "[ \t]{0,3}",
    ) {
        let single = words.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(" ");
        let spaced = format!("{lead}{}", words.iter().map(|(w, b)| format!("{w}{b}")).collect::<String>());
        prop_assert_eq!(
            is_deny(&guard().check(&single)),
            is_deny(&guard().check(&spaced)),
            "{:?} vs {:?}", single, spaced
        );
    }
}
