//! Campaigns through the real server: waves, the open pixel and click links, adaptive
//! allocation across waves, forged tokens, validation, durability and the CLI.

mod common;

use common::TestApp;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A public GET that neither follows redirects nor reads the body as text.
fn raw_get(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut r = agent.get(url).call().expect("transport");
    let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = r.body_mut().read_to_vec().unwrap_or_default();
    (r.status().as_u16(), loc, body)
}

/// The path part of an absolute URL the server made (the port changes across restarts).
fn path_of(url: &str) -> &str {
    let after = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    &after[after.find('/').unwrap_or(after.len())..]
}

fn campaign_body(name: &str, goal: &str) -> Value {
    json!({
        "name": name,
        "type": "campaign",
        "channel": "email",
        "goal": {"type": goal},
        "variants": [
            {"name": "Plain", "is_control": true,
             "content": {"text": "Our autumn news", "html": "<p>Hello, reader</p>"}},
            {"name": "Urgent", "content": {"text": "Last chance: 20% off", "html": "<p>Hurry</p>"}}
        ]
    })
}

fn running_campaign(app: &TestApp, token: &str, goal: &str) -> String {
    let e = app.running_ab(token, campaign_body("Newsletter", goal));
    assert_eq!(e["type"], "campaign");
    assert_eq!(e["channel"], "email");
    e["id"].as_str().unwrap().to_string()
}

fn wave(app: &TestApp, token: &str, exp: &str, recipients: &[String], links: &[&str]) -> Value {
    let r = app.post(
        &format!("/api/v1/experiments/{exp}/waves"),
        Some(token),
        &json!({"recipients": recipients, "links": links}),
    );
    assert_eq!(r.status, 201, "wave: {}", r.text);
    r.body
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn stats(app: &TestApp, token: &str, exp: &str) -> Value {
    let r = app.get(&format!("/api/v1/experiments/{exp}"), Some(token));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["stats"].clone()
}

/// Opens the messages of `Urgent` recipients at 60% and of `Plain` ones at 10%,
/// deterministically (every n-th recipient of each variant).
fn drive_opens(app: &TestApp, sent: &Value) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for r in sent["recipients"].as_array().unwrap() {
        let v = r["variant_name"].as_str().unwrap().to_string();
        let n = seen.entry(v.clone()).or_default();
        let opens = if v == "Urgent" { *n % 10 < 6 } else { n.is_multiple_of(10) };
        *n += 1;
        if opens {
            let (status, _, _) = raw_get(&app.url(path_of(r["open_url"].as_str().unwrap())));
            assert_eq!(status, 200);
        }
    }
}

fn share_of(sent: &Value, name: &str) -> f64 {
    let rs = sent["recipients"].as_array().unwrap();
    rs.iter().filter(|r| r["variant_name"] == name).count() as f64 / rs.len() as f64
}

/// Waits until the published weights give `name` more than `at_least` of new traffic.
fn wait_for_weight(app: &TestApp, token: &str, exp: &str, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = app.get(&format!("/api/v1/analytics/experiments/{exp}"), Some(token));
        let arms = a.body["arms"].as_array().cloned().unwrap_or_default();
        let w = arms.iter().find(|x| x["name"] == name).and_then(|x| x["traffic_weight"].as_f64());
        if w.is_some_and(|w| w > at_least) {
            return;
        }
        assert!(Instant::now() < deadline, "weights never moved: {}", a.text);
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn three_waves_send_most_of_the_third_with_the_better_subject_line() {
    let app = TestApp::spawn_with(&[("SAMPLIT_ENGINE__REFRESH_INTERVAL_MS", "50")]);
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "open");

    let first = wave(&app, &token, &exp, &ids("w1", 300), &[]);
    assert_eq!(first["wave"], 1);
    assert_eq!(first["recipients"].as_array().unwrap().len(), 300);
    let urgent1 = share_of(&first, "Urgent");
    assert!((0.35..0.65).contains(&urgent1), "an equal split first: {urgent1}");
    let r0 = &first["recipients"][0];
    assert!(r0["open_url"].as_str().unwrap().contains("/o/"));
    assert!(r0["content"]["text"].is_string());
    drive_opens(&app, &first);
    wait_for_weight(&app, &token, &exp, "Urgent", 0.8);

    // Some of wave one again: they keep their variant.
    let mut second_ids = ids("w2", 300);
    second_ids.extend(ids("w1", 20));
    let second = wave(&app, &token, &exp, &second_ids, &[]);
    assert_eq!(second["wave"], 2);
    let before: std::collections::HashMap<&str, &str> = first["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user_id"].as_str().unwrap(), r["variant_name"].as_str().unwrap()))
        .collect();
    for r in second["recipients"].as_array().unwrap() {
        if let Some(v) = before.get(r["user_id"].as_str().unwrap()) {
            assert_eq!(r["variant_name"].as_str().unwrap(), *v, "a recipient keeps their variant");
        }
    }
    assert!(share_of(&second, "Urgent") > 0.8, "wave two follows the weights");
    drive_opens(&app, &second);
    wait_for_weight(&app, &token, &exp, "Urgent", 0.9);

    let third = wave(&app, &token, &exp, &ids("w3", 300), &[]);
    assert_eq!(third["wave"], 3);
    let urgent3 = share_of(&third, "Urgent");
    assert!(urgent3 > 0.85, "most of wave three gets the better subject line: {urgent3}");

    let list = app.get(&format!("/api/v1/experiments/{exp}/waves"), Some(&token));
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["total"], 3);
    let w2 = &list.body["items"][1];
    assert_eq!(w2["wave"], 2);
    assert_eq!(w2["recipients"], 320);
    assert_eq!(w2["new_recipients"], 300);
    let per_variant: u64 =
        w2["variants"].as_array().unwrap().iter().map(|v| v["recipients"].as_u64().unwrap()).sum();
    assert_eq!(per_variant, 320);
}

#[test]
fn an_open_counts_once_per_recipient() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "open");
    let sent = wave(&app, &token, &exp, &ids("r", 3), &[]);
    let open = |i: usize| app.url(path_of(sent["recipients"][i]["open_url"].as_str().unwrap()));
    for _ in 0..3 {
        let (status, _, body) = raw_get(&open(0));
        assert_eq!(status, 200);
        assert!(body.starts_with(b"GIF89a"), "a GIF");
    }
    let r = app.get(path_of(&open(0)), None);
    assert_eq!(r.header("content-type"), Some("image/gif"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(stats(&app, &token, &exp)["conversions"], 1);
    raw_get(&open(1));
    assert_eq!(stats(&app, &token, &exp)["conversions"], 2);
    assert_eq!(stats(&app, &token, &exp)["visitors"], 3);
}

#[test]
fn a_click_link_redirects_exactly_to_its_own_link() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "click");
    let links = ["https://shop.example/sale?utm=mail&x=1", "http://help.example/faq#top"];
    let sent = wave(&app, &token, &exp, &ids("r", 2), &links);
    for r in sent["recipients"].as_array().unwrap() {
        let rewritten = r["links"].as_array().unwrap();
        assert_eq!(rewritten.len(), 2);
        for (i, l) in rewritten.iter().enumerate() {
            let l = l.as_str().unwrap();
            assert!(path_of(l).starts_with("/c/"), "{l}");
            let (status, loc, _) = raw_get(&app.url(path_of(l)));
            assert_eq!(status, 302);
            assert_eq!(loc.as_deref(), Some(links[i]));
            // Nothing in the query string can steer it elsewhere.
            let steered =
                format!("{}?url=https://evil.example/&to=https://evil.example/", path_of(l));
            let (status, loc, _) = raw_get(&app.url(&steered));
            assert_eq!(status, 302);
            assert_eq!(loc.as_deref(), Some(links[i]));
        }
    }
    // Clicks of two recipients on several links: one conversion each.
    assert_eq!(stats(&app, &token, &exp)["conversions"], 2);
}

#[test]
fn forged_or_altered_tokens_are_refused_and_record_nothing() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "click");
    let sent = wave(&app, &token, &exp, &ids("r", 2), &["https://shop.example/"]);
    let click = path_of(sent["recipients"][0]["links"][0].as_str().unwrap()).to_string();
    let open = path_of(sent["recipients"][0]["open_url"].as_str().unwrap()).to_string();
    let tok = click.strip_prefix("/c/").unwrap().to_string();

    let mut forged = vec![
        "/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .to_string(),
        "/c/not-a-token".to_string(),
        format!("/c/{}", &tok[..tok.len() - 4]),
        format!("/c/{tok}x"),
        // An open token is not a click token, nor the other way round.
        format!("/c/{}", open.strip_prefix("/o/").unwrap().strip_suffix(".gif").unwrap()),
        format!("/o/{tok}.gif"),
        "/o/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.gif"
            .into(),
    ];
    // Every single character changed in turn.
    for i in (0..tok.len()).step_by(7) {
        let mut chars: Vec<char> = tok.chars().collect();
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        forged.push(format!("/c/{}", chars.into_iter().collect::<String>()));
    }
    for path in &forged {
        let (status, loc, _) = raw_get(&app.url(path));
        assert!((400..500).contains(&status), "{path}: {status}");
        assert_eq!(loc, None, "{path} must not redirect");
    }
    let r = app.get(&forged[0], None);
    assert_eq!(r.code(), "INVALID_TOKEN");
    assert_eq!(stats(&app, &token, &exp)["conversions"], 0, "nothing recorded");

    let (status, loc, _) = raw_get(&app.url(&click));
    assert_eq!((status, loc.as_deref()), (302, Some("https://shop.example/")));
    assert_eq!(stats(&app, &token, &exp)["conversions"], 1);
}

#[test]
fn wave_input_is_validated_and_a_refused_wave_changes_nothing() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "open");
    let path = format!("/api/v1/experiments/{exp}/waves");
    let field = |body: Value| {
        let r = app.post(&path, Some(&token), &body);
        assert_eq!(r.status, 422, "{}", r.text);
        r.body["error"]["details"]["field"].as_str().unwrap_or("").to_string()
    };
    let one = json!(["a"]);
    for bad in ["javascript:alert(1)", "ftp://files.example/x", "/relative", "https://", "data:,x"]
    {
        assert_eq!(
            field(json!({"recipients": one, "links": ["https://ok.example", bad]})),
            "links[1]"
        );
    }
    assert_eq!(field(json!({"recipients": ids("r", 10_001)})), "recipients");
    assert_eq!(field(json!({"recipients": []})), "recipients");
    assert_eq!(field(json!({"recipients": ["a", "b", "a"]})), "recipients[2]");
    assert_eq!(field(json!({"recipients": ["a", "line\nbreak"]})), "recipients[1]");
    assert_eq!(field(json!({"recipients": ["a", "x".repeat(129)]})), "recipients[1]");
    let r = app.post(&path, Some(&token), &json!({"recipients": one, "extra": 1}));
    assert_eq!(r.status, 422, "{}", r.text);

    let list = app.get(&path, Some(&token));
    assert_eq!(list.body["total"], 0, "{}", list.text);
    assert_eq!(stats(&app, &token, &exp)["visitors"], 0);

    // 10,000 is allowed.
    let big = wave(&app, &token, &exp, &ids("big", 10_000), &[]);
    assert_eq!(big["recipients"].as_array().unwrap().len(), 10_000);
}

#[test]
fn waves_need_a_running_campaign_of_the_caller() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let body = json!({"recipients": ["a"]});

    let ab = app.running_ab(&token, common::ab_body("Page test"));
    let r = app.post(
        &format!("/api/v1/experiments/{}/waves", ab["id"].as_str().unwrap()),
        Some(&token),
        &body,
    );
    assert_eq!((r.status, r.code()), (409, "EXP_NOT_CAMPAIGN"), "{}", r.text);

    let draft = app.post("/api/v1/experiments", Some(&token), &campaign_body("Draft", "open"));
    let id = draft.body["id"].as_str().unwrap().to_string();
    let waves = format!("/api/v1/experiments/{id}/waves");
    let r = app.post(&waves, Some(&token), &body);
    assert_eq!((r.status, r.code()), (409, "EXP_NOT_RUNNING"), "{}", r.text);
    assert_eq!(r.body["error"]["details"]["status"], "draft");

    app.post(&format!("/api/v1/experiments/{id}/start"), Some(&token), &json!({}));
    app.post(&format!("/api/v1/experiments/{id}/pause"), Some(&token), &json!({}));
    let r = app.post(&waves, Some(&token), &body);
    assert_eq!((r.status, r.code()), (409, "EXP_NOT_RUNNING"));

    let other = app.post(
        "/api/v1/auth/register",
        None,
        &json!({"email": "other@example.com", "password": "correct horse"}),
    );
    assert_eq!(other.status, 403, "registration is closed after the first user");
    assert_eq!(app.post(&waves, None, &body).status, 401);
    let r = app.post(
        "/api/v1/experiments/00000000-0000-0000-0000-000000000000/waves",
        Some(&token),
        &body,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn campaign_definitions_are_validated() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let field = |body: Value| {
        let r = app.post("/api/v1/experiments", Some(&token), &body);
        assert_eq!(r.status, 422, "{}", r.text);
        r.body["error"]["details"]["field"].as_str().unwrap_or("").to_string()
    };
    let mut b = campaign_body("x", "open");
    b.as_object_mut().unwrap().remove("channel");
    assert_eq!(field(b), "channel");
    let mut b = campaign_body("x", "open");
    b["channel"] = json!("fax");
    let r = app.post("/api/v1/experiments", Some(&token), &b);
    assert!(matches!(r.status, 400 | 422), "{}", r.text);
    let mut b = campaign_body("x", "open");
    b["goal"] = json!({"type": "pageview", "url": "/thanks"});
    assert_eq!(field(b), "goal.type");
    let mut b = common::ab_body("page");
    b["channel"] = json!("push");
    assert_eq!(field(b), "channel");
    let mut b = common::ab_body("page");
    b["goal"] = json!({"type": "open"});
    assert_eq!(field(b), "goal.type");
    let mut b = campaign_body("x", "open");
    b["traffic_allocation"] = json!(0.5);
    assert_eq!(field(b), "traffic_allocation");

    // No goal given: a campaign counts opens.
    let mut b = campaign_body("push one", "open");
    b["channel"] = json!("push");
    b.as_object_mut().unwrap().remove("goal");
    let r = app.post("/api/v1/experiments", Some(&token), &b);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["goal"], json!({"type": "open"}));
    assert_eq!(r.body["channel"], "push");
    let r = app.post("/api/v1/experiments", Some(&token), &campaign_body("clicks", "click"));
    assert_eq!(r.body["goal"], json!({"type": "click"}));
}

#[test]
fn a_running_campaign_is_never_served_to_pages() {
    let app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let key = app.site_key(&token);
    running_campaign(&app, &token, "open");
    let r = app.post(
        "/api/v1/tracker/assign",
        None,
        &json!({"site_key": key, "user_id": "visitor", "url": "https://shop.example/"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["assignments"], json!([]));
}

#[test]
fn waves_opens_and_clicks_survive_kill_9() {
    let mut app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "open");
    let sent = wave(&app, &token, &exp, &ids("r", 5), &["https://shop.example/a"]);
    let click = path_of(sent["recipients"][0]["links"][0].as_str().unwrap()).to_string();
    let open = path_of(sent["recipients"][1]["open_url"].as_str().unwrap()).to_string();
    assert_eq!(raw_get(&app.url(&click)).0, 302);
    assert_eq!(raw_get(&app.url(&open)).0, 200);
    app.kill9();
    app.start();
    let token = app.login("owner@example.com", "correct horse");
    assert_eq!(stats(&app, &token, &exp)["conversions"], 2, "a click counts as the open");
    let (status, loc, _) = raw_get(&app.url(&click));
    assert_eq!((status, loc.as_deref()), (302, Some("https://shop.example/a")));
    assert_eq!(stats(&app, &token, &exp)["conversions"], 2, "still once per recipient");
    let next = wave(&app, &token, &exp, &ids("s", 1), &[]);
    assert_eq!(next["wave"], 2, "the wave record survived");
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    // Enough CSV for our output: quoted fields may hold commas, quotes and newlines.
    let mut rows = vec![];
    let (mut row, mut field, mut quoted) = (vec![], String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

#[test]
fn cli_campaign_wave_prints_a_csv_for_a_mail_tool() {
    let mut app = TestApp::spawn();
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "open");

    let (code, help, _) = app.cli(&["campaign", "wave", "--help"], None);
    assert_eq!(code, 0);
    assert!(
        help.contains("--recipients") && help.contains("--link") && help.contains("first column")
    );

    let file = app.dir.parent().unwrap().join("list.csv");
    std::fs::write(
        &file,
        "email,name\nana@example.com,Ana\n\"bo@example.com\",Bo\n\ncy@example.com\n",
    )
    .unwrap();
    let args = ["campaign", "wave", "--experiment", &exp, "--recipients", file.to_str().unwrap()];
    let mut with_links = args.to_vec();
    with_links.extend([
        "--link",
        "https://shop.example/sale",
        "--link",
        "https://shop.example/help",
    ]);
    let (code, out, err) = app.cli(&with_links, None);
    assert_eq!(code, 0, "{err}");
    let rows = parse_csv(&out);
    assert_eq!(
        rows[0],
        ["user_id", "variant_name", "subject", "body", "open_url", "link_1", "link_2"]
    );
    assert_eq!(rows.len(), 4, "{out}");
    let users: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(users, ["ana@example.com", "bo@example.com", "cy@example.com"]);
    for r in &rows[1..] {
        assert!(["Plain", "Urgent"].contains(&r[1].as_str()));
        let subject = if r[1] == "Plain" { "Our autumn news" } else { "Last chance: 20% off" };
        assert_eq!(r[2], subject);
        assert!(r[3].starts_with("<p>"));
        assert_eq!(raw_get(&app.url(path_of(&r[4]))).0, 200, "the open pixel works");
        let (status, loc, _) = raw_get(&app.url(path_of(&r[6])));
        assert_eq!((status, loc.as_deref()), (302, Some("https://shop.example/help")));
    }
    assert_eq!(stats(&app, &token, &exp)["conversions"], 3);

    // One id per line, with the server stopped: the CLI opens the data dir itself.
    app.stop();
    std::fs::write(&file, "dee@example.com\nana@example.com\n").unwrap();
    let (code, out, err) = app.cli(&args, None);
    assert_eq!(code, 0, "{err}");
    let rows = parse_csv(&out);
    assert_eq!(rows[0], ["user_id", "variant_name", "subject", "body", "open_url"]);
    assert_eq!(rows.len(), 3);
    app.start();
    let token = app.login("owner@example.com", "correct horse");
    let list = app.get(&format!("/api/v1/experiments/{exp}/waves"), Some(&token));
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["items"][1]["new_recipients"], 1);

    // A full wave of long ids goes over the admin socket too (well over 1 MiB of request).
    let long: Vec<String> = (0..10_000).map(|i| format!("{i:0>120}")).collect();
    std::fs::write(&file, long.join("\n")).unwrap();
    let (code, out, err) = app.cli(&args, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 10_001);

    let (code, _, err) = app.cli(
        &["campaign", "wave", "--experiment", "nope", "--recipients", file.to_str().unwrap()],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("experiment"), "{err}");
}

#[test]
fn open_and_click_urls_are_rate_limited_like_the_tracker() {
    let app = TestApp::spawn_with(&[("SAMPLIT_LIMITS__TRACKER_PER_IP", "2")]);
    let token = app.register("owner@example.com");
    let exp = running_campaign(&app, &token, "click");
    let sent = wave(&app, &token, &exp, &ids("r", 1), &["https://shop.example/"]);
    let click = app.url(path_of(sent["recipients"][0]["links"][0].as_str().unwrap()));
    let statuses: Vec<u16> = (0..30).map(|_| raw_get(&click).0).collect();
    assert!(statuses.contains(&302), "{statuses:?}");
    assert!(statuses.contains(&429), "a burst is limited: {statuses:?}");
    let r = app.get(path_of(sent["recipients"][0]["open_url"].as_str().unwrap()), None);
    if r.status == 429 {
        assert!(r.header("retry-after").is_some());
    }
}
