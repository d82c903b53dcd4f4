//! Installation check and integrations against the real server: the check fetches pages a
//! test serves on 127.0.0.1 (so it needs `outbound.allow_private`), and refuses them
//! without it; the WordPress plugin is a valid zip carrying the caller's snippet.

mod common;

use common::TestApp;
use common::xlsx_read::unzip;
use serde_json::json;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serves `pages` (path → HTML; anything else is a 404) on 127.0.0.1 and counts requests.
fn serve(pages: Vec<(&'static str, String)>) -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = match pages.iter().find(|(p, _)| *p == path) {
                Some((_, html)) => ("200 OK", html.clone()),
                None => ("404 Not Found", "<h1>not here</h1>".to_string()),
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://127.0.0.1:{}", addr.port()), hits)
}

fn page(head: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8>{head}<title>t</title></head><body>hi</body></html>"
    )
}

#[test]
fn the_check_finds_the_snippet_and_tells_whose_key_it_carries() {
    let app = TestApp::spawn_with(&[("SAMPLIT_OUTBOUND__ALLOW_PRIVATE", "true")]);
    let t = app.register("owner@example.com");
    let inst = app.get("/api/v1/installations", Some(&t)).body;
    let snippet = inst["snippet"].as_str().unwrap().to_string();
    let key = inst["site_key"].as_str().unwrap().to_string();
    let other = format!(r#"<script src="{}/t/sk_someone_else.js"></script>"#, app.base);
    let alone = format!(r#"<script src="{}/tracker.js" data-site-key="{key}"></script>"#, app.base);
    let (site, _) = serve(vec![
        ("/mine", page(&snippet)),
        ("/alone", page(&alone)),
        ("/other", page(&other)),
        ("/none", page("<script src=\"/app.js\"></script>")),
    ]);
    let check = |path: &str| {
        let r = app.post(
            "/api/v1/installations/verify",
            Some(&t),
            &json!({"url": format!("{site}{path}")}),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.body["url"], format!("{site}{path}"));
        (
            r.body["status_code"].as_u64(),
            r.body["snippet_found"] == true,
            r.body["site_key_matches"] == true,
        )
    };
    assert_eq!(check("/mine"), (Some(200), true, true), "the snippet GET /installations gives");
    assert_eq!(check("/alone"), (Some(200), true, true), "tracker.js with data-site-key");
    assert_eq!(check("/other"), (Some(200), true, false), "another site's key");
    assert_eq!(check("/none"), (Some(200), false, false));
    assert_eq!(check("/missing"), (Some(404), false, false), "an HTTP error is a result");

    // Bad input: 422 naming url; a port nobody listens on: 502 FETCH_FAILED.
    for bad in ["ftp://example.com/", "not a url", "https://user:pw@example.com/"] {
        let r = app.post("/api/v1/installations/verify", Some(&t), &json!({"url": bad}));
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.body["error"]["details"]["field"], "url", "{bad}");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = app.post(
        "/api/v1/installations/verify",
        Some(&t),
        &json!({"url": format!("http://127.0.0.1:{port}/")}),
    );
    assert_eq!((r.status, r.code()), (502, "FETCH_FAILED"), "{}", r.text);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("cannot fetch"), "{}", r.text);
    let r = app.post("/api/v1/installations/verify", None, &json!({"url": site}));
    assert_eq!(r.status, 401);
}

#[test]
fn without_allow_private_a_loopback_page_is_refused_and_never_fetched() {
    let app = TestApp::spawn();
    let t = app.register("owner@example.com");
    let snippet =
        app.get("/api/v1/installations", Some(&t)).body["snippet"].as_str().unwrap().to_string();
    let (site, hits) = serve(vec![("/", page(&snippet))]);
    for url in [format!("{site}/"), site.replace("127.0.0.1", "localhost") + "/"] {
        let r = app.post("/api/v1/installations/verify", Some(&t), &json!({"url": url}));
        assert_eq!(r.status, 422, "{url}: {}", r.text);
        assert_eq!(r.body["error"]["details"]["field"], "url");
        assert!(r.text.contains("allow_private"), "says how to allow it: {}", r.text);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was fetched");
}

#[test]
fn the_wordpress_plugin_is_a_valid_zip_with_the_callers_snippet() {
    let app = TestApp::spawn();
    let t = app.register("owner@example.com");
    let inst = app.get("/api/v1/installations", Some(&t)).body;
    let key = inst["site_key"].as_str().unwrap();
    let (status, headers, bytes) = app.get_bytes("/api/v1/integrations/wordpress.zip", &t, &[]);
    assert_eq!(status, 200);
    let header =
        |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()).unwrap_or("");
    assert_eq!(header("content-type"), "application/zip");
    assert!(header("content-disposition").starts_with("attachment;"), "{headers:?}");
    // `unzip` walks the central directory, checks each local header against it, inflates
    // the data and checks its size and CRC-32 (crc32fast) and the data descriptor.
    let entries = unzip(&bytes).expect("a valid zip");
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["samplit/samplit.php", "samplit/readme.txt"]);
    let php = String::from_utf8(entries[0].1.clone()).unwrap();
    assert!(php.starts_with("<?php\n"), "{php}");
    assert_eq!(php.matches("<?php").count(), 1, "one opening tag");
    assert!(!php.contains("?>"), "no closing tag: nothing after it can leak into pages");
    for field in ["Plugin Name: Samplit", "Description: ", "Version: ", "Author: "] {
        assert!(php.contains(&format!(" * {field}")), "header field {field}: {php}");
    }
    assert!(php.contains("if (!defined('ABSPATH')) exit;"));
    assert!(php.contains("add_action('wp_head', 'samplit_print_snippet', 1);"));
    assert!(php.contains(key) && php.contains(&app.base), "site key and endpoint baked in");
    let snippet = inst["snippet"].as_str().unwrap().replace('\\', "\\\\").replace('\'', "\\'");
    assert!(php.contains(&format!("echo '{snippet}'")), "the snippet as a PHP string: {php}");
    assert_eq!(php.matches('{').count(), php.matches('}').count(), "balanced braces");
    assert_eq!(php.matches('(').count(), php.matches(')').count(), "balanced parentheses");
    // php is not installed on the machines these tests run on, so the checks above stand in
    // for `php -l`; where php is on PATH, it lints the file too.
    if let Ok(out) = std::process::Command::new("php").arg("-v").output()
        && out.status.success()
    {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("samplit.php");
        std::fs::write(&file, &php).unwrap();
        let lint = std::process::Command::new("php").arg("-l").arg(&file).output().unwrap();
        assert!(lint.status.success(), "php -l: {}", String::from_utf8_lossy(&lint.stdout));
    }
    let readme = String::from_utf8(entries[1].1.clone()).unwrap();
    assert!(readme.starts_with("=== Samplit ===") && readme.contains("== Installation =="));
    let (status, _, _) = app.get_bytes("/api/v1/integrations/wordpress.zip", "nope", &[]);
    assert_eq!(status, 401);
}

#[test]
fn shopify_steps_carry_the_snippet_and_say_where_it_goes() {
    let app = TestApp::spawn();
    let t = app.register("owner@example.com");
    let snippet = app.get("/api/v1/installations", Some(&t)).body["snippet"].clone();
    let r = app.get("/api/v1/integrations/shopify", Some(&t));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["snippet"], snippet);
    let steps: Vec<&str> =
        r.body["steps"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
    assert!(steps.iter().any(|s| s.contains("theme.liquid")), "{steps:?}");
    assert!(steps.iter().any(|s| s.contains("right after <head>")), "{steps:?}");
}
