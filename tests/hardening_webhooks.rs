//! Hardening of webhooks (issue 11, items 4 and 9): one account's slow receivers do not
//! delay another account's deliveries, a delivery is never sent twice at once, an account
//! has at most 20 webhooks; signing secrets are sealed at rest (also after `keys rotate`)
//! and the data file and dir are private to their owner.

mod common;

use common::{TestApp, ab_body};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use std::io::{BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ALLOW: (&str, &str) = ("SAMPLIT_WEBHOOKS__ALLOW_PRIVATE", "true");
const OPEN: (&str, &str) = ("SAMPLIT_AUTH__OPEN_REGISTRATION", "true");

/// One request a receiver got: delivery id header, signature header, raw body.
#[derive(Clone, Debug)]
struct Got {
    delivery: String,
    sig: String,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Requests being answered right now, and the most there ever were at once.
    now: Arc<Mutex<(usize, usize)>>,
}

/// A receiver on 127.0.0.1 that waits `delay` before answering 200, one thread per
/// connection so requests overlap. Returns its URL.
fn receiver(delay: Duration) -> (String, Receiver) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let r = Receiver::default();
    let out = r.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let r = out.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
                let Some(g) = read_request(&tcp) else { return };
                {
                    let mut n = r.now.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                r.got.lock().unwrap().push(g);
                std::thread::sleep(delay);
                let mut s = &tcp;
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                let _ = s.flush();
                r.now.lock().unwrap().0 -= 1;
            });
        }
    });
    (url, r)
}

fn read_request(tcp: &std::net::TcpStream) -> Option<Got> {
    let req = common::http_request::read_request(BufReader::new(tcp))?;
    Some(Got {
        delivery: req.header("x-samplit-delivery").to_string(),
        sig: req.header("x-samplit-signature").to_string(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
    })
}

fn signed_with(secret: &str, g: &Got) -> bool {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(g.body.as_bytes());
    g.sig == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn subscribe(app: &TestApp, token: &str, url: &str) -> (u16, serde_json::Value) {
    let r = app.post(
        "/api/v1/webhooks",
        Some(token),
        &json!({"url": url, "events": ["experiment.completed"]}),
    );
    (r.status, r.body)
}

/// Starts then completes an experiment: one `experiment.completed` per subscribed hook.
fn complete_one(app: &TestApp, token: &str, name: &str) {
    let e = app.running_ab(token, ab_body(name));
    let id = e["id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/experiments/{id}/complete"), Some(token), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn slow_receivers_of_one_owner_do_not_delay_another() {
    let app = TestApp::spawn_with(&[ALLOW, OPEN]);
    let a = app.register("a@example.com");
    let b = app.register("b@example.com");
    let (slow_url, slow) = receiver(Duration::from_secs(8));
    let (fast_url, fast) = receiver(Duration::ZERO);
    for _ in 0..15 {
        assert_eq!(subscribe(&app, &a, &slow_url).0, 201);
    }
    let (status, hook) = subscribe(&app, &b, &fast_url);
    assert_eq!(status, 201);
    let secret = hook["secret"].as_str().unwrap().to_string();

    let a_at = Instant::now();
    complete_one(&app, &a, "slow");
    wait_for("A's first deliveries", 5, || !slow.got.lock().unwrap().is_empty());
    let b_at = Instant::now();
    complete_one(&app, &b, "fast");
    // One at a time, B's delivery waited behind 15 x 8 s of A's.
    wait_for("B's delivery", 5, || !fast.got.lock().unwrap().is_empty());
    assert!(b_at.elapsed() < Duration::from_secs(5), "B waited {:?}", b_at.elapsed());
    let g = fast.got.lock().unwrap()[0].clone();
    assert!(signed_with(&secret, &g), "signed with B's secret");

    // While A's first attempts hang, passes go on every 500 ms: none is sent again, and
    // one receiver never has more than 4 at once.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(a_at.elapsed()));
    let got = slow.got.lock().unwrap().clone();
    let mut ids: Vec<_> = got.iter().map(|g| g.delivery.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "a delivery was sent twice: {got:?}");
    let max = slow.now.lock().unwrap().1;
    assert!((1..=4).contains(&max), "{max} requests at once to one receiver");
}

#[test]
fn an_owner_has_at_most_20_webhooks() {
    let app = TestApp::spawn_with(&[ALLOW, OPEN]);
    let t = app.register("a@example.com");
    let other = app.register("b@example.com");
    let url = "http://127.0.0.1:9/hook";
    for i in 0..20 {
        assert_eq!(subscribe(&app, &t, url).0, 201, "webhook {i}");
    }
    let (status, body) = subscribe(&app, &t, url);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["field"], "url");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 20"), "{body}");
    assert_eq!(subscribe(&app, &other, url).0, 201, "the cap is per owner");
    // Deleting one makes room again.
    let list = app.get("/api/v1/webhooks", Some(&t)).body;
    let first = list["items"][0]["id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/webhooks/{first}"), Some(&t)).status, 204);
    assert_eq!(subscribe(&app, &t, url).0, 201);
}

#[cfg(unix)]
#[test]
fn secrets_are_sealed_at_rest_and_survive_key_rotation() {
    use std::os::unix::fs::PermissionsExt;
    let mut app = TestApp::spawn_with(&[ALLOW]);
    let t = app.register("a@example.com");
    let (url, recv) = receiver(Duration::ZERO);
    let (status, hook) = subscribe(&app, &t, &url);
    assert_eq!(status, 201);
    let secret = hook["secret"].as_str().unwrap().to_string();

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = app.dir.join("samplit.redb");
    assert_eq!(mode(&db), 0o600, "data file");
    assert_eq!(mode(&app.dir), 0o700, "data dir");

    let delivered = |n: usize| {
        wait_for("a delivery", 15, || recv.got.lock().unwrap().len() >= n);
        let g = recv.got.lock().unwrap()[n - 1].clone();
        assert!(signed_with(&secret, &g), "signed with the secret shown at creation");
    };
    complete_one(&app, &t, "one");
    delivered(1);

    // Rotated while the server runs (over the admin socket).
    let (code, out, err) = app.cli(&["keys", "rotate"], None);
    assert_eq!(code, 0, "{out} {err}");
    complete_one(&app, &t, "two");
    delivered(2);

    app.stop();
    let raw = std::fs::read(&db).unwrap();
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "secret in the file");

    // Rotated with the server stopped (in process), then a restart.
    let (code, out, err) = app.cli(&["keys", "rotate"], None);
    assert_eq!(code, 0, "{out} {err}");
    // A data file made readable by others is narrowed again at open.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    app.start();
    assert_eq!(mode(&db), 0o600, "data file narrowed at open");
    complete_one(&app, &t, "three");
    delivered(3);
    app.stop();
    let raw = std::fs::read(&db).unwrap();
    assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "secret in the file");
}
