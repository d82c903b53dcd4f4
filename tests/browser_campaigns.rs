//! Campaigns in the dashboard, in a real headless Chromium: the create form makes an email
//! or push campaign (type and channel), the page shows its messages, then waves sent
//! through the API (with opens through their pixels) appear with their recipients per
//! variant beside the results — on a laptop (1280 px) and a phone (375 px), with no
//! sideways overflow and no console errors. Screenshots land in target/screenshots/.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/page.rs"]
mod page;

use browser::Browser;
use common::TestApp;
use page::*;
use serde_json::json;
use std::time::Duration;

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse";

async fn log_in(b: &Browser, app: &TestApp) {
    b.client.goto(&app.base).await.unwrap();
    el(b, "[data-testid=login-form]").await;
    type_into(b, "[data-testid=login-email]", EMAIL).await;
    type_into(b, "[data-testid=login-password]", PASSWORD).await;
    click(b, "[data-testid=login-submit]").await;
    // The home page is the overview; the experiments are one link away.
    wait_js(b, "location.hash === '#/overview'", "the overview after login").await;
    js(b, "location.hash = '#/experiments'; return null").await;
    wait_js(b, "location.hash === '#/experiments' && document.querySelector('[data-testid=create-experiment]')", "the list after login").await;
}

/// Makes a campaign with the create form, starts it, and returns its id.
async fn create_campaign(b: &Browser, name: &str, channel: &str, shot: &str) -> String {
    click(b, "[data-testid=create-experiment]").await;
    el(b, "[data-testid=experiment-form]").await;
    type_into(b, "[data-testid=experiment-name]", name).await;
    click(b, "[data-testid=experiment-type-campaign]").await;
    // The page-only fields go; the channel and the campaign goals come.
    el(b, "[data-testid=channel]").await;
    let page_fields =
        js(b, "return !!document.querySelector('[data-testid=target-url], [data-testid=ab-selector], [data-testid=traffic-range]')")
            .await;
    assert_eq!(page_fields, false, "a campaign has no target URL, selector or traffic share");
    click(b, &format!("[data-testid=channel-{channel}]")).await;
    let goals = js(
        b,
        "return [...document.querySelectorAll('[data-testid=goal-type] option')].map(o => o.value)",
    )
    .await;
    assert_eq!(goals, json!(["open", "click"]));
    type_nth(b, "[data-testid=variant-name]", 0, "Plain").await;
    type_nth(b, "[data-testid=variant-text]", 0, "Our autumn news").await;
    type_nth(b, "[data-testid=variant-html]", 0, "<p>Hello</p>").await;
    type_nth(b, "[data-testid=variant-name]", 1, "Urgent").await;
    type_nth(b, "[data-testid=variant-text]", 1, "Last chance: 20% off").await;
    type_nth(b, "[data-testid=variant-html]", 1, "<p>Hurry</p>").await;
    assert_no_overflow(b, "the campaign form").await;
    b.screenshot(&format!("{shot}-form")).await;
    click(b, "[data-testid=save-experiment]").await;
    wait_js(
        b,
        "document.querySelector('[data-testid=experiment-title] .badge-draft')",
        "the draft page",
    )
    .await;
    let hash = js(b, "return location.hash").await;
    let id = hash.as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let messages = el(b, "[data-testid=definition]").await.text().await.unwrap();
    assert!(
        messages.contains("Last chance: 20% off") && messages.contains("Our autumn news"),
        "{messages}"
    );
    el(b, "[data-testid=waves] [data-testid=empty-state]").await;

    click(b, "[data-testid=start-button]").await;
    el(b, "dialog[open][data-testid=confirm-dialog]").await;
    click(b, "dialog[open] [data-testid=dialog-confirm]").await;
    wait_js(
        b,
        "document.querySelector('[data-testid=experiment-title] .badge-running')",
        "the running badge",
    )
    .await;
    wait_js(b, "!document.querySelector('dialog')", "the dialog to close").await;
    id
}

fn path_of(url: &str) -> String {
    let after = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    after[after.find('/').unwrap_or(after.len())..].to_string()
}

/// Two waves through the API, opening the Urgent messages far more often. Returns each
/// wave's recipients per variant name.
fn send_waves(app: &TestApp, exp: &str) -> Vec<(u64, u64)> {
    let token = app.login(EMAIL, PASSWORD);
    tokio::task::block_in_place(|| {
        let mut counts = vec![];
        for w in 0..2 {
            let ids: Vec<String> = (0..120).map(|i| format!("w{w}-{i}")).collect();
            let r = app.post(
                &format!("/api/v1/experiments/{exp}/waves"),
                Some(&token),
                &json!({"recipients": ids, "links": ["https://shop.example/sale"]}),
            );
            assert_eq!(r.status, 201, "{}", r.text);
            let (mut plain, mut urgent) = (0u64, 0u64);
            for rec in r.body["recipients"].as_array().unwrap() {
                let urgent_one = rec["variant_name"] == "Urgent";
                let n = if urgent_one { &mut urgent } else { &mut plain };
                *n += 1;
                if (urgent_one && *n % 10 < 6) || (!urgent_one && *n % 10 == 1) {
                    let open = app.get(&path_of(rec["open_url"].as_str().unwrap()), None);
                    assert_eq!(open.status, 200);
                }
            }
            counts.push((plain, urgent));
            // Let the weights refresh before the next wave.
            std::thread::sleep(Duration::from_millis(150));
        }
        counts
    })
}

async fn check_waves(b: &Browser, counts: &[(u64, u64)]) {
    click(b, "[data-testid=refresh-results]").await;
    wait_js(b, "document.querySelectorAll('[data-testid=wave-row]').length === 2", "two wave rows")
        .await;
    let summary = el(b, "[data-testid=waves-summary]").await.text().await.unwrap();
    assert!(summary.starts_with("2 waves sent, 240 messages"), "{summary}");
    let rows = js(
        b,
        "return [...document.querySelectorAll('[data-testid=wave-row]')].map(r => \
           [...r.children].map(c => c.textContent.trim()))",
    )
    .await;
    let head = js(b, "return [...document.querySelectorAll('[data-testid=waves-table] thead th')].map(c => c.textContent.trim())").await;
    assert_eq!(head, json!(["Wave", "Sent", "Recipients", "Plain", "Urgent"]));
    for (i, (plain, urgent)) in counts.iter().enumerate() {
        let row = rows[i].as_array().unwrap();
        assert_eq!(row[0], format!("#{}", i + 1));
        assert!(row[2].as_str().unwrap().starts_with("120"), "{row:?}");
        assert!(row[3].as_str().unwrap().starts_with(&format!("{plain} ")), "{row:?}");
        assert!(row[4].as_str().unwrap().starts_with(&format!("{urgent} ")), "{row:?}");
    }
    // The results beside them: one row per message, with the opens counted.
    wait_js(
        b,
        "document.querySelectorAll('[data-testid=results-row]').length === 2",
        "two result rows",
    )
    .await;
    let conversions = el(b, "[data-testid=total-conversions]").await.text().await.unwrap();
    assert!(conversions.parse::<u64>().unwrap() > 0, "{conversions}");
}

/// Sends a third wave with the page's form and reads the CSV it offers for the mail tool.
async fn send_wave_from_the_form(b: &Browser) {
    js(
        b,
        "window.__blobs = []; const make = URL.createObjectURL.bind(URL); \
         URL.createObjectURL = (blob) => { window.__blobs.push(blob); return make(blob); }; return null",
    )
    .await;
    type_into(b, "[data-testid=wave-recipients]", "user_id\nform-1\nform-2\nform-3").await;
    type_into(b, "[data-testid=wave-links]", "https://shop.example/sale?a=1").await;
    click_centered(b, "[data-testid=send-wave]").await;
    let sent = wait_js(
        b,
        "document.querySelector('[data-testid=wave-sent]') && document.querySelectorAll('[data-testid=wave-row]').length === 3 && document.querySelector('[data-testid=wave-sent]').textContent",
        "the third wave from the form",
    )
    .await;
    assert!(sent.as_str().unwrap().starts_with("Wave #3: 3 recipients"), "{sent}");
    click_centered(b, "[data-testid=wave-download]").await;
    let script = "const done = arguments[arguments.length - 1]; \
                  window.__blobs[0].text().then(done, (e) => done('error: ' + e));";
    let csv = b.client.execute_async(script, vec![]).await.expect("read the CSV");
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "user_id,variant_name,subject,body,open_url,link_1", "{csv}");
    assert_eq!(lines.len(), 4, "a header and the three recipients: {csv}");
    for (line, user) in lines[1..].iter().zip(["form-1", "form-2", "form-3"]) {
        assert!(line.starts_with(&format!("{user},")), "{line}");
        assert!(line.contains("/o/") && line.contains("/c/"), "own pixel and link: {line}");
    }
    // A refused wave says why at its field and sends nothing. The browser logs the 422
    // answer as a console error; reading the log empties it, so it is checked around it.
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors before the refused wave: {errors:#?}");
    type_into(b, "[data-testid=wave-recipients]", "form-4").await;
    type_into(b, "[data-testid=wave-links]", "javascript:alert(1)").await;
    click_centered(b, "[data-testid=send-wave]").await;
    wait_js(
        b,
        "document.querySelector('[data-testid=wave-form] .field-error')",
        "the link refused",
    )
    .await;
    let rows = js(b, "return document.querySelectorAll('[data-testid=wave-row]').length").await;
    assert_eq!(rows, 3);
    let errors = b.console_errors().await;
    assert!(
        errors.len() == 1 && errors[0].contains("/waves") && errors[0].contains("422"),
        "only the refused wave's answer: {errors:#?}"
    );
}

async fn run(width: u64, height: u64, channel: &str, shot: &str) {
    let app = TestApp::spawn_with(&[("SAMPLIT_ENGINE__REFRESH_INTERVAL_MS", "50")]);
    app.register(EMAIL);
    let Some(b) = browser::launch(width as u32, height as u32).await else { return };
    b.client.goto(&app.base).await.unwrap();
    viewport(&b, width, height).await;
    log_in(&b, &app).await;
    let id = create_campaign(&b, "Autumn newsletter", channel, shot).await;
    let meta = el(&b, "dl.meta").await.text().await.unwrap();
    let label = if channel == "push" { "Push" } else { "Email" };
    assert!(meta.contains(label) && meta.contains("Message opened"), "{meta}");
    let counts = send_waves(&app, &id);
    check_waves(&b, &counts).await;
    send_wave_from_the_form(&b).await;
    assert_no_overflow(&b, "the campaign page").await;
    b.screenshot(&format!("{shot}-page")).await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_created_and_its_waves_shown_on_a_laptop() {
    run(1280, 900, "email", "campaign-1280").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_created_and_its_waves_shown_on_a_phone() {
    run(375, 812, "push", "campaign-375").await;
}
