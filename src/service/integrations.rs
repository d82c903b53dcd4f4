//! Getting the snippet onto a site: the installation check (fetch the owner's page through
//! the outbound client and look for the tracker), the WordPress plugin download and the
//! Shopify steps. Each builds on `GET /installations`, so all of them carry the same snippet.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;

use super::accounts::Installation;
use super::outbound::{self, Client, describe};
use crate::config::Config;
use crate::error::{AppError, AppResult, Code};

/// The most of a page read: the snippet belongs in `<head>`, so a page whose first MiB does
/// not carry it is not installed the way the dashboard asks, and memory stays bounded.
const MAX_PAGE: usize = 1 << 20;
/// Redirects followed (http → https, a trailing slash, a locale): each hop is checked again.
const MAX_REDIRECTS: usize = 5;

/// POST /installations/verify's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// The page fetched last (after redirects).
    pub url: String,
    pub status_code: u16,
    /// A Samplit tracker script is on the page (anyone's site key).
    pub snippet_found: bool,
    /// It carries the caller's site key.
    pub site_key_matches: bool,
}

/// GET /integrations/shopify's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShopifySteps {
    pub snippet: String,
    pub steps: Vec<String>,
}

#[derive(Clone)]
pub struct Integrations {
    config: Arc<Config>,
    /// Set by `serve` once the outbound client is built (before `Services::open`, so a bad
    /// `webhooks.ca_file` stops the start); commands that never serve leave it empty.
    client: Arc<OnceLock<Client>>,
}

impl Integrations {
    pub fn new(config: Arc<Config>) -> Self {
        Integrations { config, client: Arc::new(OnceLock::new()) }
    }

    pub fn set_client(&self, client: Client) {
        let _ = self.client.set(client);
    }

    /// Fetches `url` (following a few redirects, each checked like the first) and looks for
    /// the tracker. A URL the outbound rules refuse is a 422 naming `url`; a page that cannot
    /// be fetched is a 502 `FETCH_FAILED`; any HTTP answer, even a 404, is a result.
    pub async fn verify(&self, inst: &Installation, url: &str) -> AppResult<Verification> {
        let client = self
            .client
            .get()
            .ok_or_else(|| AppError::internal("the outbound client is not set up"))?;
        let allow = self.config.outbound_allows_private();
        let mut url = url.trim().to_string();
        for hop in 0..=MAX_REDIRECTS {
            outbound::check_url(&url, allow).await.map_err(|why| {
                if hop == 0 {
                    AppError::validation("url", why)
                } else {
                    AppError::validation("url", format!("redirects to {url}, which {why}"))
                }
            })?;
            let (status, location, body) = fetch(client, &url).await.map_err(|why| {
                AppError::new(Code::FetchFailed, format!("cannot fetch {url}: {why}"))
            })?;
            if let (true, Some(next)) = ((300..400).contains(&status), location)
                && hop < MAX_REDIRECTS
                && let Some(next) = resolve(&url, &next)
            {
                url = next;
                continue;
            }
            let keys = tracker_keys(&String::from_utf8_lossy(&body));
            return Ok(Verification {
                url,
                status_code: status,
                snippet_found: !keys.is_empty(),
                site_key_matches: keys.iter().any(|k| k.as_deref() == Some(&inst.site_key)),
            });
        }
        Err(AppError::new(Code::FetchFailed, format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// The plugin zip: `samplit/samplit.php` and `samplit/readme.txt`.
    pub fn wordpress_zip(&self, inst: &Installation) -> AppResult<Vec<u8>> {
        let mut zip = super::exports::zip::ZipWriter::new(Vec::new());
        let built = zip
            .file("samplit/samplit.php", wordpress_php(&inst.snippet).as_bytes())
            .and_then(|()| zip.file("samplit/readme.txt", WORDPRESS_README.as_bytes()));
        built
            .and_then(|()| zip.finish())
            .map_err(|e| AppError::internal(format!("cannot build the plugin zip: {e}")))
    }

    pub fn shopify(&self, inst: &Installation) -> ShopifySteps {
        ShopifySteps {
            snippet: inst.snippet.clone(),
            steps: [
                "In Shopify admin, open Online Store → Themes.",
                "On your current theme, click … (Actions) → Edit code.",
                "Under Layout, open theme.liquid.",
                "Paste the snippet on the line right after <head>, before the stylesheets, so \
                 the elements under test are hidden until their variant is applied.",
                "Click Save, open your store, and use “Check my site” on Samplit's \
                 Installation page to confirm the snippet is found.",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// One GET with the outbound client's time limit over the whole exchange, the body read up
/// to `MAX_PAGE` (the rest is never read). Answers status, `Location` and the body.
async fn fetch(client: &Client, url: &str) -> Result<(u16, Option<String>, Vec<u8>), String> {
    let req = hyper::Request::get(url)
        .header(
            "user-agent",
            concat!("samplit/", env!("CARGO_PKG_VERSION"), " (installation check)"),
        )
        .header("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
        .body(Full::new(Bytes::new()))
        .map_err(|e| describe(&e))?;
    let exchange = async {
        let res = client.request(req).await.map_err(|e| describe(&e))?;
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = res.into_body();
        let mut out = Vec::new();
        while out.len() < MAX_PAGE {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = MAX_PAGE - out.len();
                        out.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => return Err(describe(&e)),
                None => break,
            }
        }
        Ok((status, location, out))
    };
    tokio::time::timeout(outbound::TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {} s", outbound::TIMEOUT.as_secs()))?
}

/// The absolute URL of a `Location` relative to `base`: absolute, or rooted at `/`. Other
/// relative forms are rare for redirects; the 3xx is then answered as it is.
fn resolve(base: &str, location: &str) -> Option<String> {
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Some(location.to_string());
    }
    let uri: hyper::Uri = base.parse().ok()?;
    let origin = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{}://{rest}", uri.scheme_str()?));
    }
    location.starts_with('/').then(|| format!("{origin}{location}"))
}

/// The Samplit tracker scripts of a page, each with the site key it carries (None: a
/// `tracker.js` with no key we can read). Recognised, as `GET /installations` and tracker.js
/// give them: `<script src=".../t/KEY.js">`, `<script src=".../tracker.js"
/// data-site-key="KEY">`, and `tracker.js` after an inline `window.__samplit = {siteKey:
/// "KEY"}`. Commented-out markup does not count.
pub fn tracker_keys(html: &str) -> Vec<Option<String>> {
    let html = strip_comments(html);
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut inline_key = None;
    let mut at = 0;
    while let Some(i) = lower[at..].find("<script") {
        let start = at + i + "<script".len();
        let Some((attrs, end)) = tag_attributes(&html, start) else { break };
        let close = lower[end..].find("</script").map_or(html.len(), |j| end + j);
        let src = attrs.iter().find(|(n, _)| n == "src").map(|(_, v)| v.as_str());
        match src {
            None => {
                if let Some(k) = inline_site_key(&html[end..close]) {
                    inline_key = Some(k);
                }
            }
            Some(src) => {
                let path = src.split(['?', '#']).next().unwrap_or("");
                if let Some(key) = per_site_key(path) {
                    found.push(Some(key));
                } else if path.ends_with("/tracker.js") || path == "tracker.js" {
                    let attr = attrs.iter().find(|(n, _)| n == "data-site-key");
                    found.push(attr.map(|(_, v)| v.clone()).or_else(|| inline_key.clone()));
                }
            }
        }
        at = close.max(end);
    }
    found
}

/// The key of a `/t/KEY.js` path.
fn per_site_key(path: &str) -> Option<String> {
    let (dir, file) = path.rsplit_once('/')?;
    let key = file.strip_suffix(".js")?;
    (dir.ends_with("/t") || dir == "t").then(|| key.to_string()).filter(|k| !k.is_empty())
}

/// `siteKey: "KEY"` (or `'KEY'`, or `"siteKey": ...`) in an inline script.
fn inline_site_key(script: &str) -> Option<String> {
    let i = script.find("siteKey")?;
    let rest = script[i + "siteKey".len()..].trim_start_matches(['"', '\'']).trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    value.find(quote).map(|j| value[..j].to_string())
}

fn strip_comments(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        rest = rest[i + 4..].find("-->").map_or("", |j| &rest[i + 4 + j + 3..]);
    }
    out.push_str(rest);
    out
}

/// The attributes of the tag whose name ends at `from`, names lower-cased and values with
/// the common entities decoded; and where the tag ends (after `>`). None if it never ends.
fn tag_attributes(html: &str, from: usize) -> Option<(Vec<(String, String)>, usize)> {
    let b = html.as_bytes();
    let mut i = from;
    let mut attrs = Vec::new();
    // `<scripts>` or `<script-x>` are other tags.
    if b.get(i).is_some_and(|c| !c.is_ascii_whitespace() && *c != b'>' && *c != b'/') {
        return Some((attrs, i));
    }
    loop {
        while b.get(i).is_some_and(|c| c.is_ascii_whitespace() || *c == b'/') {
            i += 1;
        }
        if *b.get(i)? == b'>' {
            return Some((attrs, i + 1));
        }
        let name_start = i;
        while b.get(i).is_some_and(|c| !c.is_ascii_whitespace() && !b"=>/".contains(c)) {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let mut value = String::new();
        if b.get(i) == Some(&b'=') {
            i += 1;
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            match b.get(i)? {
                q @ (b'"' | b'\'') => {
                    let end = i + 1 + html[i + 1..].find(*q as char)?;
                    value = html[i + 1..end].to_string();
                    i = end + 1;
                }
                _ => {
                    let s = i;
                    while b.get(i).is_some_and(|c| !c.is_ascii_whitespace() && *c != b'>') {
                        i += 1;
                    }
                    value = html[s..i].to_string();
                }
            }
        }
        if !name.is_empty() {
            attrs.push((name, decode_entities(&value)));
        }
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A PHP single-quoted string literal: only `\` and `'` are special inside one, so nothing
/// in the snippet (a `$`, `{`, `?>`) is interpreted.
fn php_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The plugin's one PHP file: the header WordPress reads, the direct-access guard, and the
/// snippet echoed at the top of `<head>` (priority 1, before the theme's stylesheets, so the
/// anti-flicker style applies before first paint).
fn wordpress_php(snippet: &str) -> String {
    format!(
        r#"<?php
/**
 * Plugin Name: Samplit
 * Plugin URI: https://github.com/samplit/samplit
 * Description: Adds your Samplit tracker snippet to every page, at the top of the head, so your experiments run on this site.
 * Version: {version}
 * Author: Samplit
 * License: MIT
 */

if (!defined('ABSPATH')) exit;

/** The snippet from your Samplit server's Installation page (site key and endpoint included). */
function samplit_print_snippet() {{
    echo {snippet} . "\n";
}}

add_action('wp_head', 'samplit_print_snippet', 1);
"#,
        version = env!("CARGO_PKG_VERSION"),
        snippet = php_string(snippet),
    )
}

const WORDPRESS_README: &str = "=== Samplit ===
Tags: ab testing, experiments, split testing
Requires at least: 4.7
Stable tag: 1.0
License: MIT

Adds your Samplit tracker snippet to every page.

== Description ==

This plugin prints the Samplit snippet (with your site key and your Samplit server's address)
at the very top of <head> on every page, so running experiments whose target URL matches a
page apply to it without the original content flashing first.

== Installation ==

1. In WordPress, go to Plugins -> Add New -> Upload Plugin and choose this zip.
2. Click Install Now, then Activate.
3. On your Samplit Installation page, use \"Check my site\" with your site's address to
   confirm the snippet is found.

Downloaded again later, the plugin carries the same snippet; a new site key needs a new
download.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_forms_are_found_with_their_keys() {
        let keys = |h: &str| tracker_keys(h);
        assert_eq!(
            keys(r#"<head><script src="https://s.example/t/sk_1.js"></script>"#),
            [Some("sk_1".to_string())]
        );
        assert_eq!(
            keys("<SCRIPT defer SRC='//s.example/tracker.js?v=2' data-site-key=sk_2></SCRIPT>"),
            [Some("sk_2".to_string())]
        );
        assert_eq!(
            keys(
                r#"<script>window.__samplit = {endpoint: "https://s", siteKey: 'sk_3'}</script>
                <script src="/tracker.js"></script>"#
            ),
            [Some("sk_3".to_string())]
        );
        assert_eq!(keys(r#"<script src="/tracker.js"></script>"#), [None]);
        assert!(keys(r#"<!-- <script src="/t/sk_1.js"></script> -->"#).is_empty());
        assert!(
            keys(r#"<script src="/js/tracker.jsx"></script><scripts src="/t/a.js">"#).is_empty()
        );
        assert!(keys(r#"<script src="/other.js"></script><p>/t/sk_1.js</p>"#).is_empty());
        assert!(keys("<script src=\"/t/sk").is_empty(), "an unfinished tag");
    }

    #[test]
    fn php_strings_escape_quotes_and_backslashes_only() {
        assert_eq!(php_string(r#"a'b\c"$d"#), r#"'a\'b\\c"$d'"#);
        let php = wordpress_php(r#"<script src="https://x/t/k.js"></script>"#);
        assert!(php.contains(r#"echo '<script src="https://x/t/k.js"></script>' . "\n";"#));
    }

    #[test]
    fn redirects_resolve_absolute_and_rooted_locations() {
        assert_eq!(resolve("http://a.b/x", "https://c.d/y").as_deref(), Some("https://c.d/y"));
        assert_eq!(resolve("http://a.b:8/x", "/y?z").as_deref(), Some("http://a.b:8/y?z"));
        assert_eq!(resolve("https://a.b/x", "//c.d/").as_deref(), Some("https://c.d/"));
        assert_eq!(resolve("https://a.b/x", "y"), None);
    }
}
