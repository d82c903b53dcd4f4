//! The end-to-end harness: `TestApp::spawn()` starts the real `samplit` binary on a free port
//! over a fresh temp data dir and talks HTTP to it. Dropping it kills the server.

#![allow(dead_code)]

pub mod http_request;
pub mod smtp_sink;
pub mod xlsx_read;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_samplit");

pub struct TestApp {
    pub child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    agent: ureq::Agent,
    pub env: Vec<(String, String)>,
}

pub struct Res {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

impl TestApp {
    pub fn spawn() -> TestApp {
        Self::spawn_with(&[])
    }

    /// Starts a server with extra `SAMPLIT_*` settings. Rate limits are off unless a test
    /// turns them on, so tests are not flaky under parallel load.
    pub fn spawn_with(env: &[(&str, &str)]) -> TestApp {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let mut app = TestApp {
            child: None,
            base: String::new(),
            dir,
            _temp: Some(temp),
            agent: agent(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        app.start();
        app
    }

    /// Starts a server over the given data dir (which the caller owns and removes).
    pub fn spawn_in(dir: PathBuf, env: &[(&str, &str)]) -> TestApp {
        let mut app = TestApp {
            child: None,
            base: String::new(),
            dir,
            _temp: None,
            agent: agent(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        app.start();
        app
    }

    /// Starts (or restarts) the server over the same data dir.
    pub fn start(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&self.dir)
            .current_dir(self.dir.parent().unwrap_or(Path::new("/tmp")))
            .env("SAMPLIT_LIMITS__TRACKER_PER_IP", "0")
            .env("SAMPLIT_LIMITS__TRACKER_PER_SITE", "0")
            .env("SAMPLIT_LIMITS__API_PER_TOKEN", "0")
            .env("SAMPLIT_LIMITS__LOGIN_PER_IP", "0")
            .env("SAMPLIT_LIMITS__SIMULATE_PER_IP", "0")
            .env("SAMPLIT_LOG__LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start samplit");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(url);
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("samplit did not start within 20 s");
        });
        self.base = base;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get("/health", None).status != 200 {
            assert!(Instant::now() < deadline, "server never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Graceful stop (SIGTERM), waiting for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server did not stop on SIGTERM within 15 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Res {
        let mut r = r.expect("HTTP request failed at the transport level");
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res { status, headers, body, text }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Res {
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Self::finish(req.call())
    }

    /// A GET whose body is bytes (a download), with extra request headers.
    pub fn get_bytes(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut req =
            self.agent.get(self.url(path)).header("authorization", format!("Bearer {token}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.call().expect("HTTP request failed at the transport level");
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = r.body_mut().with_config().limit(64 << 20).read_to_vec().expect("body");
        (r.status().as_u16(), headers, body)
    }

    pub fn get_h(&self, path: &str, headers: &[(&str, &str)]) -> Res {
        let mut req = self.agent.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::finish(req.call())
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Res {
        self.send("POST", path, token, "application/json", body.to_string().as_bytes())
    }

    pub fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Res {
        self.send("PATCH", path, token, "application/json", body.to_string().as_bytes())
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Res {
        let mut req = self.agent.delete(self.url(path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Self::finish(req.call())
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        ctype: &str,
        body: &[u8],
    ) -> Res {
        self.send_h(method, path, token, &[("content-type", ctype)], body)
    }

    pub fn send_h(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Res {
        let url = self.url(path);
        let mut req = match method {
            "POST" => self.agent.post(url),
            "PATCH" => self.agent.patch(url),
            "PUT" => self.agent.put(url),
            other => panic!("unsupported method {other}"),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Self::finish(req.send(body))
    }

    /// Registers a user (the first becomes admin) and returns a session token.
    pub fn register(&self, email: &str) -> String {
        let r = self.post(
            "/api/v1/auth/register",
            None,
            &json!({"email": email, "password": "correct horse"}),
        );
        assert_eq!(r.status, 201, "register {email}: {}", r.text);
        self.login(email, "correct horse")
    }

    pub fn login(&self, email: &str, password: &str) -> String {
        let r =
            self.post("/api/v1/auth/token", None, &json!({"email": email, "password": password}));
        assert_eq!(r.status, 200, "login {email}: {}", r.text);
        r.body["access_token"].as_str().expect("token").to_string()
    }

    pub fn site_key(&self, token: &str) -> String {
        self.get("/api/v1/auth/me", Some(token)).body["site_key"]
            .as_str()
            .expect("site key")
            .to_string()
    }

    /// Creates a running A/B experiment and returns its JSON.
    pub fn running_ab(&self, token: &str, body: Value) -> Value {
        let r = self.post("/api/v1/experiments", Some(token), &body);
        assert_eq!(r.status, 201, "create: {}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let s = self.post(&format!("/api/v1/experiments/{id}/start"), Some(token), &json!({}));
        assert_eq!(s.status, 200, "start: {}", s.text);
        s.body
    }

    pub fn assign(&self, site_key: &str, exp: &str, user: &str) -> Res {
        self.post(
            "/api/v1/tracker/assign",
            None,
            &json!({"site_key": site_key, "experiment_id": exp, "user_id": user}),
        )
    }

    pub fn convert(&self, site_key: &str, exp: &str, user: &str) -> Res {
        self.post(
            "/api/v1/tracker/convert",
            None,
            &json!({"site_key": site_key, "experiment_id": exp, "user_id": user}),
        )
    }

    /// Runs the CLI against this app's data dir.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        run_cli(args, &self.dir, stdin, &self.env)
    }
}

pub fn run_cli(
    args: &[&str],
    dir: &Path,
    stdin: Option<&str>,
    env: &[(String, String)],
) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data-dir").arg(dir).env("SAMPLIT_LOG__LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run samplit");
    if let Some(mut sin) = child.stdin.take()
        && let Some(s) = stdin
    {
        let _ = sin.write_all(s.as_bytes());
    }
    let out = child.wait_with_output().expect("wait samplit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn ab_body(name: &str) -> Value {
    json!({
        "name": name,
        "selector": "#cta",
        "goal": {"type": "click", "selector": "#buy"},
        "variants": [
            {"name": "Control", "is_control": true, "content": {"text": "Buy now"}},
            {"name": "B", "content": {"text": "Get yours"}}
        ]
    })
}
