//! The character rule for every name and label a person types and another reads: experiment,
//! element and variant names, goals, the description, user names and emails, API key names.
//! Stored text reaches the admin's terminal (the CLI) and other people's screens, so it may
//! not carry characters that act instead of printing: C0 and C1 controls (ESC starts terminal
//! escape sequences, BEL rings, NUL truncates), DEL, the bidirectional embeddings, overrides
//! and isolates (U+202A–U+202E, U+2066–U+2069, which reorder what follows them on screen:
//! "Trojan Source"), and the line and paragraph separators U+2028 and U+2029.
//!
//! Pure: callers turn the `Invalid` into their own error (a 422 naming the field).

use super::model::Invalid;

/// Whether text may span lines: a description may hold `\n` and `\t`, a name may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    One,
    Many,
}

/// Whether `c` is refused in text of the given kind.
pub fn forbidden(c: char, lines: Lines) -> bool {
    if lines == Lines::Many && matches!(c, '\n' | '\t') {
        return false;
    }
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// The one rule: refuses `text` if it holds a forbidden character, naming `field` and the
/// first such character (by code point, so the message itself prints safely).
pub fn check_text(field: &str, text: &str, lines: Lines) -> Result<(), Invalid> {
    let Some(c) = text.chars().find(|&c| forbidden(c, lines)) else { return Ok(()) };
    let allowed = match lines {
        Lines::One => "",
        Lines::Many => " other than newline and tab",
    };
    Err(Invalid {
        field: field.to_string(),
        message: format!(
            "must not contain control characters{allowed} or bidirectional formatting \
             characters (found U+{:04X})",
            c as u32
        ),
    })
}

/// A one-line name or label.
pub fn check_label(field: &str, text: &str) -> Result<(), Invalid> {
    check_text(field, text, Lines::One)
}

/// The commonest passwords of at least eight characters (from the published breach-corpus
/// top lists), refused whatever their case and surrounding spaces. Shorter ones fail the
/// length rule already.
pub const COMMON_PASSWORDS: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "87654321",
    "11111111",
    "00000000",
    "88888888",
    "123123123",
    "password",
    "password1",
    "password12",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "qwertyuiop",
    "qwertyui",
    "qwerty123",
    "qwerty12345",
    "1qaz2wsx",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "q1w2e3r4",
    "zaq12wsx",
    "asdfghjk",
    "iloveyou",
    "abc12345",
    "abcd1234",
    "aa12345678",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "welcome1",
    "letmein1",
    "changeme",
    "admin123",
    "administrator",
];

/// Why `password` is too weak to accept beyond its length, if it is: only whitespace, or
/// one of `COMMON_PASSWORDS`. The length bounds are the caller's.
pub fn weak_password(password: &str) -> Option<&'static str> {
    let trimmed = password.trim();
    if trimmed.is_empty() {
        return Some("must not be only spaces");
    }
    if COMMON_PASSWORDS.iter().any(|c| c.eq_ignore_ascii_case(trimmed)) {
        return Some("is one of the most common passwords, which are tried first; choose another");
    }
    None
}

/// Whether a configured secret is too predictable to trust: few distinct symbols, a block
/// repeated (`abcabc…`, `0123456789abcdef0123…`), mostly runs (`aaaa`, `abcd`, `1234`), or
/// under about 96 bits by its symbol frequencies (32 random hex characters give ~110,
/// `openssl rand -hex 32` ~240). A length rule alone let `aaaa…` through.
pub fn predictable_secret(secret: &[u8]) -> bool {
    let n = secret.len();
    if n < 16 {
        return true;
    }
    let mut counts = [0usize; 256];
    for &b in secret {
        counts[usize::from(b)] += 1;
    }
    let distinct = counts.iter().filter(|&&c| c > 0).count();
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum::<f64>()
        * n as f64;
    let periodic = (1..=n / 2).any(|p| (p..n).all(|i| secret[i] == secret[i - p]));
    let steps = secret.windows(2).filter(|w| w[0].abs_diff(w[1]) <= 1).count();
    distinct < 8 || bits < 96.0 || periodic || steps * 2 >= n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_named() {
        for p in
            ["        ", "\t\t\t\t\t\t\t\t", "12345678", " PassWord1 ", "QWERTYUIOP", "iloveyou"]
        {
            assert!(weak_password(p).is_some(), "{p:?}");
        }
        assert!(weak_password("        ").unwrap().contains("spaces"));
        assert!(weak_password("12345678").unwrap().contains("common"));
        for p in [
            "correct horse",
            "member pass",
            "a long password",
            "correct horse battery",
            "member password",
            "password two",
            "another long one",
            "demo password 1",
        ] {
            assert_eq!(weak_password(p), None, "{p:?}");
        }
        assert!(COMMON_PASSWORDS.iter().all(|p| p.len() >= 8 && *p == p.to_lowercase()));
    }

    #[test]
    fn labels_refuse_controls_and_bidi_formatting() {
        let refused = [
            "\u{1b}[31mred",
            "bell\u{7}",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}31m",
            "a\nb",
            "a\tb",
            "a\rb",
            "\u{202A}x",
            "\u{202B}x",
            "\u{202C}x",
            "\u{202D}x",
            "evil\u{202E}gpj.exe",
            "\u{2066}x",
            "\u{2067}x",
            "\u{2068}x",
            "\u{2069}x",
            "line\u{2028}sep",
            "para\u{2029}sep",
        ];
        for t in refused {
            let e = check_label("name", t).unwrap_err();
            assert_eq!(e.field, "name", "{t:?}");
            assert!(e.message.contains("U+"), "{}", e.message);
        }
        let e = check_label("name", "x\u{202E}").unwrap_err();
        assert!(e.message.ends_with("(found U+202E)"), "{}", e.message);
        for t in ["Checkout", "Größe", "שלום", "مرحبا", "日本語", "emoji 🎉👩‍💻", "a b-c_d.e", ""]
        {
            assert_eq!(check_label("name", t), Ok(()), "{t:?}");
        }
    }

    #[test]
    fn many_lines_allow_newline_and_tab_only() {
        let ok = "first line\n\tindented\nlast";
        assert_eq!(check_text("description", ok, Lines::Many), Ok(()));
        for t in ["a\rb", "a\u{1b}b", "a\u{7}b", "a\0b", "a\u{202E}b", "a\u{2066}b"] {
            let e = check_text("description", t, Lines::Many).unwrap_err();
            assert_eq!(e.field, "description");
            assert!(e.message.contains("other than newline and tab"), "{}", e.message);
        }
    }

    #[test]
    fn predictable_secrets_are_told_from_random_ones() {
        for weak in [
            "a".repeat(64),
            "ab".repeat(32),
            "0123456789abcdef".repeat(4),
            "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz".to_string(),
            "1234567890123456789012345678901234567890".to_string(),
            "secretsecretsecretsecretsecret12".to_string(),
            "short".to_string(),
        ] {
            assert!(predictable_secret(weak.as_bytes()), "{weak}");
        }
        // What `openssl rand -hex 32` and `-hex 16`, or a password manager, produce.
        assert!(!predictable_secret(b"d2c5e8a1f4b7093c6e9f2a5d8b1c4e7f"));
        assert!(!predictable_secret(
            b"3f9c1b7e5a2d48f0c6e1b9a7d3f5c2e8a1b4d6f8e0c3a5b7d9f1e2c4a6b8d0f3"
        ));
        assert!(!predictable_secret(b"kQ7#vL2pX9mZ4rT8wY1nB6cF3hJ5sD0g"));
    }
}
