//! `samplit export postgres` and `samplit export csv` against the real binary and a real
//! PostgreSQL cluster the test starts itself.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use common::{TestApp, ab_body};
use postgres::Postgres;
use serde_json::json;

fn count(pg: &Postgres, table: &str) -> u64 {
    pg.value(&format!("SELECT count(*) FROM {table}")).parse().unwrap()
}

/// A first export copies everything, a second sends nothing, new traffic and a status
/// change are sent and nothing else, `--full` changes nothing, and the data answers the
/// questions a SQL user asks.
#[test]
fn postgres_export_is_complete_incremental_and_idempotent() {
    let Some(pg) = Postgres::start() else { return };
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("exported"))["id"].as_str().unwrap().to_string();
    for i in 0..300 {
        assert_eq!(app.assign(&sk, &id, &format!("u-{i:03}")).status, 200);
        if i % 3 == 0 {
            assert_eq!(app.convert(&sk, &id, &format!("u-{i:03}")).status, 200);
        }
    }
    let url = pg.url();
    let export = |extra: &[&str]| {
        let mut args = vec!["export", "postgres", "--url", &url, "--batch-rows", "64"];
        args.extend_from_slice(extra);
        let (code, out, err) = app.cli(&args, None);
        assert_eq!(code, 0, "{out}{err}");
        out
    };

    let out = export(&[]);
    assert!(out.contains("300 assignments, 100 conversions"), "{out}");
    assert_eq!(count(&pg, "assignments"), 300);
    assert_eq!(count(&pg, "conversions"), 100);
    assert_eq!(count(&pg, "experiments"), 1);
    assert_eq!(count(&pg, "experiment_elements"), 1);
    assert_eq!(count(&pg, "element_variants"), 2);
    assert_eq!(count(&pg, "experiment_arms"), 2);
    assert_eq!(pg.value("SELECT status FROM experiments"), "running");
    assert_eq!(pg.value("SELECT pending_seq IS NULL FROM samplit_export_state"), "t");
    // The per-arm numbers a SQL user computes match the API's analytics.
    let analytics = app.get(&format!("/api/v1/analytics/experiments/{id}"), Some(&t)).body;
    let by_arm = pg.query(
        "SELECT r.arm_id, count(a.*), count(c.*) FROM experiment_arms r \
         LEFT JOIN assignments a ON a.experiment_id = r.experiment_id AND a.arm_index = r.arm_index \
         LEFT JOIN conversions c ON c.experiment_id = a.experiment_id AND c.user_id = a.user_id \
         GROUP BY r.arm_id ORDER BY r.arm_id",
    );
    for arm in analytics["arms"].as_array().unwrap() {
        let row = by_arm.iter().find(|r| r[0] == arm["arm_id"].as_str().unwrap());
        let row = row.unwrap_or_else(|| panic!("{by_arm:?} vs {arm}"));
        assert_eq!(row[1], arm["allocations"].to_string(), "{by_arm:?} vs {arm}");
        assert_eq!(row[2], arm["conversions"].to_string(), "{by_arm:?} vs {arm}");
    }
    // The audit chain arrives whole: same entries and the same head hash as the API's.
    let audit = app.get("/api/v1/audit?limit=100", Some(&t)).body;
    assert_eq!(count(&pg, "audit_log"), audit["total"].as_u64().unwrap());
    assert_eq!(
        pg.value("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1"),
        audit["head"].as_str().unwrap()
    );

    let out = export(&[]);
    assert!(
        out.contains("0 experiments changed, 0 removed, 0 assignments, 0 conversions"),
        "{out}"
    );

    for i in 300..350 {
        app.assign(&sk, &id, &format!("u-{i:03}"));
        if i % 5 == 0 {
            app.convert(&sk, &id, &format!("u-{i:03}"));
        }
    }
    let r = app.post(&format!("/api/v1/experiments/{id}/pause"), Some(&t), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let out = export(&[]);
    assert!(
        out.contains("1 experiments changed, 0 removed, 50 assignments, 10 conversions"),
        "{out}"
    );
    assert_eq!(pg.value("SELECT status FROM experiments"), "paused");
    assert_eq!(count(&pg, "assignments"), 350);
    assert_eq!(count(&pg, "conversions"), 110);

    let out = export(&["--full"]);
    assert!(out.contains("350 assignments, 110 conversions"), "{out}");
    assert_eq!(count(&pg, "assignments"), 350, "a full re-run upserts, it does not duplicate");
    assert_eq!(count(&pg, "conversions"), 110);

    // Clear errors, and nothing written by a refused run.
    let bad = url.replace(&pg.password, "wrong");
    let (code, out, err) = app.cli(&["export", "postgres", "--url", &bad], None);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("refused the login"), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("postgres://samplit:x@127.0.0.1:{closed}/postgres");
    let (code, _, err) = app.cli(&["export", "postgres", "--url", &unreachable], None);
    assert_ne!(code, 0);
    assert!(err.contains("cannot connect"), "{err}");
    let (code, _, err) = app.cli(&["export", "postgres", "--url", "mysql://x"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("url"), "{err}");
    let (code, _, err) =
        app.cli(&["export", "postgres", "--url", &url, "--schema", "Robert'); DROP"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("schema"), "{err}");
    assert_eq!(count(&pg, "assignments"), 350);

    // A schema with a table of one of our names that an export did not make is left alone.
    pg.query("CREATE TABLE public.experiments (id uuid PRIMARY KEY, updated_at timestamptz)");
    pg.query("INSERT INTO public.experiments VALUES (gen_random_uuid(), now())");
    let (code, _, err) =
        app.cli(&["export", "postgres", "--url", &url, "--schema", "public"], None);
    assert_ne!(code, 0);
    assert!(err.contains("did not create"), "{err}");
    assert_eq!(count(&pg, "public.experiments"), 1);
    assert_eq!(pg.value("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "1");

    // The audit chain can be recomputed from SQL alone.
    let entry = pg.query("SELECT entry, hash FROM audit_log ORDER BY seq LIMIT 1");
    let v: serde_json::Value = serde_json::from_str(&entry[0][0]).unwrap();
    assert_eq!(v["hash"].as_str().unwrap(), entry[0][1]);
}

/// A backup is another data set once it serves: its exports do not land on the original's.
#[test]
fn a_backup_copy_does_not_export_onto_the_originals_cursor() {
    let Some(pg) = Postgres::start() else { return };
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("copied"))["id"].as_str().unwrap().to_string();
    for i in 0..10 {
        app.assign(&sk, &id, &format!("u-{i}"));
    }
    let url = pg.url();
    let out = tempfile::tempdir().unwrap();
    let copy = out.path().join("copy");
    let (code, o, e) = app.cli(&["backup", copy.to_str().unwrap()], None);
    assert_eq!(code, 0, "{o}{e}");
    let (code, o, e) = app.cli(&["export", "postgres", "--url", &url], None);
    assert_eq!(code, 0, "{o}{e}");
    let (code, _, err) = common::run_cli(&["export", "postgres", "--url", &url], &copy, None, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("another Samplit data set"), "{err}");
    let args = ["export", "postgres", "--url", &url, "--schema", "copy"];
    let (code, o, e) = common::run_cli(&args, &copy, None, &[]);
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(count(&pg, "copy.assignments"), 10);

    // Each restore of that backup is a data set of its own too.
    let restored = out.path().join("restored");
    let (code, o, e) = common::run_cli(&["restore", copy.to_str().unwrap()], &restored, None, &[]);
    assert_eq!(code, 0, "{o}{e}");
    let (code, _, err) = common::run_cli(&args, &restored, None, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("another Samplit data set"), "{err}");
}

/// A batch that fails is rolled back whole; the next run finishes the interrupted range
/// and the copy ends exact: no gap, no duplicate.
#[test]
fn an_interrupted_postgres_export_resumes_where_it_stopped() {
    let Some(pg) = Postgres::start() else { return };
    let app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("resumed"))["id"].as_str().unwrap().to_string();
    let url = pg.url();
    let (code, out, err) = app.cli(&["export", "postgres", "--url", &url], None);
    assert_eq!(code, 0, "{out}{err}");
    // The target fails on one row; key order puts it after 200 rows and before 100 more.
    pg.query(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.user_id = 'm-poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE INSERT ON assignments FOR EACH ROW EXECUTE FUNCTION poison();",
    );
    let users: Vec<String> = (0..200)
        .map(|i| format!("a-{i:03}"))
        .chain(["m-poison".to_string()])
        .chain((0..100).map(|i| format!("z-{i:03}")))
        .collect();
    for u in &users {
        assert_eq!(app.assign(&sk, &id, u).status, 200);
    }
    let args = ["export", "postgres", "--url", &url, "--batch-rows", "50"];
    let (code, out, err) = app.cli(&args, None);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("poisoned row"), "{err}");
    assert_eq!(count(&pg, "assignments"), 200, "whole batches only");
    assert_eq!(pg.value("SELECT pending_table FROM samplit_export_state"), "assignments");

    pg.query("DROP TRIGGER poison ON assignments");
    // More traffic meanwhile: the resumed run must pick it up too.
    for i in 0..20 {
        app.assign(&sk, &id, &format!("b-{i:03}"));
    }
    let (code, out, err) = app.cli(&args, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("finishing an interrupted run"), "{out}");
    assert_eq!(count(&pg, "assignments"), 321);
    assert_eq!(
        pg.value("SELECT count(DISTINCT assignment_id) FROM assignments"),
        "321",
        "every assignment once"
    );
    assert_eq!(pg.value("SELECT pending_seq IS NULL FROM samplit_export_state"), "t");

    // The same when the conversions are where it stops.
    pg.query(
        "CREATE TRIGGER poison BEFORE INSERT ON conversions FOR EACH ROW EXECUTE FUNCTION poison();",
    );
    for u in &users {
        assert_eq!(app.convert(&sk, &id, u).status, 200);
    }
    let (code, _, err) = app.cli(&args, None);
    assert_ne!(code, 0);
    assert!(err.contains("poisoned row"), "{err}");
    assert_eq!(count(&pg, "conversions"), 200, "whole batches only");
    assert_eq!(pg.value("SELECT pending_table FROM samplit_export_state"), "conversions");
    pg.query("DROP TRIGGER poison ON conversions");
    let (code, out, err) = app.cli(&args, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("finishing an interrupted run"), "{out}");
    assert!(out.contains("0 assignments, 101 conversions"), "{out}");
    assert_eq!(count(&pg, "conversions"), 301);
    assert_eq!(pg.value("SELECT pending_seq IS NULL FROM samplit_export_state"), "t");
}

/// `samplit export csv` writes the same tables, from a running server and from a stopped one.
#[test]
fn csv_dump_writes_every_table() {
    let mut app = TestApp::spawn();
    let t = app.register("a@example.com");
    let sk = app.site_key(&t);
    let id = app.running_ab(&t, ab_body("dumped"))["id"].as_str().unwrap().to_string();
    for i in 0..40 {
        app.assign(&sk, &id, &format!("=cmd|{i}"));
        if i % 4 == 0 {
            app.convert(&sk, &id, &format!("=cmd|{i}"));
        }
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("dump");
    let check = |dir: &std::path::Path| {
        let lines = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| panic!("{f}: {e}"))
                .lines()
                .count()
        };
        assert_eq!(lines("assignments.csv"), 41);
        assert_eq!(lines("conversions.csv"), 11);
        assert_eq!(lines("experiments.csv"), 2);
        assert_eq!(lines("element_variants.csv"), 3);
        assert_eq!(lines("experiment_arms.csv"), 3);
        assert!(lines("audit_log.csv") >= 3);
        let a = std::fs::read_to_string(dir.join("assignments.csv")).unwrap();
        assert!(a.starts_with("experiment_id,user_id,assignment_id,"), "{a}");
        assert!(a.contains(",'=cmd|1,"), "formula-like ids are defused: {a}");
        assert!(
            std::fs::read_dir(dir)
                .unwrap()
                .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".partial") })
        );
    };
    let (code, stdout, err) = app.cli(&["export", "csv", "--out", dir.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("assignments.csv") && stdout.contains("40 rows"), "{stdout}");
    check(&dir);
    app.stop();
    let dir2 = out.path().join("offline");
    let (code, stdout, err) = app.cli(&["export", "csv", "--out", dir2.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stdout}{err}");
    check(&dir2);
    let file = out.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = app.cli(&["export", "csv", "--out", file.to_str().unwrap()], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a directory"), "{err}");
}
