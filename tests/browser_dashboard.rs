//! The dashboard end to end in a real headless Chromium, as a new user meets it: the
//! first-run page creates the admin, log out and in, create an experiment with the form,
//! start it, traffic arrives through the tracker API, and the results page shows the arms,
//! the recommendation and the charts, and its data downloads as CSV and Excel — on a laptop
//! (1280 px) and on a phone (390 px), with no horizontal overflow and no console errors.
//! Screenshots land in target/screenshots/.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/page.rs"]
mod page;

use browser::Browser;
use common::TestApp;
use page::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";

/// A screenshot of the whole page: the viewport grows to the page's height, then shrinks back.
async fn full_screenshot(b: &Browser, name: &str) {
    let v = js(
        b,
        "return [window.innerWidth, window.innerHeight, document.documentElement.scrollHeight]",
    )
    .await;
    let (w, h, page) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap(), v[2].as_u64().unwrap());
    if page > h {
        viewport(b, w, page.min(8000)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.screenshot(name).await;
    if page > h {
        viewport(b, w, h).await;
    }
}

/// The first-run page: no user exists, so it offers to create the administrator; doing so
/// signs in and lands on the (empty) experiments list.
async fn first_run(b: &Browser, app: &TestApp, shot: &str) {
    b.client.goto(&app.base).await.unwrap();
    el(b, "[data-testid=setup-form]").await;
    let heading = el(b, "[data-testid=setup-form] h1").await.text().await.unwrap();
    assert_eq!(heading, "Welcome to Samplit");
    b.screenshot(shot).await;
    type_into(b, "[data-testid=register-name]", "Ada Owner").await;
    type_into(b, "[data-testid=register-email]", EMAIL).await;
    type_into(b, "[data-testid=register-password]", PASSWORD).await;
    type_into(b, "[data-testid=register-confirm]", PASSWORD).await;
    click(b, "[data-testid=register-submit]").await;
    // The home page is the overview; with no experiment yet it invites to create one.
    wait_js(
        b,
        "location.hash === '#/overview' && document.querySelector('[data-testid=overview-body] [data-testid=empty-state]')",
        "the empty overview after setup",
    )
    .await;
    nav_to(b, "nav-experiments").await;
    wait_js(
        b,
        "location.hash === '#/experiments' && document.querySelector('[data-testid=empty-state]')",
        "the empty list after setup",
    )
    .await;
    let me = app.get("/api/v1/auth/me", Some(&app.login(EMAIL, PASSWORD))).body;
    assert_eq!(me["role"], "admin", "the first account is the admin: {me}");
    assert_eq!(me["name"], "Ada Owner");
}

async fn log_out_and_in(b: &Browser) {
    nav_to(b, "logout").await;
    el(b, "[data-testid=login-form]").await;
    type_into(b, "[data-testid=login-email]", EMAIL).await;
    type_into(b, "[data-testid=login-password]", PASSWORD).await;
    click(b, "[data-testid=login-submit]").await;
    wait_js(b, "location.hash === '#/overview' && document.querySelector('[data-testid=overview-body] [data-testid=empty-state], [data-testid=overview-status]')", "the overview after login").await;
    nav_to(b, "nav-experiments").await;
    wait_js(b, "location.hash === '#/experiments' && document.querySelector('[data-testid=experiments-body] [data-testid=empty-state], [data-testid=experiments-table]')", "the list after login").await;
}

/// Fills the "New experiment" form for an A/B test and saves the draft; returns its id.
async fn create_ab_experiment(b: &Browser, name: &str, shot: Option<&str>) -> String {
    click(b, "[data-testid=create-experiment]").await;
    el(b, "[data-testid=experiment-form]").await;
    type_into(b, "[data-testid=experiment-name]", name).await;
    type_into(b, "[data-testid=experiment-description]", "Does a friendlier button sell more?")
        .await;
    type_into(b, "[data-testid=goal-value]", "#buy").await;
    type_into(b, "[data-testid=ab-selector]", "#cta").await;
    type_nth(b, "[data-testid=variant-text]", 0, "Buy now").await;
    type_nth(b, "[data-testid=variant-name]", 1, "Friendly").await;
    type_nth(b, "[data-testid=variant-text]", 1, "Get yours today").await;
    if let Some(shot) = shot {
        full_screenshot(b, shot).await;
    }
    click(b, "[data-testid=save-experiment]").await;
    wait_js(
        b,
        "document.querySelector('[data-testid=experiment-title] .badge-draft')",
        "the draft page",
    )
    .await;
    let id = el(b, "[data-testid=experiment-id]").await.text().await.unwrap();
    assert!(js(b, "return location.hash").await.as_str().unwrap().ends_with(&id));
    let title = el(b, "[data-testid=experiment-title]").await.text().await.unwrap();
    assert!(title.contains(name), "{title}");
    id
}

/// Starts the experiment shown with the lifecycle button and its confirmation dialog.
async fn start_experiment(b: &Browser, shot: &str) {
    click(b, "[data-testid=start-button]").await;
    let dialog = el(b, "dialog[open][data-testid=confirm-dialog]").await.text().await.unwrap();
    assert!(dialog.contains("Start the experiment?"), "{dialog}");
    b.screenshot(shot).await;
    click(b, "dialog[open] [data-testid=dialog-confirm]").await;
    wait_js(
        b,
        "document.querySelector('[data-testid=experiment-title] .badge-running')",
        "the running badge",
    )
    .await;
    wait_js(b, "!document.querySelector('dialog')", "the dialog to close").await;
}

/// Sends `n` visitors through the tracker API. Visitor `i` converts when a deterministic
/// number in 0..1000 falls under `per_mille(variant names)`. Returns the conversions.
fn send_traffic(app: &TestApp, exp: &str, n: usize, per_mille: impl Fn(&[String]) -> u64) -> usize {
    let token = app.login(EMAIL, PASSWORD);
    let key = app.site_key(&token);
    tokio::task::block_in_place(|| {
        let mut conversions = 0;
        for i in 0..n {
            let user = format!("visitor-{i}");
            let r = app.assign(&key, exp, &user);
            assert_eq!(r.status, 200, "assign: {}", r.text);
            let names: Vec<String> = r.body["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["variant_name"].as_str().unwrap().to_string())
                .collect();
            assert!(!names.is_empty(), "{}", r.text);
            if (i as u64 * 7919) % 1000 < per_mille(&names) {
                let c = app.convert(&key, exp, &user);
                assert_eq!(c.body["recorded"], true, "convert: {}", c.text);
                conversions += 1;
            }
        }
        conversions
    })
}

/// Refreshes the results and checks the numbers, the table, the recommendation and the charts.
async fn check_results(b: &Browser, arms: &[&str], visitors: usize, conversions: usize) {
    click(b, "[data-testid=refresh-results]").await;
    assert!(visitors < 1000, "no thousands separator to format");
    let want = visitors.to_string();
    wait_js(
        b,
        &format!("document.querySelector('[data-testid=total-visitors]').textContent === {want:?}"),
        "the visitor count",
    )
    .await;
    let total = el(b, "[data-testid=total-conversions]").await.text().await.unwrap();
    assert_eq!(total, conversions.to_string());
    let rows = js(
        b,
        "return [...document.querySelectorAll('[data-testid=results-row]')].map(r => \
           [...r.children].map(c => c.textContent.trim()))",
    )
    .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), arms.len(), "one row per arm: {rows:?}");
    let mut seen = 0;
    for arm in arms {
        let row = rows
            .iter()
            .find(|r| r[0].as_str().unwrap().starts_with(arm))
            .unwrap_or_else(|| panic!("no results row for {arm}: {rows:?}"));
        let n: u64 = row[1].as_str().unwrap().replace(',', "").parse().unwrap();
        assert!(n > 0, "{arm} has visitors: {row:?}");
        seen += n;
        // Rate, interval, P(best) and traffic weight are filled in (numbers, not dashes).
        for col in [3, 4, 5, 8] {
            let cell = row[col].as_str().unwrap();
            assert!(cell.contains('%') && !cell.contains("NaN"), "{arm} column {col}: {row:?}");
        }
    }
    assert_eq!(seen as usize, visitors, "{rows:?}");
    let control = rows.iter().filter(|r| r[0].as_str().unwrap().contains("control")).count();
    assert_eq!(control, 1, "the control is marked: {rows:?}");
    let leader = rows.iter().filter(|r| r[0].as_str().unwrap().contains("leader")).count();
    assert_eq!(leader, 1, "the leader is marked: {rows:?}");

    let rec = el(b, "[data-testid=recommendation]").await.text().await.unwrap();
    let decision =
        js(b, "return document.querySelector('[data-testid=recommendation]').dataset.decision")
            .await;
    assert!(
        ["keep_running", "declare_winner", "stop_no_difference"]
            .contains(&decision.as_str().unwrap()),
        "decision {decision}"
    );
    let reason = el(b, "[data-testid=recommendation-reason]").await.text().await.unwrap();
    assert!(reason.len() > 10, "the recommendation explains itself: {rec}");

    // The charts: one curve per arm in the posterior densities and P(best) over time, one
    // band per arm in the traffic share.
    let n = arms.len().min(10);
    let counts = wait_js(
        b,
        "(() => { const q = (s) => document.querySelectorAll(s).length; \
           const c = [q('svg[data-testid=chart-posterior] path.series'), q('svg[data-testid=chart-prob-best] path.series'), \
                      q('svg[data-testid=chart-traffic] path[data-series]')]; \
           return c.every(x => x > 0) && c; })()",
        "the charts",
    )
    .await;
    assert_eq!(counts, json!([n, n, n]), "curves per chart");
    let sizes = js(
        b,
        "return [...document.querySelectorAll('svg.chart')].map(s => { const r = s.getBoundingClientRect(); \
           return [s.dataset.testid, Math.round(r.width), Math.round(r.height), s.querySelectorAll('text').length]; })",
    )
    .await;
    for s in sizes.as_array().unwrap() {
        assert!(s[1].as_u64().unwrap() >= 200 && s[2].as_u64().unwrap() >= 60, "chart size {s}");
        assert!(s[3].as_u64().unwrap() > 0, "chart without labels {s}");
    }
    // No label collides with its neighbour or sticks out of its chart.
    let clashes = js(
        b,
        "return [...document.querySelectorAll('svg.chart')].flatMap(svg => { \
           const width = svg.getBoundingClientRect().width; const rows = new Map(); const bad = []; \
           for (const t of svg.querySelectorAll('text:not(.axis-label)')) { \
             const r = t.getBBox(); const key = Math.round(r.y); \
             if (!rows.has(key)) rows.set(key, []); rows.get(key).push([r.x, r.x + r.width, t.textContent]); \
             if (r.x < -0.5 || r.x + r.width > width + 0.5) bad.push(svg.dataset.testid + ': ' + t.textContent + ' is cut off'); } \
           for (const row of rows.values()) { row.sort((p, q) => p[0] - q[0]); \
             for (let i = 1; i < row.length; i++) if (row[i][0] < row[i - 1][1] - 0.5) \
               bad.push(svg.dataset.testid + ': ' + row[i - 1][2] + ' overlaps ' + row[i][2]); } \
           return bad; })",
    )
    .await;
    assert_eq!(clashes, json!([]), "chart labels collide");
    let legends = js(b, "return [...document.querySelectorAll('[data-testid=chart-legend]')].map(l => l.textContent)").await;
    for arm in arms.iter().take(n) {
        assert!(
            legends.as_array().unwrap().iter().all(|l| l.as_str().unwrap().contains(arm)),
            "{arm} in every legend: {legends}"
        );
    }
}

/// What a "Download" button produced: the Blob handed to `URL.createObjectURL` (size, type,
/// the first line of its text, its line count, its first two bytes) and the name the
/// temporary `<a download>` gave it. `install_download_spy` must have run on the page.
async fn download_via(b: &Browser, button: &str) -> Value {
    js(b, "window.__samplitBlobs.length = 0; window.__samplitSaves.length = 0; return null").await;
    click(b, &format!("[data-testid=download] [data-testid={button}]")).await;
    wait_js(
        b,
        "window.__samplitSaves.length === 1 && !document.querySelector('[data-testid=download] [aria-busy], [data-testid=download] [aria-disabled]')",
        &format!("the {button} download"),
    )
    .await;
    let script = "const done = arguments[arguments.length - 1]; \
                  const { blob, url } = window.__samplitBlobs[0]; \
                  Promise.all([blob.text(), blob.slice(0, 2).arrayBuffer()]).then(([text, head]) => { \
                    const lines = text.split('\\n').filter(l => l.length > 0); \
                    done({ size: blob.size, type: blob.type, first: lines[0] || '', lines: lines.length, \
                           magic: String.fromCharCode(...new Uint8Array(head)), \
                           name: window.__samplitSaves[0][0], \
                           sameUrl: window.__samplitSaves[0][1] === url }); \
                  }, (e) => done({ error: String(e) }));";
    let v = b.client.execute_async(script, vec![]).await.expect("read the blob");
    assert!(v.get("error").is_none(), "reading the {button} blob: {v}");
    assert_eq!(v["sameUrl"], true, "the link saved the blob's object URL: {v}");
    v
}

/// Wraps `URL.createObjectURL` to keep each Blob (and the URL made for it), and notes every
/// click on an `<a download>` (its name and URL): the page side of a download, which
/// headless Chrome makes hard to watch from outside.
async fn install_download_spy(b: &Browser) {
    js(
        b,
        "if (!window.__samplitBlobs) { \
           window.__samplitBlobs = []; window.__samplitSaves = []; \
           const make = URL.createObjectURL.bind(URL); \
           URL.createObjectURL = (blob) => { const url = make(blob); window.__samplitBlobs.push({ blob, url }); return url; }; \
           document.addEventListener('click', (e) => { const a = e.target.closest && e.target.closest('a[download]'); \
             if (a) window.__samplitSaves.push([a.download, a.href]); }, true); } \
         return null",
    )
    .await;
}

/// The three "Download" buttons of the results: the assignments as CSV (a header and one
/// row per visitor), as a workbook (a zip), and the per-arm summary; each file is also
/// saved by the browser under its own name. A failing export shows the API's error.
async fn check_downloads(b: &Browser, id: &str, visitors: usize, arms: usize) {
    install_download_spy(b).await;
    let label = el(b, "[data-testid=download]").await.text().await.unwrap();
    for want in ["Download", "Assignments (CSV)", "Assignments (Excel)", "Summary (CSV)"] {
        assert!(label.contains(want), "the download control offers {want}: {label}");
    }

    let csv = download_via(b, "download-assignments-csv").await;
    assert_eq!(csv["name"], format!("experiment-{id}.csv"), "{csv}");
    assert!(csv["type"].as_str().unwrap().starts_with("text/csv"), "{csv}");
    let first = csv["first"].as_str().unwrap();
    assert!(
        first.starts_with("user_id,assignment_id,assigned_at,arm_id,arm,"),
        "CSV header: {csv}"
    );
    assert!(first.contains(",converted,"), "CSV header: {csv}");
    assert_eq!(csv["lines"], visitors + 1, "a header and one row per visitor: {csv}");
    wait_saved(b, &format!("experiment-{id}.csv"), csv["size"].as_u64().unwrap()).await;

    let xlsx = download_via(b, "download-assignments-xlsx").await;
    assert_eq!(xlsx["name"], format!("experiment-{id}.xlsx"), "{xlsx}");
    assert_eq!(
        xlsx["type"], "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "{xlsx}"
    );
    assert_eq!(xlsx["magic"], "PK", "a workbook is a zip: {xlsx}");
    assert!(xlsx["size"].as_u64().unwrap() > 1000, "{xlsx}");

    let summary = download_via(b, "download-summary-csv").await;
    assert_eq!(summary["name"], format!("experiment-{id}-summary.csv"), "{summary}");
    assert!(summary["first"].as_str().unwrap().starts_with("arm_id,arm,allocations,"), "{summary}");
    assert_eq!(summary["lines"], arms + 1, "a header and one row per arm: {summary}");

    // While an export runs its button is busy and the others wait; a failing export shows
    // the API's error like every other action, and the control is usable again afterwards.
    js(
        b,
        "const real = window.fetch; window.fetch = (url, init) => { window.fetch = real; \
           return new Promise((resolve) => setTimeout(() => resolve(new Response( \
             JSON.stringify({ error: { code: 'SERVER_BUSY', message: 'The server is busy' } }), \
             { status: 503, headers: { 'Content-Type': 'application/json' } })), 1500)); }; return null",
    )
    .await;
    click(b, "[data-testid=download] [data-testid=download-assignments-csv]").await;
    let busy = wait_js(
        b,
        "(() => { const g = document.querySelector('[data-testid=download]'); \
           const on = g.querySelector('[aria-busy=true]'); \
           return on && [on.dataset.testid, !!on.querySelector('.spinner'), \
             g.querySelectorAll('button[aria-disabled=true]').length, \
             document.querySelector('[data-testid=download-status]').textContent]; })()",
        "the busy download button",
    )
    .await;
    assert_eq!(
        busy,
        json!(["download-assignments-csv", true, 3, "Preparing Assignments (CSV)…"]),
        "busy state"
    );
    let toast = wait_js(
        b,
        "(() => { const t = document.querySelector('[data-testid=toast-error]'); return t && t.textContent; })()",
        "the download error",
    )
    .await;
    let toast = toast.as_str().unwrap();
    assert!(
        toast.contains("Could not download Assignments (CSV)")
            && toast.contains("The server is busy")
            && toast.contains("SERVER_BUSY"),
        "{toast}"
    );
    wait_js(
        b,
        "!document.querySelector('[data-testid=download] [aria-busy], [data-testid=download] [aria-disabled]')",
        "the download control to be usable again",
    )
    .await;
    js(b, "document.querySelectorAll('.toast').forEach(t => t.remove()); return null").await;
}

/// The browser saved `name` (`size` bytes) in its download folder.
async fn wait_saved(b: &Browser, name: &str, size: u64) {
    let path = b.downloads.join(name);
    let deadline = Instant::now() + WAIT;
    loop {
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == size) {
            return;
        }
        if Instant::now() > deadline {
            let seen: Vec<_> = std::fs::read_dir(&b.downloads)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!("{name} ({size} bytes) was not saved; the download folder holds {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_creates_runs_and_judges_an_experiment_on_a_laptop() {
    let app = TestApp::spawn();
    let Some(b) = browser::launch(1280, 900).await else { return };
    let started = Instant::now();

    first_run(&b, &app, "dashboard-1280-first-run").await;
    log_out_and_in(&b).await;
    b.screenshot("dashboard-1280-empty-list").await;

    let id = create_ab_experiment(&b, "Hero button", Some("dashboard-1280-new-experiment")).await;
    // The draft says where it stands before any traffic.
    let hint = el(&b, "[data-testid=results]").await.text().await.unwrap();
    assert!(hint.contains("No visitors yet"), "{hint}");
    let rec =
        js(&b, "return document.querySelectorAll('[data-testid=recommendation]').length").await;
    assert_eq!(rec, 0, "a draft has no recommendation yet");
    start_experiment(&b, "dashboard-1280-start-dialog").await;

    // B ("Friendly") converts at 25 %, the control at 8 %.
    let conversions = send_traffic(&app, &id, 400, |v| if v[0] == "Friendly" { 250 } else { 80 });
    check_results(&b, &["Control", "Friendly"], 400, conversions).await;
    assert_no_overflow(&b, "experiment page at 1280 px").await;
    full_screenshot(&b, "dashboard-1280-results").await;
    check_downloads(&b, &id, 400, 2).await;
    assert_no_console_errors(&b, "after the downloads").await;

    // The list shows it running, with its visitors and leader.
    click(&b, "[data-testid=nav-experiments]").await;
    let row = el(&b, "[data-testid=experiment-row]").await.text().await.unwrap();
    for part in ["Hero button", "A/B test", "Adaptive", "Running", "400", "%"] {
        assert!(row.contains(part), "list row lacks {part}: {row}");
    }
    assert_no_overflow(&b, "list at 1280 px").await;
    b.screenshot("dashboard-1280-list").await;

    // Installation: the snippet to paste, carrying the site key.
    nav_to(&b, "nav-install").await;
    let snippet = el(&b, "[data-testid=snippet]").await.text().await.unwrap();
    let key = el(&b, "[data-testid=site-key]").await.text().await.unwrap();
    assert!(snippet.contains("<script") && snippet.contains(&key), "{snippet} / {key}");
    let token = app.login(EMAIL, PASSWORD);
    assert_eq!(key, app.site_key(&token));
    b.screenshot("dashboard-1280-install").await;

    // API keys: a new key is shown once, listed, and works.
    nav_to(&b, "nav-keys").await;
    el(&b, "[data-testid=key-form]").await;
    type_into(&b, "[data-testid=key-name]", "CI deploy").await;
    click(&b, "[data-testid=create-key]").await;
    let new_key = el(&b, "[data-testid=new-key]").await.text().await.unwrap();
    wait_js(&b, "document.querySelector('[data-testid=key-row]')", "the key in the list").await;
    let listed = el(&b, "[data-testid=keys-table]").await.text().await.unwrap();
    assert!(listed.contains("CI deploy"), "{listed}");
    assert!(!listed.contains(&new_key), "the list never shows the whole key");
    let me = app.get("/api/v1/auth/me", Some(&new_key));
    assert_eq!(me.status, 200, "the new key authenticates: {}", me.text);
    b.screenshot("dashboard-1280-keys").await;

    // Judge: complete the experiment with a winner, from its page.
    b.client.goto(&format!("{}/#/experiments/{id}", app.base)).await.unwrap();
    el(&b, "[data-testid=results-table]").await;
    click(&b, "[data-testid=complete-button]").await;
    el(&b, "dialog[open] [data-testid=winner-select]").await;
    let options = js(&b, "return [...document.querySelectorAll('[data-testid=winner-select] option')].map(o => o.textContent)").await;
    assert_eq!(options.as_array().unwrap().len(), 3, "no winner + both arms: {options}");
    let friendly = js(&b, "const o = [...document.querySelectorAll('[data-testid=winner-select] option')].find(o => o.textContent.startsWith('Friendly')); return o.value").await;
    el(&b, "[data-testid=winner-select]")
        .await
        .select_by_value(friendly.as_str().unwrap())
        .await
        .unwrap();
    click(&b, "dialog[open] [data-testid=dialog-confirm]").await;
    wait_js(
        &b,
        "document.querySelector('[data-testid=experiment-title] .badge-completed')",
        "the completed badge",
    )
    .await;
    let exp = app.get(&format!("/api/v1/experiments/{id}"), Some(&token)).body;
    assert_eq!(exp["status"], "completed", "{exp}");
    assert_eq!(exp["winner_variant_id"], friendly, "the chosen winner is recorded: {exp}");

    assert_no_console_errors(&b, "on the laptop").await;
    b.close().await;
    eprintln!("laptop run took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_creates_runs_and_judges_an_experiment_on_a_phone() {
    let app = TestApp::spawn();
    let Some(b) = browser::launch(390, 844).await else { return };
    let started = Instant::now();
    b.client.goto(&app.base).await.unwrap();
    viewport(&b, 390, 844).await;

    first_run(&b, &app, "dashboard-390-first-run").await;
    assert_no_overflow(&b, "empty list at 390 px").await;
    log_out_and_in(&b).await;

    let id =
        create_ab_experiment(&b, "Hero button on the go", Some("dashboard-390-new-experiment"))
            .await;
    assert_no_overflow(&b, "draft page at 390 px").await;
    start_experiment(&b, "dashboard-390-start-dialog").await;
    let conversions = send_traffic(&app, &id, 400, |v| if v[0] == "Friendly" { 250 } else { 80 });
    check_results(&b, &["Control", "Friendly"], 400, conversions).await;
    // The charts are drawn at the phone's width, not scaled down from a desktop size.
    let widest = js(&b, "return Math.max(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right))").await;
    assert!(widest.as_f64().unwrap() <= 390.0, "charts fit the screen: right edge at {widest}");
    assert_no_overflow(&b, "experiment page at 390 px").await;
    full_screenshot(&b, "dashboard-390-results").await;
    b.screenshot("dashboard-390-results-top").await;

    nav_to(&b, "nav-experiments").await;
    el(&b, "[data-testid=experiment-row]").await;
    assert_no_overflow(&b, "list at 390 px").await;
    b.screenshot("dashboard-390-list").await;

    nav_to(&b, "nav-install").await;
    el(&b, "[data-testid=snippet]").await;
    assert_no_overflow(&b, "installation at 390 px").await;
    b.screenshot("dashboard-390-install").await;

    nav_to(&b, "nav-keys").await;
    type_into(&b, "[data-testid=key-name]", "Phone key").await;
    click(&b, "[data-testid=create-key]").await;
    el(&b, "[data-testid=new-key]").await;
    el(&b, "[data-testid=key-row]").await;
    assert_no_overflow(&b, "API keys at 390 px").await;
    b.screenshot("dashboard-390-keys").await;

    // The open menu, for the record.
    click(&b, "#nav-toggle").await;
    el(&b, "[data-testid=nav-simulator]").await;
    b.screenshot("dashboard-390-menu").await;

    assert_no_console_errors(&b, "on the phone").await;
    b.close().await;
    eprintln!("phone run took {:?}", started.elapsed());
}

/// A multi-element experiment (2 elements × 2 variants) made with the form: the results
/// show the four combinations, the heat map and the main effects, on a laptop and a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_element_experiment_shows_its_heat_map() {
    let app = TestApp::spawn();
    let Some(b) = browser::launch(1280, 900).await else { return };
    first_run(&b, &app, "dashboard-1280-first-run-multi").await;

    click(&b, "[data-testid=create-experiment]").await;
    type_into(&b, "[data-testid=experiment-name]", "Headline × button").await;
    click(&b, "[data-testid=experiment-type-multi_element]").await;
    let elements =
        wait_js(&b, "document.querySelectorAll('[data-testid=element]').length", "the elements")
            .await;
    assert_eq!(elements, 2);
    type_into(&b, "[data-testid=goal-value]", "#buy").await;
    for (i, (name, selector)) in [("Headline", "#headline"), ("Button", "#buy")].iter().enumerate()
    {
        type_nth(&b, "[data-testid=element-name]", i, name).await;
        type_nth(&b, "[data-testid=element-selector]", i, selector).await;
    }
    // Variants are A and B in each element; give the B variants content.
    type_nth(&b, "[data-testid=variant-text]", 1, "A headline that sells").await;
    type_nth(&b, "[data-testid=variant-text]", 3, "Buy it").await;
    let hint = js(
        &b,
        "return document.querySelector('[data-field=elements] > .row-actions .hint').textContent",
    )
    .await;
    assert!(hint.as_str().unwrap().contains("4 combinations"), "{hint}");
    full_screenshot(&b, "dashboard-1280-new-multi").await;
    click(&b, "[data-testid=save-experiment]").await;
    wait_js(
        &b,
        "document.querySelector('[data-testid=experiment-title] .badge-draft')",
        "the draft page",
    )
    .await;
    let id = el(&b, "[data-testid=experiment-id]").await.text().await.unwrap();
    start_experiment(&b, "dashboard-1280-start-dialog-multi").await;

    // The B headline helps, the B button helps a little more.
    let conversions = send_traffic(&app, &id, 400, |v| {
        40 + if v[0] == "B" { 120 } else { 0 } + if v[1] == "B" { 160 } else { 0 }
    });
    check_results(&b, &["A + A", "A + B", "B + A", "B + B"], 400, conversions).await;
    let heat = wait_js(
        &b,
        "document.querySelectorAll('svg[data-testid=chart-heatmap] rect.heat-cell').length",
        "the heat map",
    )
    .await;
    assert_eq!(heat, 4, "a 2 × 2 heat map");
    let labels = js(&b, "return [...document.querySelectorAll('svg[data-testid=chart-heatmap] text.cell-label')].map(t => t.textContent)").await;
    for l in labels.as_array().unwrap() {
        assert!(l.as_str().unwrap().ends_with('%'), "every cell has data: {labels}");
    }
    let effects = js(&b, "return [...document.querySelectorAll('[data-testid=main-effect]')].map(e => e.textContent)").await;
    let effects = effects.as_array().unwrap();
    assert_eq!(effects.len(), 2, "{effects:?}");
    assert!(
        effects[0].as_str().unwrap().contains("Headline")
            && effects[1].as_str().unwrap().contains("Button"),
        "{effects:?}"
    );
    assert_no_overflow(&b, "multi-element results at 1280 px").await;
    full_screenshot(&b, "dashboard-1280-multi-results").await;

    // The same page on a phone: the charts redraw at the new width.
    viewport(&b, 390, 844).await;
    wait_js(
        &b,
        "Math.max(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right)) <= 390",
        "the charts to redraw at 390 px",
    )
    .await;
    assert_no_overflow(&b, "multi-element results at 390 px").await;
    full_screenshot(&b, "dashboard-390-multi-results").await;

    assert_no_console_errors(&b, "with a multi-element experiment").await;
    b.close().await;
}

/// The text of a card's value or sub-line as a number: "+1,234", "−12", "regret 35.2".
fn number_in(text: &str) -> f64 {
    let cleaned: String = text
        .replace('−', "-")
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '-' || *c == '.')
        .collect();
    cleaned.parse().unwrap_or_else(|e| panic!("no number in {text:?}: {e}"))
}

/// The public simulator, signed out: three variants with known true rates, 20,000
/// visitors, a fixed seed. The page shows what adaptive gained over the fixed split (the
/// same numbers the API gives for that seed), the regret of both, and the adaptive traffic
/// share over time with one band per variant — on a laptop and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_can_simulate_adaptive_against_a_fixed_split() {
    let app = TestApp::spawn();
    let Some(b) = browser::launch(1280, 900).await else { return };
    b.client.goto(&format!("{}/#/simulator", app.base)).await.unwrap();
    el(&b, "[data-testid=sim-form]").await;
    let nav = el(&b, "#nav").await.text().await.unwrap();
    assert!(nav.contains("Log in") && !nav.contains("Log out"), "signed out: {nav}");

    // Two variants are there to start with; add a third.
    click(&b, "[data-testid=sim-add-arm]").await;
    let arms =
        wait_js(&b, "document.querySelectorAll('[data-testid=sim-arm]').length", "3 arms").await;
    assert_eq!(arms, 3);
    let setup = [("Control", "5", 0.05), ("Bold", "8", 0.08), ("Calm", "6", 0.06)];
    for (i, (name, rate, _)) in setup.iter().enumerate() {
        type_nth(&b, "[data-testid=sim-arm-name]", i, name).await;
        type_nth(&b, "[data-testid=sim-arm-rate]", i, rate).await;
    }
    type_into(&b, "[data-testid=sim-visitors]", "20000").await;
    type_into(&b, "[data-testid=sim-seed]", "42").await;
    click(&b, "[data-testid=sim-run]").await;
    el(&b, "[data-testid=sim-gained]").await;

    // The same run through the API, for the numbers the page should show.
    let body = json!({
        "arms": setup.iter().map(|(n, _, r)| json!({"name": n, "true_rate": r})).collect::<Vec<_>>(),
        "visitors": 20000, "seed": 42, "strategies": ["adaptive", "fixed"], "repetitions": 1,
    });
    let api = tokio::task::block_in_place(|| app.post("/api/v1/simulate", None, &body));
    assert_eq!(api.status, 200, "{}", api.text);
    let by = |s: &str| {
        api.body["results"].as_array().unwrap().iter().find(|r| r["strategy"] == s).unwrap().clone()
    };
    let (ad, fx) = (by("adaptive"), by("fixed"));
    let gained = ad["conversions"].as_f64().unwrap() - fx["conversions"].as_f64().unwrap();

    let card = |id: &str| {
        format!(
            "(() => {{ const c = document.querySelector('[data-testid={id}]'); \
               return [c.querySelector('.card-value').textContent, (c.querySelector('.card-sub') || {{}}).textContent || '']; }})()"
        )
    };
    let g = js(&b, &format!("return {}", card("sim-gained"))).await;
    let shown = g[0].as_str().unwrap();
    assert!(!shown.contains('—') && !shown.contains("NaN"), "gained: {g}");
    assert_eq!(number_in(shown), gained, "conversions gained by adaptive: {g} vs API {gained}");
    assert!(g[1].as_str().unwrap().contains("vs the fixed split"), "{g}");
    for (id, r) in [("sim-adaptive", &ad), ("sim-fixed", &fx)] {
        let c = js(&b, &format!("return {}", card(id))).await;
        let conv = number_in(c[0].as_str().unwrap());
        assert_eq!(conv, r["conversions"].as_f64().unwrap(), "{id} conversions: {c}");
        let sub = c[1].as_str().unwrap();
        assert!(sub.starts_with("regret "), "{id} shows its regret: {c}");
        let regret = number_in(sub);
        assert!((regret - r["regret"].as_f64().unwrap()).abs() <= 0.051, "{id} regret: {c} vs {r}");
    }
    assert!(
        ad["regret"].as_f64().unwrap() < fx["regret"].as_f64().unwrap(),
        "adaptive regrets less at these rates: {} vs {}",
        ad["regret"],
        fx["regret"]
    );

    // Traffic share over time: one band per variant, named after it; the regret chart has
    // one curve per strategy.
    let bands = wait_js(
        &b,
        "(() => { const p = [...document.querySelectorAll('svg[data-testid=sim-chart] path[data-series]')]; \
           return p.length > 0 && p.map(x => x.dataset.series); })()",
        "the traffic-share chart",
    )
    .await;
    assert_eq!(bands, json!(["Control", "Bold", "Calm"]), "one band per arm");
    let curves = js(&b, "return [...document.querySelectorAll('svg[data-testid=sim-regret-chart] path.series')].map(x => x.dataset.series)").await;
    assert_eq!(curves, json!(["adaptive", "fixed"]));
    let legends = js(&b, "return [...document.querySelectorAll('[data-testid=sim-results] [data-testid=chart-legend]')].map(l => l.textContent)").await;
    assert!(
        legends[0].as_str().unwrap().contains("Control")
            && legends[0].as_str().unwrap().contains("Calm"),
        "{legends}"
    );
    let table = el(&b, "[data-testid=sim-table]").await.text().await.unwrap();
    for part in ["Control", "Bold", "Calm", "5.00%", "8.00%", "6.00%"] {
        assert!(table.contains(part), "the table lacks {part}: {table}");
    }
    assert_no_overflow(&b, "simulator at 1280 px").await;
    full_screenshot(&b, "dashboard-1280-simulator").await;

    // On a phone the charts redraw at its width and nothing scrolls sideways.
    viewport(&b, 390, 844).await;
    wait_js(
        &b,
        "Math.max(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right)) <= 390",
        "the simulator charts to redraw at 390 px",
    )
    .await;
    let bands = js(
        &b,
        "return document.querySelectorAll('svg[data-testid=sim-chart] path[data-series]').length",
    )
    .await;
    assert_eq!(bands, 3);
    // The visitors-per-variant table fits too: both strategies' columns stay in view.
    let table = js(&b, "const w = document.querySelector('[data-testid=sim-table]').closest('.table-wrap'); return [w.scrollWidth, w.clientWidth, [...w.querySelectorAll('thead th')].map(c => c.textContent + ' ' + Math.round(c.getBoundingClientRect().width))]").await;
    assert!(table[0].as_u64() <= table[1].as_u64(), "the table scrolls sideways: {table}");
    assert_no_overflow(&b, "simulator at 390 px").await;
    full_screenshot(&b, "dashboard-390-simulator").await;

    assert_no_console_errors(&b, "on the simulator").await;
    b.close().await;
}
