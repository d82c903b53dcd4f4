//! The owner's pages in a real headless Chromium, at a desktop width (1280 px) and a phone
//! width (375 px): the overview (the home page) with experiments in every status, the audit
//! trail with its verification, webhooks (create one in the form, send a test event that
//! arrives signed at a receiver on 127.0.0.1, read the delivery log) and users (create one,
//! set their password), and what a member sees. No console errors, no sideways overflow.
//! Screenshots land in target/screenshots/.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/page.rs"]
mod page;

use browser::Browser;
use common::{TestApp, ab_body};
use hmac::{Hmac, KeyInit, Mac};
use page::{click_centered as click, *};
use serde_json::json;
use std::time::Duration;

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";

/// The owner's account with experiments in every status and traffic on the running one
/// (B converts at 30 %, the control at 5 %). Returns the admin's token.
fn seed(app: &TestApp) -> String {
    let r = app.post("/api/v1/auth/register", None, &json!({"email": EMAIL, "password": PASSWORD}));
    assert_eq!(r.status, 201, "{}", r.text);
    let t = app.login(EMAIL, PASSWORD);
    let site = app.site_key(&t);
    assert_eq!(app.post("/api/v1/experiments", Some(&t), &ab_body("Draft idea")).status, 201);
    let running = app.running_ab(&t, ab_body("Hero button"));
    let id = running["id"].as_str().unwrap();
    for u in 0..40 {
        let user = format!("v{u}");
        let a = app.assign(&site, id, &user);
        let on_b = a.body["variants"][0]["variant_name"] == "B";
        if (on_b && u % 10 < 3) || (!on_b && u % 20 == 0) {
            app.convert(&site, id, &user);
        }
    }
    let paused = app.running_ab(&t, ab_body("Pricing copy"));
    let pid = paused["id"].as_str().unwrap();
    app.assign(&site, pid, "p1");
    assert_eq!(
        app.post(&format!("/api/v1/experiments/{pid}/pause"), Some(&t), &json!({})).status,
        200
    );
    let done = app.running_ab(&t, ab_body("Old banner"));
    let did = done["id"].as_str().unwrap();
    assert_eq!(
        app.post(&format!("/api/v1/experiments/{did}/complete"), Some(&t), &json!({})).status,
        200
    );
    t
}

async fn log_in(b: &Browser, email: &str, password: &str) {
    el(b, "[data-testid=login-form]").await;
    type_into(b, "[data-testid=login-email]", email).await;
    type_into(b, "[data-testid=login-password]", password).await;
    click(b, "[data-testid=login-submit]").await;
    wait_js(b, "location.hash === '#/overview' && document.querySelector('[data-testid=overview-status], [data-testid=overview-body] [data-testid=empty-state]')", "the overview after login").await;
}

async fn check_overview(b: &Browser, app: &TestApp, token: &str, tag: &str) {
    let o = app.get("/api/v1/overview", Some(token)).body;
    for st in ["draft", "running", "paused", "completed"] {
        let shown =
            text(b, &format!("[data-testid=overview-status-{st}] [data-testid=count]")).await;
        assert_eq!(shown, "1", "{st} count on the overview");
    }
    let traffic = text(b, "[data-testid=overview-traffic-table]").await;
    let visitors = o["visitors"]["last_7_days"].as_u64().unwrap();
    assert_eq!(visitors, 41);
    assert!(traffic.contains("41") && traffic.contains("30 days"), "{traffic}");
    let leaders = text(b, "[data-testid=overview-leaders]").await;
    assert!(leaders.contains("Hero button") && leaders.contains("Pricing copy"), "{leaders}");
    let arm = o["leaders"][0]["arm_name"].as_str().unwrap();
    assert!(leaders.contains(arm), "{leaders} lacks {arm}");
    let extra = text(b, "[data-testid=extra-conversions]").await;
    assert!(extra.contains("conversions"), "{extra}");
    let method = text(b, "[data-testid=gain-method]").await;
    assert!(method.contains("propensity") && method.contains("equal split"), "{method}");
    el(b, "svg[data-testid=chart-overview-days]").await;
    el(b, "svg[data-testid=chart-overview-gain]").await;
    let widest = js(b, "return Math.max(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right))").await;
    let inner = js(b, "return window.innerWidth").await;
    assert!(widest.as_f64().unwrap() <= inner.as_f64().unwrap(), "charts fit: {widest} > {inner}");
    assert_no_overflow(b, &format!("overview at {tag}")).await;
    b.screenshot(&format!("admin-{tag}-overview")).await;
}

async fn check_audit(b: &Browser, tag: &str) {
    nav_to(b, "nav-audit").await;
    let v = text(b, "[data-testid=audit-verified]").await;
    assert!(v.contains("verified"), "{v}");
    let rows = text(b, "[data-testid=audit-table]").await;
    assert!(rows.contains("experiment.created") && rows.contains("experiment.started"), "{rows}");
    click(b, "[data-testid=audit-verify-all]").await;
    wait_js(b, "(document.querySelector('[data-testid=audit-verified]') || {}).innerText?.startsWith('Every account')", "the all-chains verdict").await;
    assert_no_overflow(b, &format!("audit at {tag}")).await;
    b.screenshot(&format!("admin-{tag}-audit")).await;
}

async fn check_webhooks(b: &Browser, tag: &str) {
    nav_to(b, "nav-webhooks").await;
    el(b, "[data-testid=webhook-form]").await;
    let (url, got) = common::http_request::receiver();
    type_into(b, "[data-testid=webhook-url]", &url).await;
    click(b, "[data-testid=create-webhook]").await;
    let secret = text(b, "[data-testid=webhook-secret]").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    wait_js(b, &format!("[...document.querySelectorAll('[data-testid=webhook-row]')].some(r => r.innerText.includes({url:?}))"), "the webhook in the list").await;
    click(b, "[data-testid=test-webhook]").await;
    let req = tokio::task::block_in_place(|| got.recv_timeout(Duration::from_secs(20)))
        .expect("the test event reaches the receiver");
    assert_eq!(req.header("x-samplit-event"), "webhook.test");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&req.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(req.header("x-samplit-signature"), want, "signed with the secret the page showed");
    wait_js(b, "document.querySelector('[data-testid=delivery-row][data-event=\"webhook.test\"][data-state=delivered]')", "the delivered test event in the log").await;
    let log = text(b, "[data-testid=deliveries-table]").await;
    assert!(log.contains("HTTP 200"), "{log}");
    assert_no_overflow(b, &format!("webhooks at {tag}")).await;
    b.screenshot(&format!("admin-{tag}-webhooks")).await;
}

async fn check_users(b: &Browser, app: &TestApp, tag: &str) -> String {
    nav_to(b, "nav-users").await;
    el(b, "[data-testid=user-form]").await;
    let email = format!("member-{tag}@example.com");
    type_into(b, "[data-testid=user-email]", &email).await;
    type_into(b, "[data-testid=user-name]", "Mia Member").await;
    type_into(b, "[data-testid=user-password]", "member password").await;
    click(b, "[data-testid=create-user]").await;
    let row = format!("[data-testid=user-row][data-email={email:?}]");
    let listed = text(b, &row).await;
    assert!(listed.contains("Mia Member") && listed.contains(&email), "{listed}");
    let member = app.login(&email, "member password");
    assert_eq!(app.get("/api/v1/auth/me", Some(&member)).body["role"], "member");

    // Set their password: their session ends, the new password works.
    click(b, &format!("{row} [data-testid=reset-password]")).await;
    type_into(b, "dialog[open] [data-testid=new-password]", "reset by the admin").await;
    click(b, "dialog[open] [data-testid=dialog-confirm]").await;
    wait_js(b, "[...document.querySelectorAll('[data-testid=toast-success]')].some(t => t.innerText.includes('Password set'))", "the password toast").await;
    wait_js(b, "!document.querySelector('dialog')", "the dialog to close").await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&member)).status, 401, "the old token stops");
    app.login(&email, "reset by the admin");
    assert_no_overflow(b, &format!("users at {tag}")).await;
    b.screenshot(&format!("admin-{tag}-users")).await;
    email
}

/// A member: no Users in the menu, the page says it needs an admin, and the audit page
/// shows their own chain only.
async fn check_member(b: &Browser, app: &TestApp, email: &str, tag: &str) {
    nav_to(b, "logout").await;
    log_in(b, email, "reset by the admin").await;
    let nav = js(b, "return !!document.querySelector('[data-testid=nav-users]')").await;
    assert_eq!(nav, false, "members have no Users page in the menu");
    let empty = text(b, "[data-testid=overview-body] [data-testid=empty-state]").await;
    assert!(empty.contains("No experiments yet"), "{empty}");
    b.client.goto(&format!("{}/#/users", app.base)).await.unwrap();
    el(b, "[data-testid=users-forbidden]").await;
    nav_to(b, "nav-audit").await;
    el(b, "[data-testid=audit-verified]").await;
    let rows = text(b, "[data-testid=audit-table]").await;
    assert!(!rows.contains("experiment.created"), "the admin's chain stays hidden: {rows}");
    assert!(rows.contains("user.password_changed"), "{rows}");
    nav_to(b, "nav-webhooks").await;
    el(b, "[data-testid=webhooks-list] [data-testid=empty-state]").await;
    assert_no_overflow(b, &format!("member pages at {tag}")).await;
    b.screenshot(&format!("admin-{tag}-member-audit")).await;
}

async fn tour(width: u64, height: u64) {
    let app = TestApp::spawn_with(&[("SAMPLIT_OUTBOUND__ALLOW_PRIVATE", "true")]);
    let token = seed(&app);
    let Some(b) = browser::launch(width.max(500) as u32, height as u32).await else { return };
    let tag = width.to_string();
    b.client.goto(&app.base).await.unwrap();
    viewport(&b, width, height).await;
    log_in(&b, EMAIL, PASSWORD).await;
    check_overview(&b, &app, &token, &tag).await;
    check_audit(&b, &tag).await;
    check_webhooks(&b, &tag).await;
    let member = check_users(&b, &app, &tag).await;
    // The home page again, from the brand link.
    click(&b, "[data-testid=brand]").await;
    wait_js(
        &b,
        "location.hash === '#/overview' && document.querySelector('[data-testid=overview-status]')",
        "the overview from the brand",
    )
    .await;
    assert_no_console_errors(&b, &format!("on the admin pages at {tag} px")).await;
    check_member(&b, &app, &member, &tag).await;
    assert_no_console_errors(&b, &format!("as a member at {tag} px")).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_work_on_a_desktop() {
    tour(1280, 900).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_pages_work_on_a_phone() {
    tour(375, 812).await;
}
