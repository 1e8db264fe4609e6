//! Bounded text: a string cut to a number of characters, or to a number of bytes with a
//! note saying so. A leaf module (it imports nothing from the crate), so any module may use
//! it; `crate::task` re-exports both.

/// The first `max` characters of `s` (not bytes: never splits a UTF-8 sequence).
pub fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `s` cut to at most `cap` bytes on a character boundary, with a note saying so.
pub fn cap_bytes(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_string();
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[result capped at {cap} bytes of {}]",
        &s[..end],
        s.len()
    )
}
