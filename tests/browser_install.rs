//! The Installation page in a real headless Chromium: "Check my site" finds the snippet on a
//! page the test serves on 127.0.0.1 (the server runs with `outbound.allow_private`) and
//! reports its absence on another; the WordPress download and the Shopify steps are there —
//! on a laptop (1280 px) and on a phone (375 px), with no sideways overflow and no console
//! errors. Screenshots land in target/screenshots/.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/page.rs"]
mod page;

use browser::Browser;
use common::TestApp;
use page::*;
use std::io::{Read, Write};

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse";

/// Serves `with` at /with and a page without the snippet at /without.
fn serve_site(with: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = if head.starts_with("GET /with ") {
                format!("<!doctype html><html><head>{with}</head><body>shop</body></html>")
            } else {
                "<!doctype html><html><head></head><body>no snippet</body></html>".to_string()
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{}", addr.port())
}

async fn check(b: &Browser, url: &str) -> (String, String, String) {
    type_into(b, "[data-testid=check-url]", url).await;
    js(b, "document.querySelector('[data-testid=check-result]').textContent = ''; return null")
        .await;
    click_centered(b, "[data-testid=check-button]").await;
    wait_js(
        b,
        "document.querySelector('[data-testid=check-status]') !== null",
        "the check's answer",
    )
    .await;
    (
        text(b, "[data-testid=check-found]").await,
        text(b, "[data-testid=check-matches]").await,
        text(b, "[data-testid=check-verdict]").await,
    )
}

async fn the_page_works(width: u64, height: u64) {
    let app = TestApp::spawn_with(&[("SAMPLIT_OUTBOUND__ALLOW_PRIVATE", "true")]);
    let t = app.register(EMAIL);
    let snippet =
        app.get("/api/v1/installations", Some(&t)).body["snippet"].as_str().unwrap().to_string();
    let site = serve_site(snippet);
    let Some(b) = browser::launch(width as u32, height as u32).await else { return };
    b.client.goto(&app.base).await.unwrap();
    viewport(&b, width, height).await;
    el(&b, "[data-testid=login-form]").await;
    type_into(&b, "[data-testid=login-email]", EMAIL).await;
    type_into(&b, "[data-testid=login-password]", PASSWORD).await;
    click(&b, "[data-testid=login-submit]").await;
    wait_js(&b, "location.hash === '#/overview'", "the overview after login").await;
    nav_to(&b, "nav-install").await;
    el(&b, "[data-testid=shopify] ol li").await;
    el(&b, "[data-testid=download-wordpress]").await;
    let shopify = text(&b, "[data-testid=shopify]").await;
    assert!(shopify.contains("theme.liquid") && shopify.contains("/t/"), "{shopify}");

    let (found, matches, verdict) = check(&b, &format!("{site}/with")).await;
    assert_eq!((found.as_str(), matches.as_str()), ("yes", "yes"), "{verdict}");
    assert!(verdict.contains("Snippet found with your site key"), "{verdict}");
    b.screenshot(&format!("install-{width}-found")).await;
    let (found, matches, verdict) = check(&b, &format!("{site}/without")).await;
    assert_eq!((found.as_str(), matches.as_str()), ("no", "no"), "{verdict}");
    assert!(verdict.contains("No Samplit snippet found"), "{verdict}");
    assert_no_overflow(&b, &format!("installation at {width} px")).await;
    b.screenshot(&format!("install-{width}-missing")).await;
    assert_no_console_errors(&b, &format!("on the installation page at {width} px")).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_my_site_on_a_laptop() {
    the_page_works(1280, 900).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_my_site_on_a_phone() {
    the_page_works(375, 812).await;
}
