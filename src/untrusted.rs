//! Making untrusted text inert where it is shown. Test runners, the agent and thread users
//! write text that slipway puts into trusted places: the model's context, the PR body, Slack
//! messages, a terminal. Each place has its own markup, and each function here turns text
//! into plain text for one of them:
//!
//! - [`strip_controls`]: terminal control sequences (CSI, OSC, DCS, other C0/C1 controls)
//!   out, for everything; applied where command output becomes text, and again by the
//!   renderers below.
//! - [`mrkdwn`]: Slack mrkdwn, escaped as Slack documents (`&`, `<`, `>`), so `<!channel>`,
//!   `<@U…>` and `<https://…|label>` in tool output stay text.
//! - [`markdown_block`]: a whole untrusted Markdown document (the agent's summary) as a
//!   fenced code block that nothing inside it can close: no image loads, no HTML, no links.
//! - [`markdown_inline`] and [`markdown_code`]: untrusted text in a line of the PR body (a
//!   gate's detail, a reason, a tool name).
//!
//! Owns only these pure string functions. It must not depend on any other module of the
//! crate (everything else depends on it), and must not decide what is trusted: callers do.

/// Text with terminal control sequences removed. Newlines and tabs stay; every other control
/// character (C0 such as `\r`, BEL, backspace; DEL; C1) and every escape sequence (CSI colours
/// and cursor moves, OSC titles and hyperlinks, DCS, SOS/PM/APC strings) is dropped.
///
/// The parsing is `vte`'s (the parser of the Alacritty terminal), so a sequence is removed
/// whole, by the rules a terminal uses, instead of by a pattern that misses some forms. A
/// sequence left unfinished at the end of `text` is dropped too.
pub fn strip_controls(text: &str) -> String {
    // Most output has no control character at all: no parser, no copy.
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_string();
    }
    let mut kept = Printable(String::with_capacity(text.len()));
    vte::Parser::new().advance(&mut kept, text.as_bytes());
    kept.0
}

/// Collects what a terminal would print, plus newlines and tabs.
struct Printable(String);

impl vte::Perform for Printable {
    fn print(&mut self, c: char) {
        // vte prints C1 controls (U+0080..U+009F) and DEL that arrive as UTF-8; a terminal
        // could still act on them.
        if !c.is_control() {
            self.0.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        if byte == b'\n' || byte == b'\t' {
            self.0.push(char::from(byte));
        }
    }
}

/// Text for Slack mrkdwn that shows as written: control sequences stripped, then `&`, `<` and
/// `>` escaped, as Slack's formatting reference asks for text that is not meant as markup
/// (<https://api.slack.com/reference/surfaces/formatting#escaping>). `*`, `_` and backticks
/// are left alone: at worst they change emphasis, they cannot notify or link.
pub fn mrkdwn(text: &str) -> String {
    strip_controls(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The longest run of `ch` in `text`.
fn longest_run(text: &str, ch: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == ch { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// An untrusted Markdown document as a fenced `text` block: shown verbatim, never rendered.
/// The fence is longer than any backtick run in the text (at least three), so no line of
/// it can close the block; inside a code block, images, HTML and links are inert.
pub fn markdown_block(text: &str) -> String {
    let text = strip_controls(text);
    let text = text.trim_matches('\n').trim_end();
    let fence = "`".repeat((longest_run(text, '`') + 1).max(3));
    format!("{fence}text\n{text}\n{fence}\n")
}

/// `text` as one inline code span: a fence longer than its longest backtick run, padded
/// with spaces when it starts or ends with a backtick (CommonMark strips one of each).
pub fn markdown_code(text: &str) -> String {
    let text = strip_controls(text).replace('\n', " ");
    let fence = "`".repeat(longest_run(&text, '`') + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Escapes every character that can start inline Markdown or HTML in GitHub's renderer:
/// emphasis and strikethrough (`*`, `_`, `~`), images and links (`!`, `[`, `]`), raw HTML and
/// autolinks (`<`, `>`, `&` as entities), math (`$`), table cells (`|`) and escapes (`\`).
/// The `:` of a bare `scheme://` is escaped too: GFM's extended autolinks do not recognise
/// `https\://…`, so an attacker's URL stays text instead of becoming a link. Likewise the
/// `.` of `www.` (GFM's `www.` autolink), and `@` is followed by a word joiner (U+2060), so
/// neither `@user`/`@org/team` mentions (which notify on GitHub) nor e-mail autolinks form.
fn escape_text(text: &str, out: &mut String) {
    for (i, c) in text.char_indices() {
        match c {
            ':' if text[i + 1..].starts_with("//") => out.push_str("\\:"),
            '.' if text[..i].ends_with("www") => out.push_str("\\."),
            '@' => out.push_str("@\u{2060}"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '*' | '_' | '~' | '!' | '[' | ']' | '$' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

/// Untrusted text for one line of Markdown (a table cell with `table`, a list item without):
/// on one line, with its backtick-delimited parts as code spans (gate details quote commands
/// that way) and everything else escaped (`escape_text`). Code spans are inert in
/// Markdown; in a table `|` is escaped inside them too (GitHub's table rule).
pub fn markdown_inline(text: &str, table: bool) -> String {
    let text = strip_controls(text).replace(['\n', '\r'], " ");
    let parts: Vec<&str> = text.split('`').collect();
    let mut out = String::with_capacity(text.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        let in_code = i % 2 == 1 && i + 1 < parts.len();
        if in_code && !part.is_empty() {
            out.push('`');
            if table {
                out.push_str(&part.replace('|', "\\|"));
            } else {
                out.push_str(part);
            }
            out.push('`');
        } else {
            if i % 2 == 1 {
                // An empty pair, or the last backtick with no partner: shown as written.
                out.push_str(if in_code { "\\`\\`" } else { "\\`" });
            }
            escape_text(part, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_www_or_email_autolinks_stay_text_on_github() {
        let md = markdown_inline(
            "ping @acme/security-team, see www.evil.example or a@b.example",
            false,
        );
        assert!(!md.contains("@acme"), "{md}");
        assert!(md.contains("@\u{2060}acme/security-team"), "{md}");
        assert!(md.contains("www\\.evil.example"), "{md}");
        assert!(!md.contains("a@b.example"), "{md}");
    }

    #[test]
    fn control_sequences_go_and_text_newlines_and_tabs_stay() {
        assert_eq!(strip_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            strip_controls("\x1b[1;31mred\x1b[0m \x1b]0;title\x07\x1bP1$r\x1b\\ok\r\n\u{9b}31m"),
            "red ok\n31m"
        );
        assert_eq!(strip_controls("ünï\x7fcode 🚀\x1b["), "ünïcode 🚀");
    }

    #[test]
    fn mrkdwn_keeps_text_text() {
        assert_eq!(
            mrkdwn("<!here> & <@U1> <https://e|x>"),
            "&lt;!here&gt; &amp; &lt;@U1&gt; &lt;https://e|x&gt;"
        );
        assert_eq!(mrkdwn("`cargo test` *ok*"), "`cargo test` *ok*");
    }

    #[test]
    fn a_fence_outlasts_every_backtick_run() {
        assert_eq!(markdown_block("a `b`"), "```text\na `b`\n```\n");
        assert_eq!(
            markdown_block("x\n`````\ny"),
            "``````text\nx\n`````\ny\n``````\n"
        );
        assert_eq!(markdown_code("a``b"), "```a``b```");
        assert_eq!(markdown_code("`x"), "`` `x ``");
    }

    #[test]
    fn inline_text_keeps_code_spans_and_escapes_the_rest() {
        assert_eq!(
            markdown_inline("`a|b` failed: ![](https://x/?d=1) <b>|", true),
            "`a\\|b` failed: \\!\\[\\](https\\://x/?d=1) &lt;b&gt;\\|"
        );
        assert_eq!(markdown_inline("`a|b` ok", false), "`a|b` ok");
        assert_eq!(
            markdown_inline("odd ` tick\nnext", false),
            "odd \\` tick next"
        );
        assert_eq!(markdown_inline("empty `` pair", false), "empty \\`\\` pair");
    }
}
