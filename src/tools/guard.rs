//! The command guard: every `run` command is checked here before it reaches the sandbox.
//!
//! It refuses what the harness, not the agent, does (`git push`, `git remote`, credential
//! config), network tools, `sudo`/`su`, writes to `.git/hooks`, and the policy's
//! `denied_commands`, and says why. It is a tripwire and an audit point, not the wall: the
//! sandbox has no network and no credentials whatever a command does, and `.git` is
//! read-only inside it. Shell is parsed approximately (segments split on `;`, `&&`, `||`,
//! `|`, `&`, newlines, subshells and substitutions; words by shlex), so a refusal errs
//! towards denying: a denied command only costs the model one turn.

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused, with the reason for the model and the audit log.
    Deny(String),
}

/// Programs that talk to the network.
const NETWORK_TOOLS: &[&str] = &[
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "telnet",
    "ftp", "nmap", "ping", "dig", "nslookup",
];
/// Programs that change identity.
const PRIVILEGE_TOOLS: &[&str] = &["sudo", "su", "doas", "pkexec"];
/// Wrappers whose argument is another command.
const WRAPPERS: &[&str] = &[
    "env", "command", "exec", "nohup", "nice", "time", "xargs", "stdbuf", "setsid", "busybox",
    "chroot", "unshare", "ionice", "taskset", "flock",
];
/// Options of wrappers that take a value (`nice -n 5`, `timeout -s KILL`, `env -u NAME`).
const OPTIONS_WITH_VALUE: &[&str] = &[
    "-n",
    "-s",
    "-k",
    "-u",
    "--signal",
    "--kill-after",
    "--unset",
];
/// Nested `eval`s and `sh -c` scripts checked before the command is refused (each is a
/// recursion, and no real command nests this deep).
const MAX_NESTING: usize = 16;
/// git subcommands that only the harness runs.
const GIT_HARNESS_ONLY: &[(&str, &str)] = &[
    (
        "push",
        "slipway pushes the branch itself after the gates pass",
    ),
    (
        "remote",
        "the clone has no remotes; slipway publishes the branch itself",
    ),
    ("clone", "there is no network in the sandbox"),
    ("fetch", "there is no network in the sandbox"),
    ("pull", "there is no network in the sandbox"),
    ("ls-remote", "there is no network in the sandbox"),
    ("send-email", "there is no network in the sandbox"),
];

/// The guard for one run.
#[derive(Debug, Clone, Default)]
pub struct CommandGuard {
    /// Configured prefixes (whitespace-normalised), e.g. `make deploy`.
    denied: Vec<String>,
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl CommandGuard {
    pub fn new(denied_commands: &[String]) -> Self {
        Self {
            denied: denied_commands
                .iter()
                .map(|d| normalise(d))
                .filter(|d| !d.is_empty())
                .collect(),
        }
    }

    /// Checks a whole shell command.
    pub fn check(&self, command: &str) -> Verdict {
        if command.contains(".git/hooks")
            || command.contains("core.hooksPath")
            || command.contains("core.hookspath")
        {
            return deny(
                "writing git hooks is not allowed: host git never runs them, and .git is read-only in the sandbox",
            );
        }
        for segment in segments(command) {
            if let Verdict::Deny(r) = self.check_segment(&segment, 0) {
                return Verdict::Deny(r);
            }
        }
        Verdict::Allow
    }

    fn check_segment(&self, segment: &str, depth: usize) -> Verdict {
        let words = shlex::split(segment)
            .unwrap_or_else(|| segment.split_whitespace().map(str::to_owned).collect());
        let mut i = 0;
        // Skip `VAR=value` prefixes and wrappers (with `timeout N` and `nice -n N` forms).
        while i < words.len() {
            let w = words[i].as_str();
            let base = w.rsplit('/').next().unwrap_or(w);
            if w.contains('=') && !w.starts_with('-') && !w.starts_with('=') {
                i += 1;
            } else if base == "timeout" || WRAPPERS.contains(&base) {
                let is_timeout = base == "timeout";
                i += 1;
                while i < words.len() {
                    let w = words[i].as_str();
                    if OPTIONS_WITH_VALUE.contains(&w) {
                        i += 2;
                    } else if w.starts_with('-')
                        || (w.contains('=') && !w.starts_with('='))
                        || (is_timeout && w.chars().next().is_some_and(|c| c.is_ascii_digit()))
                    {
                        i += 1;
                    } else {
                        break;
                    }
                }
            } else if base == "eval" {
                // eval's words are a command again. Each `eval` is one level of recursion:
                // thousands of them would overflow the stack, so past a depth no command
                // needs, refuse.
                if depth >= MAX_NESTING {
                    return deny("`eval` nested this deeply is not checked");
                }
                let rest = words[i + 1..].join(" ");
                return segments(&rest)
                    .iter()
                    .map(|s| self.check_segment(s, depth + 1))
                    .find(|v| *v != Verdict::Allow)
                    .unwrap_or(Verdict::Allow);
            } else {
                break;
            }
        }
        let Some(program) = words.get(i) else {
            return Verdict::Allow;
        };
        let rest = &words[i + 1..];
        let base = program.rsplit('/').next().unwrap_or(program);
        // Configured denials compare the program by its base name (`/usr/bin/make` is `make`).
        let joined = normalise(
            &std::iter::once(base)
                .chain(words[i + 1..].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        );
        for d in &self.denied {
            if joined == *d || joined.starts_with(&format!("{d} ")) {
                return deny(&format!("`{d}` is denied by policy (denied_commands)"));
            }
        }
        if PRIVILEGE_TOOLS.contains(&base) {
            return deny(&format!(
                "`{base}` is not allowed: commands run without extra privileges"
            ));
        }
        if NETWORK_TOOLS.contains(&base) {
            return deny(&format!(
                "`{base}` is a network tool: the sandbox has no network"
            ));
        }
        if matches!(base, "sh" | "bash" | "dash" | "zsh") {
            // `-c`, or a short-option cluster holding it (`-ec`, `-xc`).
            if let Some(pos) = rest.iter().position(|w| {
                w == "-c" || (w.starts_with('-') && !w.starts_with("--") && w.contains('c'))
            }) && let Some(script) = rest.get(pos + 1)
            {
                // Unchecked, a script this deep could hide anything (it used to be allowed).
                if depth >= MAX_NESTING {
                    return deny("`sh -c` nested this deeply is not checked");
                }
                for s in segments(script) {
                    if let Verdict::Deny(r) = self.check_segment(&s, depth + 1) {
                        return Verdict::Deny(r);
                    }
                }
            }
            return Verdict::Allow;
        }
        if base == "git" {
            return check_git(rest);
        }
        Verdict::Allow
    }
}

fn deny(reason: &str) -> Verdict {
    Verdict::Deny(format!(
        "refused by policy: {reason}. The sandbox has no network or credentials in any case."
    ))
}

fn check_git(args: &[String]) -> Verdict {
    // Skip global options: `-C dir`, `-c k=v`, `--git-dir=…`, `--no-pager`, …
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-C" | "-c" | "--git-dir" | "--work-tree" | "--namespace" => i += 2,
            a if a.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let global: Vec<&str> = args[..i.min(args.len())]
        .iter()
        .map(String::as_str)
        .collect();
    if global
        .iter()
        .any(|a| a.to_ascii_lowercase().contains("credential"))
    {
        return deny("git credential settings are not allowed");
    }
    if global
        .iter()
        .any(|a| a.to_ascii_lowercase().starts_with("alias."))
    {
        return deny("git aliases on the command line are not allowed (they can hide a push)");
    }
    let Some(sub) = args.get(i) else {
        return Verdict::Allow;
    };
    if let Some((_, why)) = GIT_HARNESS_ONLY.iter().find(|(s, _)| s == sub) {
        return deny(&format!("`git {sub}` is not allowed: {why}"));
    }
    if sub == "config"
        && args[i + 1..].iter().any(|a| {
            a.to_ascii_lowercase().contains("credential")
                || a.contains("url.")
                || a.contains("remote.")
        })
    {
        return deny("`git config` of credentials, remotes or URL rewrites is not allowed");
    }
    if sub == "credential" || sub.starts_with("credential-") {
        return deny("git credential helpers are not allowed");
    }
    Verdict::Allow
}

/// Splits a shell command into simple-command segments (approximate, quote- and
/// backslash-aware).
fn segments(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            // A backslash outside single quotes takes the next character literally, so an
            // escaped quote neither opens nor closes a quote (`sh -c "a \"b\" c"`).
            (None | Some('"'), '\\') => {
                cur.push(c);
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some('"'), '$') if chars.peek() == Some(&'(') => {
                // Command substitution inside double quotes is still a command.
                chars.next();
                out.push(std::mem::take(&mut cur));
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, ';' | '\n' | '|' | '&' | '(' | ')' | '`' | '{' | '}') => {
                out.push(std::mem::take(&mut cur))
            }
            (None, '$') if chars.peek() == Some(&'(') => {
                chars.next();
                out.push(std::mem::take(&mut cur));
            }
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(cmd: &str) -> bool {
        matches!(
            CommandGuard::new(&["make deploy".into()]).check(cmd),
            Verdict::Deny(_)
        )
    }

    #[test]
    fn harness_only_and_network_commands_are_refused() {
        for cmd in [
            "git push origin HEAD",
            "git -C . push",
            "cd src && git push --force",
            "git remote add evil https://example.com/x.git",
            "git config credential.helper store",
            "git -c credential.helper=store status",
            "curl https://example.com",
            "/usr/bin/wget -q http://x",
            "echo hi | nc 10.0.0.1 80",
            "sudo rm -rf /",
            "FOO=1 sudo ls",
            "timeout 5 ssh host",
            "bash -c 'git push'",
            "sh -c \"curl x\"",
            "echo $(curl -s x)",
            "cp evil .git/hooks/pre-commit",
            "make deploy",
            "make  deploy PROD=1",
            "env -i curl x",
            "bash -ec 'git push'",
            "nice -n 5 curl x",
            "timeout -s KILL 5 curl x",
            "env -u HOME curl x",
            "setsid wget x",
            "eval 'git push origin main'",
            "busybox wget x",
            "git -c alias.p=push p",
            "/usr/bin/make deploy",
        ] {
            assert!(denied(cmd), "{cmd} should be denied");
        }
    }

    #[test]
    fn ordinary_work_is_allowed() {
        for cmd in [
            "python3 -m unittest",
            "git status && git diff",
            "git log --oneline -5",
            "cargo test 2>&1 | tail -20",
            "grep -rn 'curl' src/",
            "echo 'git push is done by slipway'",
            "make deployment-docs",
            "ls -la; cat README.md",
            "FOO=bar python3 x.py",
        ] {
            assert!(!denied(cmd), "{cmd} should be allowed");
        }
    }

    #[test]
    fn the_reason_is_told() {
        let Verdict::Deny(r) = CommandGuard::default().check("git push") else {
            panic!()
        };
        assert!(r.contains("slipway pushes the branch itself"), "{r}");
    }

    /// Found while fuzzing: four nested `bash -c` hid a refused command (past depth 3 the
    /// script was allowed unchecked), and so did an escaped quote (`\"`), which ended a
    /// quote for the segment splitter but not for the shell.
    #[test]
    fn a_refused_command_stays_refused_in_nested_shells() {
        let guard = CommandGuard::default();
        // Quoted as the property quotes it (shlex, which escapes with `\"`).
        let wrap = |c: &str| format!("bash -c {}", shlex::try_quote(c).unwrap());
        for cmd in [
            wrap(&wrap(&wrap(&wrap("curl")))),
            wrap(&wrap(&wrap("curl $("))),
        ] {
            assert!(matches!(guard.check(&cmd), Verdict::Deny(_)), "{cmd}");
        }
    }

    /// Found while fuzzing: thousands of nested `eval`s overflowed the stack (an abort that
    /// takes the whole service down). Past a depth they are refused.
    #[test]
    fn deeply_nested_eval_gets_a_verdict() {
        let cmd = format!("{}curl x", "eval ".repeat(5_000));
        assert!(matches!(
            CommandGuard::default().check(&cmd),
            Verdict::Deny(_)
        ));
        let shallow = format!("{}curl x", "eval ".repeat(10));
        assert!(
            matches!(CommandGuard::default().check(&shallow), Verdict::Deny(r) if r.contains("network tool"))
        );
    }
}
