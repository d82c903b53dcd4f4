//! tracker.js in a real headless Chromium, on a page served from another origin than the
//! Samplit server: no flicker, the variant shows, late elements get theirs, the click
//! conversion reaches the server, a reload shows the same variant.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::TestApp;
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Serves `html` for every request, on its own port (so its own origin).
fn serve_page(html: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let body = html.as_bytes();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    format!("http://localhost:{}", addr.port())
}

/// The probe runs first in <head>: on every animation frame (just before paint) it notes
/// whether any original text is visible. The page adds `.late` 300 ms after load, as a
/// single-page app would.
fn page(snippet: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8">
<script>
window.__painted = [];
(function probe() {{
  for (const el of document.querySelectorAll('#headline, .late')) {{
    if (el.textContent.includes('Original') && getComputedStyle(el).visibility !== 'hidden' && el.getClientRects().length) {{
      window.__painted.push(el.textContent);
    }}
  }}
  requestAnimationFrame(probe);
}})();
</script>
{snippet}
</head><body>
<h1 id="headline">Original headline</h1>
<button id="buy">Buy</button>
<p id="other">Untouched text</p>
<script>setTimeout(function () {{
  var p = document.createElement('p'); p.className = 'late'; p.textContent = 'Original late';
  document.body.appendChild(p);
}}, 300);</script>
</body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_applies_variants_without_flicker_and_converts() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    // Every arm changes the text, so no visitor should ever see "Original".
    let headline = app.running_ab(&t, json!({
        "name": "Headline", "selector": "#headline", "goal": {"type": "click", "selector": "#buy"},
        "variants": [
            {"name": "Control", "is_control": true, "content": {"text": "Alpha headline"}},
            {"name": "B", "content": {"text": "Beta headline", "style": {"color": "rgb(0, 128, 0)"}}}
        ]
    }));
    let late = app.running_ab(&t, json!({
        "name": "Late", "selector": ".late",
        "variants": [{"name": "L1", "content": {"text": "Late one"}}, {"name": "L2", "content": {"text": "Late two"}}]
    }));
    let snippet =
        app.get("/api/v1/installations", Some(&t)).body["snippet"].as_str().unwrap().to_string();
    let site = serve_page(page(&snippet));

    let Some(b) = browser::launch(1280, 900).await else { return };
    let c = &b.client;
    c.goto(&site).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, late_text) = loop {
        let v = c.execute("return [document.querySelector('#headline').textContent, (document.querySelector('.late')||{}).textContent || '']", vec![]).await.unwrap();
        let h = v[0].as_str().unwrap_or("").to_string();
        let l = v[1].as_str().unwrap_or("").to_string();
        if (h.ends_with("headline") && !h.starts_with("Original")) && l.starts_with("Late") {
            break (h, l);
        }
        assert!(Instant::now() < deadline, "variants never applied: {h:?} {l:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text == "Alpha headline" || text == "Beta headline", "{text}");
    assert!(late_text == "Late one" || late_text == "Late two", "{late_text}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let painted = c.execute("return window.__painted", vec![]).await.unwrap();
    assert_eq!(painted, json!([]), "the original text was painted: {painted}");
    let other = c
        .execute("return getComputedStyle(document.querySelector('#other')).visibility", vec![])
        .await
        .unwrap();
    assert_eq!(other, "visible", "only affected elements are hidden");
    if text == "Beta headline" {
        let color = c
            .execute("return getComputedStyle(document.querySelector('#headline')).color", vec![])
            .await
            .unwrap();
        assert_eq!(color, "rgb(0, 128, 0)");
    }
    let ready = c.execute_async("var done = arguments[arguments.length - 1]; samplit.ready(function (a) { done(a.length); });", vec![]).await.unwrap();
    assert_eq!(ready, 2, "samplit.ready gives the assignments");
    b.screenshot("tracker-page").await;

    // The click goal reaches the server.
    c.find(fantoccini::Locator::Css("#buy")).await.unwrap().click().await.unwrap();
    let hid = headline["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = app.get(&format!("/api/v1/analytics/experiments/{hid}"), Some(&t)).body;
        if a["conversions"] == 1 {
            assert_eq!(a["visitors"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "the click conversion never arrived: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A reload shows the same variant (the visitor id is kept) and records no new visitor.
    for _ in 0..2 {
        c.refresh().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h = c
                .execute("return document.querySelector('#headline').textContent", vec![])
                .await
                .unwrap();
            if h != "Original headline" {
                assert_eq!(h, text.as_str(), "same variant after reload");
                break;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let a = app.get(&format!("/api/v1/analytics/experiments/{hid}"), Some(&t)).body;
    assert_eq!(a["visitors"], 1, "reloads are the same visitor");
    let lid = late["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/analytics/experiments/{lid}"), Some(&t)).body["visitors"],
        1
    );
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_reveals_the_page_at_once() {
    // The snippet points at a server that is gone: nothing may stay hidden.
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    app.running_ab(&t, json!({"name": "x", "selector": "#headline",
        "variants": [{"name": "A", "content": {"text": "A"}}, {"name": "B", "content": {"text": "B"}}]}));
    let key = app.site_key(&t);
    let script = app.get(&format!("/t/{key}.js"), None).text;
    drop(app);
    // Serve the per-site script inline (its endpoint now refuses connections).
    let html = page(&format!("<script>{script}</script>"));
    let site = serve_page(html);
    let Some(b) = browser::launch(800, 600).await else { return };
    let c = &b.client;
    let start = Instant::now();
    c.goto(&site).await.unwrap();
    loop {
        let vis = c
            .execute(
                "return getComputedStyle(document.querySelector('#headline')).visibility",
                vec![],
            )
            .await
            .unwrap();
        if vis == "visible" {
            break;
        }
        assert!(start.elapsed() < Duration::from_millis(2500), "the page stayed hidden");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text =
        c.execute("return document.querySelector('#headline').textContent", vec![]).await.unwrap();
    assert_eq!(text, "Original headline");
    b.close().await;
}
