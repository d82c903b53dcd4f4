//! What the browser tests do on a page: wait for a condition, find, click and type, read
//! what the page shows, check the layout and the console. Failures take a screenshot and
//! say what the page showed. Each test file uses a part of it.
#![allow(dead_code)]

use crate::browser::Browser;
use fantoccini::Locator;
use fantoccini::elements::Element;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// A Chrome DevTools command through ChromeDriver (`goog/cdp/execute`).
#[derive(Debug)]
pub struct Cdp(pub Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// What the page shows right now, for failure messages.
pub async fn page_text(b: &Browser) -> String {
    let js = "const m = document.querySelector('main'); \
              const t = [...document.querySelectorAll('.toast')].map(x => x.innerText); \
              return location.hash + '\\n' + (m ? m.innerText.slice(0, 1500) : '') + '\\ntoasts: ' + t.join(' | ');";
    b.client
        .execute(js, vec![])
        .await
        .map(|v| v.as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Polls `expr` (a JS expression) until it is truthy and returns its value. On timeout it
/// saves a FAILED-… screenshot and panics with what the page shows.
pub async fn wait_js(b: &Browser, expr: &str, what: &str) -> Value {
    let script = format!("try {{ return ({expr}); }} catch (e) {{ return null; }}");
    let deadline = Instant::now() + WAIT;
    loop {
        let v = b.client.execute(&script, vec![]).await.expect("execute script");
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(x) => *x,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let name: String =
                what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            b.screenshot(&format!("FAILED-{name}")).await;
            panic!(
                "timed out waiting for {what} ({expr}); the page shows:\n{}",
                page_text(b).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The element for `css`, once it exists and is displayed.
pub async fn el(b: &Browser, css: &str) -> Element {
    let expr = format!(
        "(() => {{ const e = document.querySelector({css:?}); return e && e.getClientRects().length > 0; }})()"
    );
    wait_js(b, &expr, css).await;
    b.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"))
}

pub async fn text(b: &Browser, css: &str) -> String {
    el(b, css).await.text().await.unwrap_or_default()
}

pub async fn click(b: &Browser, css: &str) {
    el(b, css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub async fn type_into(b: &Browser, css: &str, text: &str) {
    let e = el(b, css).await;
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

/// Types into the `i`-th match of `css`.
pub async fn type_nth(b: &Browser, css: &str, i: usize, text: &str) {
    el(b, css).await;
    let all = b.client.find_all(Locator::Css(css)).await.unwrap();
    assert!(all.len() > i, "only {} matches of {css}", all.len());
    all[i].clear().await.unwrap();
    all[i].send_keys(text).await.unwrap();
}

pub async fn js(b: &Browser, script: &str) -> Value {
    b.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Nothing may be wider than the viewport (a phone would scroll the page sideways).
pub async fn assert_no_overflow(b: &Browser, what: &str) {
    let v = js(
        b,
        "const wide = [...document.querySelectorAll('body *')].filter(e => { \
           const r = e.getBoundingClientRect(); return r.width > 0 && r.right > window.innerWidth + 1 \
             && !e.closest('.table-wrap, .chart-box, .snippet, dialog'); }) \
           .slice(0, 5).map(e => e.tagName + '.' + e.className + ' right=' + Math.round(e.getBoundingClientRect().right)); \
         return [document.documentElement.scrollWidth, window.innerWidth, wide];",
    )
    .await;
    let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
    assert!(scroll <= inner, "{what}: the page overflows sideways ({scroll} > {inner}): {}", v[2]);
}

pub async fn assert_no_console_errors(b: &Browser, when: &str) {
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors {when}: {errors:#?}");
}

/// Sets the viewport. Chrome will not make a window narrower than 500 px, so a phone is
/// emulated (`mobile` also honours the page's `<meta name="viewport">`, as a phone does).
pub async fn viewport(b: &Browser, width: u64, height: u64) {
    let params =
        json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500});
    let cmd = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params});
    b.client.issue_cmd(Cdp(cmd)).await.expect("set the viewport");
    let expr = format!("window.innerWidth === {width} && window.innerHeight === {height}");
    wait_js(b, &expr, "the viewport size").await;
}

/// On a phone the navigation hides behind the Menu button.
pub async fn nav_to(b: &Browser, target: &str) {
    let phone =
        js(b, "return getComputedStyle(document.getElementById('nav-toggle')).display !== 'none'")
            .await;
    if phone == true {
        click(b, "#nav-toggle").await;
        wait_js(b, "document.getElementById('nav').classList.contains('open')", "the menu to open")
            .await;
    }
    click(b, &format!("[data-testid={target}]")).await;
}

/// Clicks `css` after scrolling it to the middle of the screen, where no toast (they sit at
/// the bottom) covers it.
pub async fn click_centered(b: &Browser, css: &str) {
    el(b, css).await;
    js(b, &format!("document.querySelector({css:?}).scrollIntoView({{block: 'center'}})")).await;
    el(b, css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
}
