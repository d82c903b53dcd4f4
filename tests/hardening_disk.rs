//! Issue 11, item 2: a full disk must not break the store until a restart. While the data
//! file cannot be written, writes answer 503 with Retry-After and `/ready` says so; once
//! space is back the server writes again by itself, and nothing acknowledged is lost.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted over a temp dir, unmounted when dropped (after the server is gone).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!("mount failed: {}", String::from_utf8_lossy(&o.stderr));
                None
            }
            Err(e) => {
                eprintln!("cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("create filler");
    let mut written = 0u64;
    for chunk in [64 * 1024, 4096, 512, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = f.sync_all();
    written
}

fn variant(r: &Res) -> String {
    r.body["variants"][0]["variant_name"].as_str().unwrap_or("").to_string()
}

fn user(i: usize) -> String {
    // Long ids make the file grow fast, so the disk fills after a few thousand visitors.
    format!("visitor-{i:06}-{}", "x".repeat(100))
}

#[test]
fn a_full_disk_answers_503_and_recovers_without_a_restart() {
    let Some(fs) = Tmpfs::mount("8m") else {
        eprintln!("\n\n!!!!!!!! NOT RUN: hardening_disk needs `mount -t tmpfs` (root) !!!!!!!!\n");
        assert!(std::env::var_os("CI").is_none(), "hardening_disk NOT RUN on CI: mount failed");
        return;
    };
    let data: PathBuf = fs.path().join("data");
    let mut app = TestApp::spawn_in(data, &[]);
    let t = app.register("disk@example.com");
    let sk = app.site_key(&t);
    let exp = app.running_ab(&t, ab_body("disk"))["id"].as_str().unwrap().to_string();

    let mut acked: HashMap<String, String> = HashMap::new();
    let next = std::cell::Cell::new(0usize);
    let assign = |app: &TestApp, acked: &mut HashMap<String, String>| {
        let u = user(next.get());
        next.set(next.get() + 1);
        let r = app.assign(&sk, &exp, &u);
        assert!(r.status == 200 || r.status == 503, "assign {u}: {} {}", r.status, r.text);
        if r.status == 200 {
            assert_eq!(r.body["new"], true, "{}", r.text);
            acked.insert(u, variant(&r));
        } else {
            assert_eq!(r.code(), "SERVER_BUSY", "{}", r.text);
            assert!(r.header("retry-after").is_some(), "503 without Retry-After");
        }
        r.status
    };

    // Before: acknowledged visitors.
    for _ in 0..50 {
        assert_eq!(assign(&app, &mut acked), 200);
    }
    assert_eq!(app.get("/ready", None).status, 200);

    // Full disk: new visitors until the store cannot write.
    let filler = fs.path().join("filler");
    let filled = fill(&filler);
    eprintln!("filler: {filled} bytes");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut refused = 0;
    while refused == 0 {
        assert!(Instant::now() < deadline, "the disk never filled ({} visitors)", next.get());
        if assign(&app, &mut acked) == 503 {
            refused += 1;
        }
    }
    eprintln!("first refusal after {} visitors", next.get());
    let mut not_ready = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if app.get("/ready", None).status == 503 {
            not_ready += 1;
        }
        if assign(&app, &mut acked) == 503 {
            refused += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(not_ready > 0, "/ready never said not ready while the disk was full");
    assert!(refused > 1, "writes went through on a full disk");

    // Space is back: writes resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the store never recovered");
        if app.get("/ready", None).status == 200 && assign(&app, &mut acked) == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..50 {
        assert_eq!(assign(&app, &mut acked), 200);
    }
    assert_eq!(app.get("/ready", None).status, 200);

    // Restart: every acknowledged visitor is still there with the same variant.
    app.stop();
    app.start();
    assert_eq!(app.get("/ready", None).status, 200);
    for (u, v) in &acked {
        let r = app.assign(&sk, &exp, u);
        assert_eq!(r.status, 200, "{u}: {}", r.text);
        assert_eq!(r.body["new"], false, "{u} was acknowledged but is new again");
        assert_eq!(&variant(&r), v, "{u} changed variant");
    }
    eprintln!("{} acknowledged visitors all came back", acked.len());
    app.stop();
    drop(app);
    drop(fs);
}
