//! Output capping: keep the head and the tail of a command's output, drop the middle.
//! Failing tests print the useful part at the end, build tools at the start. Terminal control
//! sequences (colours, OSC hyperlinks, cursor moves) are stripped here, where the bytes become
//! text, so neither the model, the store, the PR nor Slack ever sees them.

use crate::untrusted::strip_controls;

/// Collects up to `cap` bytes: the first half as they come, and the last half in a window.
#[derive(Debug)]
pub struct CappedOutput {
    cap: usize,
    head: Vec<u8>,
    tail: Vec<u8>,
    omitted: usize,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(2),
            head: Vec::new(),
            tail: Vec::new(),
            omitted: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        let half = self.cap / 2;
        if self.head.len() < half {
            let take = (half - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.is_empty() {
            return;
        }
        let tail_cap = self.cap - half;
        self.tail.extend_from_slice(bytes);
        // Trim in batches so a flood of small writes stays linear.
        if self.tail.len() > tail_cap * 2 {
            let drop = self.tail.len() - tail_cap;
            self.omitted += drop;
            self.tail.drain(..drop);
        }
    }

    /// True when what was captured is the container runtime's own start failure (runc or
    /// crun "OCI runtime" errors), not the command's output.
    pub fn looks_like_runtime_failure(&self) -> bool {
        let head = String::from_utf8_lossy(&self.head);
        head.contains("OCI runtime") || head.contains("unable to start container process")
    }

    /// True when slipway's own exec wrapper started but could not fork the command (dash:
    /// `slipway-exec: 1: Cannot fork`; coreutils `timeout: fork system call failed`, exit
    /// 125): leftovers of an earlier command hold every pid.
    pub fn wrapper_could_not_fork(&self) -> bool {
        let head = String::from_utf8_lossy(&self.head);
        (head.starts_with("slipway-exec:") && head.contains("Cannot fork"))
            || head.starts_with("timeout: fork system call failed")
    }

    /// The kept text (lossy UTF-8, terminal control sequences stripped) and the number of
    /// bytes dropped.
    pub fn finish(mut self) -> (String, usize) {
        let tail_cap = self.cap - self.cap / 2;
        if self.tail.len() > tail_cap {
            let drop = self.tail.len() - tail_cap;
            self.omitted += drop;
            self.tail.drain(..drop);
        }
        if self.omitted == 0 {
            // Head and tail are contiguous: a sequence split between them is still one.
            self.head.append(&mut self.tail);
            return (strip_controls(&String::from_utf8_lossy(&self.head)), 0);
        }
        // Stripped apart: a sequence cut off by the gap must not swallow the marker.
        let mut text = strip_controls(&String::from_utf8_lossy(&self.head));
        text.push_str(&format!("\n[… {} bytes omitted …]\n", self.omitted));
        text.push_str(&strip_controls(&String::from_utf8_lossy(&self.tail)));
        (text, self.omitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut c = CappedOutput::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.finish(), ("hello world".to_string(), 0));
    }

    #[test]
    fn a_flood_keeps_head_and_tail() {
        let mut c = CappedOutput::new(10);
        c.push(b"HEAD!");
        for _ in 0..10_000 {
            c.push(b"x");
        }
        c.push(b"TAIL!");
        let (text, omitted) = c.finish();
        assert!(text.starts_with("HEAD!"));
        assert!(text.ends_with("TAIL!"));
        assert_eq!(omitted, 10_000);
    }

    #[test]
    fn terminal_control_sequences_are_stripped_but_newlines_and_tabs_kept() {
        let mut c = CappedOutput::new(1000);
        c.push(b"\x1b[31mFAIL\x1b[0m\ttest_x\n");
        // An OSC 8 hyperlink to an attacker's URL, a carriage return, a bell, a clear-line.
        c.push(b"\x1b]8;;https://evil.example\x07link\x1b]8;;\x07\r\n\x07done\x1b[2K");
        // A sequence split across two writes.
        c.push(b"\x1b[");
        c.push(b"1mbold\x1b[m");
        assert_eq!(c.finish().0, "FAIL\ttest_x\nlink\ndonebold");
    }
}
