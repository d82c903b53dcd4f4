//! `samplit campaign wave`: reading a recipients file and writing the wave as CSV for a
//! mail or push tool.

use crate::service::campaigns::WaveAnswer;

/// First-line values that name the id column rather than being an id.
const HEADERS: &[&str] = &["user_id", "id", "email", "recipient", "recipients"];

/// One id per line, or CSV with the id in the first column (quoted or not). Blank lines are
/// skipped; a first line that is a column name is taken as the header.
pub fn read_recipients(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let id = first_field(line.trim_end_matches('\r'));
        let id = id.trim();
        if id.is_empty() || (i == 0 && HEADERS.iter().any(|h| h.eq_ignore_ascii_case(id))) {
            continue;
        }
        out.push(id.to_string());
    }
    out
}

fn first_field(line: &str) -> String {
    let line = line.trim_start();
    let Some(rest) = line.strip_prefix('"') else {
        return line.split(',').next().unwrap_or("").to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => {
                chars.next();
                out.push('"');
            }
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// RFC 4180 quoting. Unlike the exports, no `'` goes before a value that starts like a
/// formula: this file feeds a mail tool, and a subject line such as "-20% today" must
/// reach the recipient as written.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `user_id,variant_name,subject,body,open_url,link_1..link_N`, one row per recipient.
pub fn wave_csv(w: &WaveAnswer) -> String {
    let links = w.recipients.iter().map(|r| r.links.len()).max().unwrap_or(0);
    let mut head = vec!["user_id".to_string(), "variant_name".into(), "subject".into()];
    head.extend(["body".to_string(), "open_url".into()]);
    head.extend((1..=links).map(|i| format!("link_{i}")));
    let mut out = head.join(",");
    out.push('\n');
    for r in &w.recipients {
        let mut row = vec![
            field(&r.user_id),
            field(&r.variant_name),
            field(r.content.text.as_deref().unwrap_or("")),
            field(r.content.html.as_deref().unwrap_or("")),
            field(&r.open_url),
        ];
        row.extend(r.links.iter().map(|l| field(l)));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_one_per_line_or_the_first_csv_column() {
        assert_eq!(read_recipients("a\n\nb\r\n c \n"), vec!["a", "b", "c"]);
        let csv = "email,name\nana@example.com,Ana\n\"bo,b@example.com\",\"B \"\"x\"\"\"\n";
        assert_eq!(read_recipients(csv), vec!["ana@example.com", "bo,b@example.com"]);
        assert_eq!(read_recipients("u1,x\nu2,y"), vec!["u1", "u2"]);
    }

    #[test]
    fn fields_are_quoted_only_when_needed_and_never_prefixed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("-20% today"), "-20% today");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
