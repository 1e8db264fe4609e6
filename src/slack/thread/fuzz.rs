//! Property-based tests of thread and command parsing: [`super::strip_mentions`],
//! [`super::parse_command`], [`super::choose_repo`], [`super::links`] and
//! [`super::revision_from_thread`], over Slack message text (mrkdwn with `<@U…>` mentions
//! and `<url|label>` links, as `shared/fixtures/slack/` shows). Cases: `PROPTEST_CASES`
//! (256 by default; `scripts/fuzz.sh` runs many more).

use proptest::prelude::*;

use super::*;

/// Message text: pieces of mrkdwn that interact (mentions, links, repo names, brackets)
/// mixed with any Unicode.
fn mrkdwn() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("<@U0BOT>"),
        Just("<@U0ALICE|alice>"),
        Just("<@"),
        Just("U0BOT"),
        Just(">"),
        Just("<"),
        Just("|"),
        Just(" "),
        Just("\n"),
        Just("in acme/api: "),
        Just("acme/web"),
        Just("src/auth"),
        Just("help"),
        Just("status"),
        Just("cancel"),
        Just("?"),
        Just("<https://example.com/a?b=1|label>"),
        Just("https://"),
        Just("http://x.example/p"),
        Just("?token=abc"),
        Just("hooks.slack.com/services/T0/B0/XXXXXXXX"),
        Just("../"),
        Just("`"),
    ]
    .prop_map(str::to_string);
    prop::collection::vec(prop_oneof![4 => part, 1 => ".{0,6}"], 0..10).prop_map(|p| p.concat())
}

fn repo(name: &str, channels: &[String]) -> RepoConfig {
    RepoConfig {
        name: name.into(),
        channels: channels.to_vec(),
        forge: Default::default(),
        url: None,
        base: "main".into(),
        merge_method: Default::default(),
        delete_branch: true,
        restrict_to_channels: false,
        requesters: vec![],
        image: None,
        setup: None,
    }
}

const WITHHELD: &str = "[a link withheld: it looks like it carries a credential]";

/// A user mention, as Slack writes it (`<@U0BOT>`, `<@U0BOT|name>`).
static MENTION_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"<@[A-Z0-9]+(\|[^>]*)?>").ok());

proptest! {
    /// No `<@U…>` survives, however the mentions nest, and stripping twice changes nothing.
    #[test]
    fn stripped_text_has_no_mentions(text in mrkdwn()) {
        let out = strip_mentions(&text);
        prop_assert!(
            MENTION_RE.as_ref().is_some_and(|re| !re.is_match(&out)),
            "{:?} -> {:?}", text, out
        );
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert_eq!(strip_mentions(&out), out);
    }

    /// A command is the whole message; anything with a word that is not one is a task,
    /// holding the text without mentions.
    #[test]
    fn commands_are_classified_from_the_stripped_text(text in mrkdwn()) {
        let stripped = strip_mentions(&text);
        let word = stripped.trim_matches(|c: char| !c.is_alphanumeric()).to_ascii_lowercase();
        match parse_command(&text) {
            Command::Empty => {
                prop_assert!(!stripped.chars().any(char::is_alphanumeric));
                prop_assert_ne!(stripped, "?");
            }
            Command::Help => prop_assert!(word == "help" || stripped == "?"),
            Command::Status => prop_assert_eq!(word, "status"),
            Command::Cancel => prop_assert!(matches!(word.as_str(), "cancel" | "stop")),
            Command::Task(t) => {
                prop_assert_eq!(t, stripped);
                prop_assert!(!word.is_empty());
            }
        }
    }

    /// A link is an http(s) URL found in the text as written (or the notice that one was
    /// withheld), listed once.
    #[test]
    fn links_are_urls_from_the_text(text in mrkdwn()) {
        let found = links(&text);
        for l in &found {
            if l == WITHHELD {
                continue;
            }
            prop_assert!(l.starts_with("http://") || l.starts_with("https://"), "{:?}", l);
            prop_assert!(text.contains(l.as_str()), "{:?} not in {:?}", l, text);
            prop_assert!(!l.contains(['<', '>', ' ', '\n']), "{:?}", l);
            prop_assert!(!l.to_ascii_lowercase().contains("token="), "{:?}", l);
            prop_assert_eq!(found.iter().filter(|o| *o == l).count(), 1);
        }
    }

    /// The repo chosen is configured and named, or the channel's default; an unknown one is
    /// an `owner/name`.
    #[test]
    fn the_chosen_repo_is_named_or_the_channels(
        text in mrkdwn(),
        channel in prop::sample::select(&["C0DEV", "C0WEB", "D0DM"][..]),
        web_channels in prop::collection::vec(prop::sample::select(&["C0WEB", "C0DEV"][..]).prop_map(String::from), 0..2),
    ) {
        let repos = vec![repo("acme/api", &[]), repo("acme/web", &web_channels)];
        match choose_repo(&text, channel, &repos) {
            RepoChoice::Named(r) => prop_assert!(
                strip_mentions(&text).to_ascii_lowercase().contains(&r.name),
                "{} not in {:?}", r.name, text
            ),
            RepoChoice::ChannelDefault(r) => prop_assert!(r.channels.iter().any(|c| c == channel)),
            RepoChoice::Unknown(t) => {
                prop_assert_eq!(t.matches('/').count(), 1, "{:?}", t);
                prop_assert!(!t.contains(".."));
                prop_assert!(!repos.iter().any(|r| r.name.eq_ignore_ascii_case(&t)));
            }
            RepoChoice::Missing => prop_assert!(!repos.iter().any(|r| r.channels.iter().any(|c| c == channel))),
        }
    }

    /// Trust is kept apart: a bot's message reaches nothing, an untrusted user's only the
    /// untrusted context (never the links), a trusted user's only the trusted parts.
    #[test]
    fn a_thread_keeps_trusted_untrusted_and_bot_text_apart(
        authors in prop::collection::vec((0usize..4, any::<bool>(), mrkdwn()), 1..8),
        trigger in 0usize..8,
    ) {
        let users = ["U0ALICE", "U0BOB", "U0MALLORY", "U0BOT"];
        let messages: Vec<ThreadMessage> = authors
            .iter()
            .enumerate()
            .map(|(i, (u, from_bot, text))| ThreadMessage {
                user: users[*u].into(),
                // A marker that is in this message only, and a link that is in it only.
                text: format!("{text} mk{i}x https://m{i}.example/p"),
                ts: format!("1.{i}"),
                files: vec![format!("f{i}.txt")],
                from_bot: *from_bot,
            })
            .collect();
        let trigger_ts = format!("1.{trigger}");
        let rev = revision_from_thread(&messages, &trigger_ts, "U0ALICE", &["U0BOB".to_string()]);
        let Some(rev) = rev else {
            prop_assert!(trigger >= messages.len());
            return Ok(());
        };
        prop_assert!(trigger < messages.len());
        for (i, m) in messages.iter().enumerate() {
            let marker = format!("mk{i}x");
            let link = format!("https://m{i}.example/p");
            let file = format!("file: f{i}.txt");
            let in_context = rev.context.iter().any(|c| c.contains(&marker));
            let in_untrusted = rev.untrusted_context.iter().any(|c| c.contains(&marker));
            let in_links = rev.links.contains(&link) || rev.links.contains(&file);
            if m.ts == trigger_ts {
                prop_assert!(rev.instructions.contains(&marker));
                prop_assert!(!in_context && !in_untrusted);
                prop_assert_eq!(rev.author.as_deref(), Some(m.user.as_str()));
                prop_assert_eq!(in_links, !m.from_bot);
            } else if m.from_bot {
                prop_assert!(!in_context && !in_untrusted && !in_links, "bot message {} leaked", i);
            } else if m.user == "U0ALICE" || m.user == "U0BOB" {
                prop_assert!(in_context && !in_untrusted && in_links, "trusted message {}", i);
            } else {
                prop_assert!(!in_context && in_untrusted && !in_links, "untrusted message {}", i);
            }
        }
    }
}
