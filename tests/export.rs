//! The XLSX export over the real binary: the workbook unzips, its sheets hold what the CSV
//! holds, and errors come back as JSON before any byte of a file.

mod common;

use common::xlsx_read::Book;
use common::{TestApp, ab_body};
use serde_json::json;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn xlsx_export_has_an_assignments_and_a_summary_sheet() {
    let app = TestApp::spawn_with(&[("SAMPLIT_AUTH__OPEN_REGISTRATION", "true")]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("workbook"))["id"].as_str().unwrap().to_string();
    // One id that XML must escape and CSV must quote.
    let mut users: Vec<String> = (0..49).map(|i| format!("visitor-{i}")).collect();
    users.push(r#"<b>&"co", ltd"#.to_string());
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(&t),
        &json!({"site_key": sk, "experiment_id": id, "user_ids": users}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let converted: Vec<&String> = users.iter().step_by(4).collect();
    for u in &converted {
        let r = app.post(
            "/api/v1/tracker/convert",
            None,
            &json!({"site_key": sk, "experiment_id": id, "user_id": u, "value": 2.5}),
        );
        assert_eq!(r.body["recorded"], true, "{}", r.text);
    }

    let path = format!("/api/v1/experiments/{id}/export?format=xlsx");
    let (status, headers, bytes) = app.get_bytes(&path, &t, &[("accept-encoding", "gzip")]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(header(&headers, "content-type"), Some(XLSX));
    assert_eq!(
        header(&headers, "content-disposition"),
        Some(format!("attachment; filename=\"experiment-{id}.xlsx\"").as_str())
    );
    assert_eq!(header(&headers, "content-encoding"), None, "an xlsx is not gzipped again");
    assert!(bytes.starts_with(b"PK\x03\x04"));

    let book = Book::parse(&bytes).expect("a valid workbook");
    assert_eq!(book.sheet_names(), ["assignments", "summary"]);
    let rows = book.rows("assignments");
    assert_eq!(rows.len(), 1 + users.len(), "a header and one row per assignment");

    // The same columns as the CSV, in the same order.
    let csv = app.get(&format!("/api/v1/experiments/{id}/export?format=csv"), Some(&t));
    assert_eq!(csv.status, 200);
    let csv_header: Vec<&str> = csv.text.lines().next().unwrap().split(',').collect();
    assert_eq!(rows[0], csv_header);
    let col = |name: &str| rows[0].iter().position(|h| h == name).expect(name);

    let mut exported: Vec<&str> = rows[1..].iter().map(|r| r[col("user_id")].as_str()).collect();
    exported.sort_unstable();
    let mut expected: Vec<&str> = users.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(exported, expected, "every visitor once, the odd id intact");

    let conv = col("converted");
    let yes: Vec<&Vec<String>> = rows[1..].iter().filter(|r| r[conv] == "true").collect();
    assert_eq!(yes.len(), converted.len());
    assert_eq!(rows[1..].iter().filter(|r| r[conv] == "false").count(), 50 - converted.len());
    assert!(yes.iter().all(|r| r[col("value")] == "2.5"));
    assert!(yes.iter().all(|r| r[col("converted_at")].parse::<f64>().is_ok_and(|d| d > 45_000.0)));

    // Timestamps are date cells: a serial number with the date-time style.
    let xml = book.sheet_xml("assignments");
    let at = col("assigned_at");
    let serial: f64 = rows[1][at].parse().expect("assigned_at is a number");
    assert!(serial > 45_000.0, "{serial}: a date after 2023");
    assert!(xml.contains(r#"s="1"><v>"#));
    assert!(book.part("xl/styles.xml").contains("yyyy-mm-dd hh:mm:ss"));
    assert!(xml.contains("&lt;b&gt;&amp;&quot;co&quot;, ltd"), "the odd id is escaped");

    let summary = book.rows("summary");
    assert_eq!(summary.len(), 3, "a header and one row per arm");
    assert_eq!(summary[0][..4], ["arm_id", "arm", "allocations", "conversions"]);
    let total = |c: usize| summary[1..].iter().map(|r| r[c].parse::<u64>().unwrap()).sum::<u64>();
    assert_eq!(total(2), 50);
    assert_eq!(total(3), converted.len() as u64);
    let csv_summary =
        app.get(&format!("/api/v1/experiments/{id}/export?format=csv&part=summary"), Some(&t));
    assert_eq!(csv_summary.text.lines().next().unwrap().split(',').collect::<Vec<_>>(), summary[0]);

    // part=summary: a workbook with the summary sheet alone.
    let (status, headers, bytes) = app.get_bytes(&format!("{path}&part=summary"), &t, &[]);
    assert_eq!(status, 200);
    assert!(header(&headers, "content-disposition").unwrap().contains("-summary.xlsx"));
    let only = Book::parse(&bytes).expect("a valid workbook");
    assert_eq!(only.sheet_names(), ["summary"]);
    assert_eq!(only.rows("summary"), summary);
}

#[test]
fn xlsx_export_errors_are_json() {
    let app = TestApp::spawn_with(&[("SAMPLIT_AUTH__OPEN_REGISTRATION", "true")]);
    let t = app.register("a@example.com");
    let id = app.running_ab(&t, ab_body("mine"))["id"].as_str().unwrap().to_string();
    let other = app.register("b@example.com");

    let r = app.get(&format!("/api/v1/experiments/{id}/export?format=xlsx"), Some(&other));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.code(), "EXP_NOT_FOUND");
    let r =
        app.get(&format!("/api/v1/experiments/{id}/export?format=xlsx&part=summary"), Some(&other));
    assert_eq!(r.status, 404);

    let r = app.get(&format!("/api/v1/experiments/{id}/export?format=pdf"), Some(&t));
    assert_eq!(r.status, 422);
    assert_eq!(r.body["error"]["details"]["field"], "format");

    // An experiment nobody was assigned to still gives a workbook, with headers only.
    let (status, _, bytes) =
        app.get_bytes(&format!("/api/v1/experiments/{id}/export?format=xlsx"), &t, &[]);
    assert_eq!(status, 200);
    let book = Book::parse(&bytes).expect("a valid workbook");
    assert_eq!(book.rows("assignments").len(), 1);
    assert_eq!(book.rows("summary").len(), 3);
}

/// A browser asks for gzip: the streamed CSV must arrive whole through the compression layer
/// (it once panicked when gzip polled the ended stream again, cutting the download short).
#[test]
fn csv_export_arrives_whole_when_gzipped() {
    use std::io::Read;
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("gzipped"))["id"].as_str().unwrap().to_string();
    let users: Vec<String> = (0..3000).map(|i| format!("visitor-{i:05}")).collect();
    let r = app.post(
        "/api/v1/tracker/assign/batch",
        Some(&t),
        &json!({"site_key": sk, "experiment_id": id, "user_ids": users}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let path = format!("/api/v1/experiments/{id}/export?format=csv");
    let (status, headers, bytes) = app.get_bytes(&path, &t, &[("accept-encoding", "gzip")]);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-encoding"), Some("gzip"));
    let mut csv = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice()).read_to_string(&mut csv).expect("whole gzip");
    assert_eq!(csv.lines().count(), 3001, "header and every assignment");
    assert!(csv.contains("visitor-02999,"));
}
