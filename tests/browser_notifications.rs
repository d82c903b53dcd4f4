//! The Notifications page in a real headless Chromium: the three switches save as they are
//! flipped (and stay so after a reload), "Send test email" delivers to the test's SMTP
//! server, and a server without SMTP says so and disables the button — on a laptop
//! (1280 px) and on a phone (375 px), with no sideways overflow and no console errors.
//! Screenshots land in target/screenshots/.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/page.rs"]
mod page;

use browser::Browser;
use common::TestApp;
use common::smtp_sink::SmtpSink;
use page::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse";

async fn log_in(b: &Browser, app: &TestApp, width: u64, height: u64) {
    b.client.goto(&app.base).await.unwrap();
    viewport(b, width, height).await;
    el(b, "[data-testid=login-form]").await;
    type_into(b, "[data-testid=login-email]", EMAIL).await;
    type_into(b, "[data-testid=login-password]", PASSWORD).await;
    click(b, "[data-testid=login-submit]").await;
    // The home page is the overview; the experiments are one link away.
    wait_js(b, "location.hash === '#/overview'", "the overview after login").await;
    js(b, "location.hash = '#/experiments'; return null").await;
    wait_js(b, "location.hash === '#/experiments'", "the list after login").await;
}

fn spawn_with_smtp(sink: &SmtpSink) -> TestApp {
    let url = sink.url();
    let app = TestApp::spawn_with(&[
        ("SAMPLIT_NOTIFICATIONS__SMTP_URL", &url),
        ("SAMPLIT_NOTIFICATIONS__FROM", "Samplit <samplit@example.com>"),
    ]);
    app.register(EMAIL);
    app
}

fn prefs(app: &TestApp, token: &str) -> Value {
    app.get("/api/v1/auth/me", Some(token)).body["notifications"].clone()
}

/// The page at one width: flip a switch (saved at once), send the test email (it arrives),
/// and the switch is still off after a reload.
async fn the_page_works(width: u64, height: u64) {
    let sink = SmtpSink::start();
    let app = spawn_with_smtp(&sink);
    let Some(b) = browser::launch(width as u32, height as u32).await else { return };
    log_in(&b, &app, width, height).await;
    nav_to(&b, "nav-notifications").await;
    wait_js(&b, "location.hash === '#/notifications'", "the notifications page").await;
    for key in ["winner_found", "srm_detected", "completed"] {
        let on = wait_js(
            &b,
            &format!("document.querySelector('[data-testid=notify-{key}]')?.checked === true"),
            &format!("{key} shown on"),
        )
        .await;
        assert_eq!(on, true);
    }
    el(&b, "[data-testid=email-log] [data-testid=empty-state]").await;
    assert!(
        js(&b, "return document.querySelector('[data-testid=smtp-off]') === null").await == true,
        "no warning when SMTP is set up"
    );
    b.screenshot(&format!("notifications-{width}")).await;

    click(&b, "[data-testid=notify-completed]").await;
    let t = app.login(EMAIL, PASSWORD);
    let deadline = Instant::now() + WAIT;
    while prefs(&app, &t)["completed"] != false {
        assert!(Instant::now() < deadline, "the switch was not saved: {}", prefs(&app, &t));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        prefs(&app, &t),
        json!({"winner_found": true, "srm_detected": true, "completed": false})
    );

    click(&b, "[data-testid=send-test-email]").await;
    wait_js(
        &b,
        "document.querySelector('[data-testid=test-result]').innerText.includes('Sent to owner@example.com')",
        "the test email's confirmation",
    )
    .await;
    let mails = sink.wait_for(EMAIL, 1, 10);
    assert!(mails[0].decoded().contains("Samplit test email"), "{:?}", mails[0]);
    assert_no_overflow(&b, &format!("notifications at {width} px")).await;
    b.screenshot(&format!("notifications-{width}-sent")).await;

    b.client.refresh().await.unwrap();
    wait_js(
        &b,
        "document.querySelector('[data-testid=notify-completed]')?.checked === false \
         && document.querySelector('[data-testid=notify-winner_found]').checked === true",
        "the saved switches after a reload",
    )
    .await;
    assert_no_overflow(&b, &format!("notifications at {width} px after a reload")).await;
    assert_no_console_errors(&b, &format!("on the notifications page at {width} px")).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_settings_on_a_laptop() {
    the_page_works(1280, 900).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_settings_on_a_phone() {
    the_page_works(375, 812).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_the_page_says_so_and_the_button_is_off() {
    let app = TestApp::spawn();
    app.register(EMAIL);
    let Some(b) = browser::launch(375, 812).await else { return };
    log_in(&b, &app, 375, 812).await;
    nav_to(&b, "nav-notifications").await;
    el(&b, "[data-testid=smtp-off]").await;
    let disabled =
        js(&b, "return document.querySelector('[data-testid=send-test-email]').disabled").await;
    assert_eq!(disabled, true);
    assert_no_overflow(&b, "notifications without SMTP at 375 px").await;
    b.screenshot("notifications-375-no-smtp").await;
    assert_no_console_errors(&b, "on the notifications page without SMTP").await;
    b.close().await;
}
