//! A throwaway PostgreSQL cluster from the system's `initdb`/`pg_ctl` (Debian's `postgresql`
//! package), in a temp dir on a free port, stopped when dropped. When PostgreSQL is missing
//! the test says so loudly, and fails under CI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    pub port: u16,
    pub password: String,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Root may not run PostgreSQL: then every command runs as the `postgres` user.
    run_as: Option<String>,
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Postgres {
    /// None (after a loud message) when PostgreSQL is not installed, outside CI.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            let msg = "POSTGRESQL TEST NOT RUN: initdb/pg_ctl not found under \
                       /usr/lib/postgresql/*/bin (apt-get install postgresql; .ci/run does this)";
            if std::env::var_os("CI").is_some() {
                panic!("{msg}");
            }
            eprintln!("\n!!!!! {msg} !!!!!\n");
            return None;
        };
        let run_as = is_root().then(|| "postgres".to_string());
        let dir = tempfile::tempdir().expect("temp dir");
        let password = format!("pw-{}", std::process::id());
        std::fs::write(dir.path().join("pwfile"), &password).unwrap();
        if let Some(user) = &run_as {
            let ok = Command::new("chown")
                .args(["-R", &format!("{user}:{user}")])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the cluster dir to {user} failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = Postgres { port, password, bin, dir, run_as };
        let data = pg.dir.path().join("data");
        let pwfile = pg.dir.path().join("pwfile");
        pg.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "samplit",
                "--pwfile",
                path(&pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("log");
        pg.run("pg_ctl", &["-D", path(&data), "-l", path(&log), "-o", &opts, "-w", "start"]);
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd.args(args).output().unwrap_or_else(|e| panic!("run {tool}: {e}"));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            panic!(
                "{tool} failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://samplit:{}@127.0.0.1:{}/postgres", self.password, self.port)
    }

    /// Runs `sql` (with the export's schema first on the search path) and returns every row
    /// as text (NULL as "NULL").
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) =
                tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            let sql = format!("SET search_path TO samplit, public; {sql}");
            let msgs = client.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            msgs.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect())
                    }
                    _ => None,
                })
                .collect()
        })
    }

    /// The single value `sql` selects.
    pub fn value(&self, sql: &str) -> String {
        self.query(sql).first().and_then(|r| r.first()).cloned().unwrap_or_default()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd.args(["-D", path(&data), "-m", "immediate", "stop"]).output();
    }
}
