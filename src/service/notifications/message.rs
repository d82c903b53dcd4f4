//! What an email says: subject, plain text and a simple HTML part with the numbers of the
//! moment and a link to the results. Pure: rendered when the event happens, so a retry
//! hours later still reports what was true then.

use uuid::Uuid;

use crate::service::analytics::{Analytics, ArmResult};

#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the email is about.
pub struct Subject<'a> {
    pub event: &'a str,
    pub experiment: &'a str,
    pub analytics: Option<&'a Analytics>,
    /// The variant (or combination) declared the winner at completion.
    pub declared_winner: Option<Uuid>,
    /// The experiment's results page.
    pub link: &'a str,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Subject lines are one line whatever a name holds.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n']).map(str::trim).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn arm_named<'a>(a: &'a Analytics, id: &str) -> Option<&'a ArmResult> {
    a.arms.iter().find(|r| r.arm_id == id || r.variant_ids.iter().any(|v| v.to_string() == id))
}

/// The per-arm table: visitors, conversions, rate, probability of being best, lift.
fn table(a: &Analytics, srm: bool) -> (String, String) {
    let mut text = String::new();
    let mut html = String::from(
        "<table cellpadding=\"6\" style=\"border-collapse:collapse;border:1px solid #ccc\">\
         <tr style=\"background:#f3f3f3\"><th align=\"left\">Arm</th><th>Visitors</th>",
    );
    if srm {
        html.push_str("<th>Expected</th></tr>");
    } else {
        html.push_str(
            "<th>Conversions</th><th>Rate</th><th>Probability best</th><th>Lift vs control</th></tr>",
        );
    }
    for r in &a.arms {
        let lift = r.lift_vs_control.map(pct).unwrap_or_else(|| "-".into());
        if srm {
            text.push_str(&format!(
                "  {}: {} visitors, {:.0} expected\n",
                one_line(&r.name),
                r.allocations,
                r.expected_allocations
            ));
            html.push_str(&format!(
                "<tr><td>{}</td><td align=\"right\">{}</td><td align=\"right\">{:.0}</td></tr>",
                escape(&r.name),
                r.allocations,
                r.expected_allocations
            ));
        } else {
            text.push_str(&format!(
                "  {}: {} visitors, {} conversions ({}), {} probability of being best, lift {}\n",
                one_line(&r.name),
                r.allocations,
                r.conversions,
                pct(r.conversion_rate),
                pct(r.prob_best),
                lift
            ));
            html.push_str(&format!(
                "<tr><td>{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td>\
                 <td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>",
                escape(&r.name),
                r.allocations,
                r.conversions,
                pct(r.conversion_rate),
                pct(r.prob_best),
                escape(&lift)
            ));
        }
    }
    html.push_str("</table>");
    (text, html)
}

fn page(headline: &str, lines: &[String], table_html: &str, link: &str) -> String {
    let mut body = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;color:#222\">\
         <h2 style=\"margin:0 0 12px\">{}</h2>",
        escape(headline)
    );
    for l in lines {
        body.push_str(&format!("<p>{}</p>", escape(l)));
    }
    body.push_str(table_html);
    body.push_str(&format!(
        "<p><a href=\"{0}\">See the results</a></p>\
         <p style=\"color:#777;font-size:12px\">You can turn these emails off on Samplit's \
         Notifications page.</p></body></html>",
        escape(link)
    ));
    body
}

/// The email for an experiment event.
pub fn render(s: &Subject<'_>) -> Rendered {
    let name = one_line(s.experiment);
    let (subject, headline, mut lines, srm) = match s.event {
        "experiment.winner_found" => {
            let winner = s
                .analytics
                .and_then(|a| {
                    let id = a.recommendation.winner_arm_id.as_deref()?;
                    arm_named(a, id)
                })
                .map(|r| one_line(&r.name));
            let subject = match &winner {
                Some(w) => format!("Winner found in \"{name}\": {w}"),
                None => format!("Winner found in \"{name}\""),
            };
            let reason = s.analytics.map(|a| a.recommendation.reason.clone());
            (subject.clone(), subject, reason.into_iter().collect::<Vec<_>>(), false)
        }
        "experiment.srm_detected" => {
            let subject = format!("Sample ratio mismatch in \"{name}\"");
            let p = s.analytics.and_then(|a| a.srm.p_value);
            let line = match p {
                Some(p) => format!(
                    "The visitors are not split as the weights say (chi-square p-value {p:.2e}). \
                     Check the installation before trusting the results: a redirect, a bot \
                     filter or a caching layer may drop visitors of one variant."
                ),
                None => "The visitors are not split as the weights say.".to_string(),
            };
            (subject.clone(), subject, vec![line], true)
        }
        "experiment.completed" => {
            let subject = format!("Experiment \"{name}\" completed");
            let winner = s.declared_winner.and_then(|w| {
                s.analytics.and_then(|a| arm_named(a, &w.to_string())).map(|r| one_line(&r.name))
            });
            let line = match winner {
                Some(w) => format!("It was completed with {w} declared the winner."),
                None => "It was completed without a declared winner.".to_string(),
            };
            (subject.clone(), subject, vec![line], false)
        }
        other => {
            let subject = format!("{other} in \"{name}\"");
            (subject.clone(), subject, vec![], false)
        }
    };
    if let Some(a) = s.analytics {
        lines.push(format!("{} visitors, {} conversions so far.", a.visitors, a.conversions));
    }
    let (table_text, table_html) = match s.analytics {
        Some(a) => table(a, srm),
        None => (String::new(), String::new()),
    };
    let mut text = format!("{headline}\n\n");
    for l in &lines {
        text.push_str(l);
        text.push_str("\n\n");
    }
    if !table_text.is_empty() {
        text.push_str(&table_text);
        text.push('\n');
    }
    text.push_str(&format!(
        "See the results: {}\n\n-- \nYou can turn these emails off on Samplit's Notifications page.\n",
        s.link
    ));
    let html = page(&headline, &lines, &table_html, s.link);
    Rendered { subject, text, html }
}

/// The test email: proof that the settings work.
pub fn test_message(link: &str) -> Rendered {
    let headline = "Samplit can send you email";
    let line = "This is the test email you asked for. Emails about winners, sample ratio \
                mismatches and completed experiments will arrive like this one.";
    Rendered {
        subject: "Samplit test email".into(),
        text: format!("{headline}\n\n{line}\n\nYour dashboard: {link}\n"),
        html: page(headline, &[line.to_string()], "", link),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_html_and_kept_on_one_line_in_subjects() {
        let r = render(&Subject {
            event: "experiment.completed",
            experiment: "<b>Hero</b> &\r\nBcc: x@evil",
            analytics: None,
            declared_winner: None,
            link: "http://h/#/experiments/1",
        });
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'), "{:?}", r.subject);
        assert!(r.html.contains("&lt;b&gt;Hero&lt;/b&gt; &amp;"), "{}", r.html);
        assert!(!r.html.contains("<b>Hero"), "{}", r.html);
        assert!(r.text.contains("http://h/#/experiments/1"));
        assert!(r.html.contains("href=\"http://h/#/experiments/1\""));
    }
}
