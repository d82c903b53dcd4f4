//! End-to-end tests of what the server bounds (issue 11): slow or stalled clients cannot hold
//! a connection past the header and body timeouts, cannot keep SIGTERM from finishing, and
//! an abandoned simulation stops computing; a drained shutdown keeps every answered write.

mod common;

use common::{TestApp, ab_body};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").trim_end_matches('/').to_string()
}

fn connect(app: &TestApp) -> TcpStream {
    let s = TcpStream::connect(addr(app)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Headers without the blank line that ends them.
fn half_headers(app: &TestApp) -> TcpStream {
    let mut s = connect(app);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n").unwrap();
    s
}

/// A tracker request that declares 100 body bytes and sends 5.
fn stalled_body(app: &TestApp) -> TcpStream {
    let mut s = connect(app);
    s.write_all(
        b"POST /api/v1/tracker/assign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"sit",
    )
    .unwrap();
    s
}

/// Reads until the server closes the connection (or the read timeout, which fails the test):
/// what it sent, and when it closed.
fn read_to_close(mut s: TcpStream) -> (String, Instant) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), Instant::now())
}

fn sigterm(app: &TestApp) {
    let pid = app.child.as_ref().expect("running").id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(st.success());
}

/// Waits for the process to exit; how long it took.
fn wait_exit(app: &mut TestApp, within: Duration) -> Duration {
    let start = Instant::now();
    let mut child = app.child.take().expect("running");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the server exited with {status}");
            return start.elapsed();
        }
        if start.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_despite_half_sent_requests() {
    // Timeouts far beyond the grace: only the drain deadline can end these connections.
    let mut app = TestApp::spawn_with(&[
        ("SAMPLIT_SERVER__HEADER_TIMEOUT_SECS", "120"),
        ("SAMPLIT_SERVER__BODY_TIMEOUT_SECS", "120"),
        ("SAMPLIT_SERVER__SHUTDOWN_GRACE_SECS", "2"),
    ]);
    let _a = half_headers(&app);
    let _b = stalled_body(&app);
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&app);
    let took = wait_exit(&mut app, Duration::from_secs(2 + 5));
    assert!(took >= Duration::from_millis(1500), "the stalled request got its grace: {took:?}");
}

#[test]
fn a_stalled_body_is_answered_408_within_the_body_timeout() {
    let app = TestApp::spawn_with(&[("SAMPLIT_SERVER__BODY_TIMEOUT_SECS", "1")]);
    let start = Instant::now();
    let (text, closed) = read_to_close(stalled_body(&app));
    let took = closed - start;
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(took >= Duration::from_millis(900), "closed before the timeout: {took:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"REQUEST_TIMEOUT\""), "our error format: {text}");
    // The server is still fine for everyone else.
    assert_eq!(app.get("/health", None).status, 200);
}

#[test]
fn half_sent_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(&[("SAMPLIT_SERVER__HEADER_TIMEOUT_SECS", "1")]);
    let start = Instant::now();
    let (_, closed) = read_to_close(half_headers(&app));
    let took = closed - start;
    assert!(took < Duration::from_secs(4), "half headers held {took:?}");
    assert!(took >= Duration::from_millis(900), "closed before the timeout: {took:?}");

    // A kept-alive connection that goes quiet after one request is closed too.
    let mut s = connect(&app);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let start = Instant::now();
    let (text, closed) = read_to_close(s);
    let took = closed - start;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(took < Duration::from_secs(4), "idle connection held {took:?}");
    assert!(took >= Duration::from_millis(900), "closed before the timeout: {took:?}");
}

#[test]
fn an_answered_write_survives_a_shutdown_that_drops_a_stalled_request() {
    let mut app = TestApp::spawn_with(&[
        ("SAMPLIT_SERVER__HEADER_TIMEOUT_SECS", "120"),
        ("SAMPLIT_SERVER__BODY_TIMEOUT_SECS", "120"),
        ("SAMPLIT_SERVER__SHUTDOWN_GRACE_SECS", "1"),
    ]);
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let e = app.running_ab(&t, ab_body("drain"));
    let id = e["id"].as_str().unwrap().to_string();
    let first = app.assign(&sk, &id, "visitor-1");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["new"], true);
    let _stalled = stalled_body(&app);
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&app);
    wait_exit(&mut app, Duration::from_secs(1 + 5));
    app.start();
    let again = app.assign(&sk, &id, "visitor-1");
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["new"], false, "the answered assignment was kept");
    assert_eq!(again.body["assignment_id"], first.body["assignment_id"]);
    assert_eq!(again.body["variants"], first.body["variants"]);
}

/// Before: the permit lived in the handler's future, so a client that left released the
/// slot at once while its computation ran on (the limit was void). Now the computation
/// stops, and the slot is held until it has.
#[test]
fn an_abandoned_simulation_stops_and_frees_its_slot() {
    let app = TestApp::spawn();
    // Ten arms, 10^6 visitors, 50 repetitions of both strategies: tens of seconds of work,
    // inside the public budget (5,000,000 arm-refreshes).
    let arms: Vec<_> = (0..10).map(|i| json!({"true_rate": 0.04 + 0.001 * f64::from(i)})).collect();
    let big = json!({"arms": arms, "visitors": 1_000_000, "repetitions": 50, "update_every": 100})
        .to_string();
    let mut s = connect(&app);
    write!(
        s,
        "POST /api/v1/simulate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{big}",
        big.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);

    let small = json!({"arms": [{"true_rate": 0.1}, {"true_rate": 0.2}], "visitors": 1000});
    let start = Instant::now();
    let r = app.post("/api/v1/simulate", None, &small);
    let took = start.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(took < Duration::from_secs(5), "the small simulation waited {took:?}");
    // And the abandoned one is not still burning a core behind the released slot.
    let pid = app.child.as_ref().expect("running").id();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(pid) - before;
    assert!(used < 0.5, "the server used {used:.2} s of CPU in 3 s after the client left");
}

/// User + system CPU time of a process, from /proc/<pid>/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let rest = stat.rsplit_once(')').expect("stat format").1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    ticks / hz
}
