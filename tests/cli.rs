//! The command line, run as a user would: the built binary, offline and against a server.

mod common;

use common::{BIN, TestApp, run_cli};
use std::process::Command;

fn samplit(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env("SAMPLIT_LOG__LEVEL", "warn").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_only_working_commands_with_examples() {
    let (code, out, _) = samplit(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["serve", "user", "experiment", "config", "healthcheck", "check", "repair", "keys"] {
        assert!(out.contains(cmd), "--help lists {cmd}:\n{out}");
    }
    assert!(out.contains("Examples:"));
    for sub in [
        vec!["serve", "--help"],
        vec!["user", "create", "--help"],
        vec!["user", "list", "--help"],
        vec!["user", "set-password", "--help"],
        vec!["user", "set-role", "--help"],
        vec!["user", "disable", "--help"],
        vec!["user", "enable", "--help"],
        vec!["user", "remove", "--help"],
        vec!["experiment", "list", "--help"],
        vec!["experiment", "show", "--help"],
        vec!["config", "show", "--help"],
        vec!["healthcheck", "--help"],
        vec!["check", "--help"],
        vec!["repair", "--help"],
        vec!["keys", "rotate", "--help"],
    ] {
        let (code, out, _) = samplit(&sub);
        assert_eq!(code, 0, "{sub:?}");
        assert!(out.contains("Example"), "{sub:?} has an example:\n{out}");
        assert!(
            out.contains("--data-dir")
                || sub[0] == "config"
                || sub[0] == "healthcheck"
                || sub[0] == "serve",
            "{sub:?}"
        );
    }
}

#[test]
fn user_commands_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let (code, out, err) = run_cli(
        &["user", "create", "--email", "Root@Example.com", "--name", "Root"],
        &d,
        Some("long enough pw\n"),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("root@example.com (admin)"), "first user is admin: {out}");
    let (code, _, err) = run_cli(
        &["user", "create", "--email", "m@example.com", "--password", "member password"],
        &d,
        None,
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run_cli(&["user", "list"], &d, None, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("root@example.com") && out.contains("m@example.com") && out.contains("member"),
        "{out}"
    );
    let (code, _, err) = run_cli(
        &["user", "create", "--email", "m@example.com", "--password", "member password"],
        &d,
        None,
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("EMAIL_TAKEN"), "{err}");
    let (code, _, err) = run_cli(
        &["user", "create", "--email", "x@example.com", "--password", "short"],
        &d,
        None,
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("password"), "{err}");
    let (code, out, _) = run_cli(
        &["user", "set-role", "--email", "m@example.com", "--role", "admin"],
        &d,
        None,
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("now admin"));
    let (code, _, err) = run_cli(
        &["user", "set-role", "--email", "nobody@example.com", "--role", "admin"],
        &d,
        None,
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("USER_NOT_FOUND"), "{err}");
    let (code, _, _) = run_cli(
        &["user", "set-password", "--email", "m@example.com"],
        &d,
        Some("another long one\n"),
        &[],
    );
    assert_eq!(code, 0);
    let (code, out, _) = run_cli(&["experiment", "list"], &d, None, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("no experiments"));

    // The server starts on that data dir and the new password works.
    let mut app = TestApp::spawn();
    app.stop();
    std::fs::remove_dir_all(&app.dir).unwrap();
    copy_dir(&d, &app.dir);
    app.start();
    app.login("m@example.com", "another long one");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn admin_commands_reach_a_running_server() {
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let e = app.running_ab(&t, common::ab_body("visible from the CLI"));
    let id = e["id"].as_str().unwrap();
    let sk = app.site_key(&t);
    app.assign(&sk, id, "u1");
    // The server holds the redb file; the CLI goes through the admin socket.
    let (code, out, err) = app
        .cli(&["user", "create", "--email", "b@example.com", "--password", "password two"], None);
    assert_eq!(code, 0, "{out}{err}");
    app.login("b@example.com", "password two");
    let (code, out, _) = app.cli(&["experiment", "list", "--status", "running"], None);
    assert_eq!(code, 0);
    assert!(out.contains("visible from the CLI") && out.contains(id), "{out}");
    let (code, out, _) = app.cli(&["experiment", "show", id], None);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["analytics"]["visitors"], 1);
    let (code, _, err) = app.cli(&["experiment", "show", "not-a-uuid"], None);
    assert_eq!(code, 2, "{err}");
    let sock = app.dir.join("admin.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(app.dir.join("jwt.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(app.dir.join("state.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_second_server_on_the_same_data_dir_fails_at_once() {
    let app = TestApp::spawn();
    let start = std::time::Instant::now();
    let (code, _, err) = app.cli(&["serve", "--bind", "127.0.0.1:0"], None);
    assert_ne!(code, 0);
    assert!(err.contains("in use by another Samplit process"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn config_show_layers_and_redacts_and_unknown_keys_fail() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("samplit.toml");
    std::fs::write(&file, "[server]\nbind = \"127.0.0.1:9999\"\n[auth]\njwt_secret = \"a-very-long-secret-value-from-the-file-0123456789\"\n").unwrap();
    let f = file.to_str().unwrap();
    let out = Command::new(BIN)
        .args(["config", "show", "--config", f])
        .env("SAMPLIT_AUTH__OPEN_REGISTRATION", "true")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("bind = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("open_registration = true"), "{text}");
    assert!(!text.contains("a-very-long-secret"), "secrets are redacted");
    assert!(text.contains("<redacted>"));
    assert!(text.contains(f), "names the file it read");
    std::fs::write(&file, "[server]\nbnd = \"x\"\n").unwrap();
    let (code, _, err) = samplit(&["config", "show", "--config", f]);
    assert_ne!(code, 0);
    assert!(err.contains("server.bnd"), "{err}");
    let out = Command::new(BIN)
        .args(["config", "show"])
        .env("SAMPLIT_SERVR__BIND", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("servr.bind"));
}

#[test]
fn production_refuses_weak_or_missing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let env = vec![("SAMPLIT_SERVER__MODE".to_string(), "production".to_string())];
    let (code, _, err) = run_cli(&["serve", "--bind", "127.0.0.1:0"], &d, None, &env);
    assert_ne!(code, 0);
    assert!(err.contains("jwt_secret"), "{err}");
    let mut env2 = env.clone();
    env2.push(("SAMPLIT_AUTH__JWT_SECRET".into(), "changeme".into()));
    let (code, _, err) = run_cli(&["serve", "--bind", "127.0.0.1:0"], &d, None, &env2);
    assert_ne!(code, 0);
    assert!(err.contains("weak"), "{err}");
}

#[test]
fn healthcheck_answers_for_a_running_server() {
    let app = TestApp::spawn();
    let addr = app.base.trim_start_matches("http://").to_string();
    let (code, out, _) = samplit(&["healthcheck", "--bind", &addr]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "ok");
    let (code, _, err) = samplit(&["healthcheck", "--bind", "127.0.0.1:1"]);
    assert_ne!(code, 0);
    assert!(err.contains("no server"), "{err}");
}

#[test]
fn serve_prints_where_things_are_and_stops_gracefully() {
    let mut app = TestApp::spawn();
    assert!(app.base.starts_with("http://127.0.0.1:"));
    app.stop();
    assert!(!app.dir.join("admin.sock").exists(), "the socket is removed on shutdown");
}

#[test]
fn the_demo_account_never_takes_the_admin_seat() {
    let app = TestApp::spawn();
    let out_dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        app.cli(&["demo", "--out", out_dir.path().to_str().unwrap(), "--visitors", "300"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        app.get("/api/v1/auth/status", None).body["has_users"],
        false,
        "first run still open"
    );
    let r = app.post(
        "/api/v1/auth/register",
        None,
        &serde_json::json!({"email": "owner@example.com", "password": "correct horse"}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.body["role"], "admin", "the real owner becomes the admin");
}

#[test]
fn the_config_files_log_format_takes_effect() {
    use std::io::{BufRead, BufReader, Read};
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("samplit.toml");
    let data = temp.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    // Only the file says json: the environment starts logging as text.
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("SAMPLIT_LOG__LEVEL")
        .env_remove("SAMPLIT_LOG__FORMAT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut listening = false;
    for line in stdout.lines().map_while(Result::ok) {
        if line.contains("listening on") {
            listening = true;
            break;
        }
    }
    assert!(listening, "the server did not start");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!err.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("shutting down")),
        "the info line on shutdown is logged: {err}"
    );
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}

#[test]
fn production_refuses_long_but_predictable_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let prod = ("SAMPLIT_SERVER__MODE".to_string(), "production".to_string());
    let good_key = "3f9c1b7e5a2d48f0c6e1b9a7d3f5c2e8a1b4d6f8e0c3a5b7d9f1e2c4a6b8d0f3";
    for jwt in ["a".repeat(64), "0123456789abcdef".repeat(4), "1234567890".repeat(4)] {
        let env = vec![
            prod.clone(),
            ("SAMPLIT_AUTH__JWT_SECRET".to_string(), jwt.clone()),
            ("SAMPLIT_STATE__ENCRYPTION_KEY".to_string(), good_key.to_string()),
        ];
        let (code, _, err) = run_cli(&["serve", "--bind", "127.0.0.1:0"], &d, None, &env);
        assert_ne!(code, 0, "{jwt} was accepted");
        assert!(err.contains("jwt_secret is weak"), "{err}");
    }
    let env = vec![
        prod.clone(),
        ("SAMPLIT_AUTH__JWT_SECRET".to_string(), "kQ7vL2pX9mZ4rT8wY1nB6cF3hJ5sD0gE".to_string()),
        ("SAMPLIT_STATE__ENCRYPTION_KEY".to_string(), "0123456789abcdef".repeat(4)),
    ];
    let (code, _, err) = run_cli(&["serve", "--bind", "127.0.0.1:0"], &d, None, &env);
    assert_ne!(code, 0);
    assert!(err.contains("state.encryption_key is predictable"), "{err}");
}
