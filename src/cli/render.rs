//! How the CLI shows answers: tables, JSON, and the one rule for stored text. Names, emails
//! and goals are whatever someone typed into the API, so before they reach a terminal their
//! control characters (which can move the cursor, retitle the window or hide text) and bidi
//! overrides (which can make text read differently from what it is) are escaped.

use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;

/// True for the characters a terminal must not receive raw: C0 and C1 controls (with DEL)
/// and the bidi embeddings, overrides and isolates.
fn unsafe_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` fit for a terminal: unsafe characters as `\n`, `\t`, `\r` or `\u{…}`.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// As `safe`, for an optional text (`-` when there is none).
pub fn safe_opt(text: Option<&str>) -> String {
    text.map_or_else(|| "-".into(), |t| safe(t).into_owned())
}

/// A serde enum's word (`multi_element`, `adaptive`, ...).
pub fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Pretty JSON. serde_json escapes C0 controls inside strings already (the newlines left
/// are the layout's); DEL, C1 controls and bidi overrides can only stand inside strings,
/// so they become `\uXXXX` escapes: the same JSON value.
pub fn json_text<T: Serialize>(v: &T) -> String {
    let raw = |c: char| c >= '\u{7f}' && unsafe_char(c);
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    if !text.chars().any(raw) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if raw(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

pub fn print_json<T: Serialize>(v: &T) {
    println!("{}", json_text(v));
}

/// Columns padded to their widest cell; the cells are already `safe`.
pub fn table(rows: &[Vec<String>]) {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// A header row from string literals.
pub fn header(cols: &[&str]) -> Vec<String> {
    cols.iter().map(|h| h.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_escaped_for_the_terminal() {
        assert!(matches!(safe("Ana Lima <ana@example.com>"), Cow::Borrowed(_)));
        assert_eq!(safe("naïve — ok ✓"), "naïve — ok ✓");
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(safe("line\nnext\ttab\r"), "line\\nnext\\ttab\\r");
        assert_eq!(safe("\u{7f}\u{85}\u{9b}"), "\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(safe("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(safe("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(safe("\0"), "\\u{0}");
        assert_eq!(safe_opt(None), "-");
    }

    #[test]
    fn json_keeps_its_value_but_not_raw_controls() {
        let v = serde_json::json!({"name": "x\u{9b}y\u{202e}z\u{1b}"});
        let text = json_text(&v);
        assert!(!text.chars().any(|c| unsafe_char(c) && c != '\n'), "{text:?}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
