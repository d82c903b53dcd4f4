//! Running the commands of `args`: each admin command asks for a typed answer (over the
//! admin socket, or in-process) and renders it.

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::BufRead;

use super::args::*;
use super::render::{header, print_json, safe, table, word};
use crate::admin_socket;
use crate::config::{Config, Loaded, Overrides};
use crate::error::AppError;
use crate::service::Services;
use crate::service::accounts::UserView;
use crate::service::admin::demo::DemoReport;
use crate::service::admin::{
    AdminRequest, AuditReport, BackupReport, CheckOutcome, CheckReport, ExperimentRow, Listing,
    RepairReport, RotateReport,
};
use crate::service::campaigns::WaveAnswer;
use crate::service::csv_dump::CsvExport;
use crate::service::pg_export::PgExport;

/// A command's failure: what to print and the exit code.
pub struct Failure {
    pub message: String,
    pub code: i32,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { message: e.to_string(), code: 1 }
    }
}

pub fn load_config(data: &DataArgs, bind: Option<String>) -> Result<Loaded, Failure> {
    let overrides =
        Overrides { config_file: data.config.clone(), bind, data_dir: data.data_dir.clone() };
    let loaded = Loaded::resolve(&overrides, std::env::vars())?;
    super::logging::apply(&loaded.config.log);
    Ok(loaded)
}

fn read_password(given: Option<String>) -> Result<String, Failure> {
    if let Some(p) = given {
        return Ok(p);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Password: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs an admin request against the server that holds the data dir, or in-process, and
/// reads the answer as `T`.
pub async fn admin<T: DeserializeOwned>(data: &DataArgs, req: AdminRequest) -> Result<T, Failure> {
    admin_with_progress(data, req, &|_| {}).await
}

/// As `admin`, passing the command's progress reports to `progress` as they come.
async fn admin_with_progress<T: DeserializeOwned>(
    data: &DataArgs,
    req: AdminRequest,
    progress: &crate::service::Progress,
) -> Result<T, Failure> {
    let answer = admin_value(data, req, progress).await?;
    serde_json::from_value(answer)
        .map_err(|e| format!("unexpected answer to an admin command: {e}").into())
}

/// The answer as JSON: what the socket carries, and what the in-process run serialises to,
/// so both ways are read by the same code.
async fn admin_value(
    data: &DataArgs,
    req: AdminRequest,
    progress: &crate::service::Progress,
) -> Result<Value, Failure> {
    let loaded = load_config(data, None)?;
    let dir = loaded.config.data_dir().to_path_buf();
    if let Some(answer) = admin_socket::call(&dir, &req, &mut |v| progress(v)).await {
        return answer.map_err(app_failure);
    }
    let services = match Services::open(loaded.config).await {
        Ok(s) => s,
        Err(e) => return Err(e.into()),
    };
    let result = services.admin.run(req, progress).await;
    services.shutdown().await;
    serde_json::to_value(result.map_err(app_failure)?)
        .map_err(|e| format!("cannot render the answer: {e}").into())
}

fn app_failure(e: AppError) -> Failure {
    Failure {
        message: format!("{} ({})", e.message, e.code.as_str()),
        code: if e.status() < 500 { 2 } else { 1 },
    }
}

/// A JSON value as a cell: strings bare, null as `-` (for the untyped simulate answer).
fn s(v: &Value) -> String {
    match v {
        Value::String(s) => safe(s).into_owned(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub async fn run_admin_command(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::User(UserCommand::Create { email, password, name, role, data }) => {
            let password = read_password(password)?;
            let req = AdminRequest::UserCreate { email, password, name, role };
            let u: UserView = admin(&data, req).await?;
            println!("created {} ({}) id {}", safe(&u.email), u.role.as_str(), u.id);
        }
        Command::User(UserCommand::List { data }) => {
            let v: Listing<UserView> = admin(&data, AdminRequest::UserList).await?;
            let mut rows = vec![header(&["EMAIL", "ROLE", "NAME", "CREATED", "ID"])];
            for u in v.items {
                rows.push(vec![
                    safe(&u.email).into_owned(),
                    u.role.as_str().to_string(),
                    safe(&u.name).into_owned(),
                    safe(&u.created_at).into_owned(),
                    u.id.to_string(),
                ]);
            }
            table(&rows);
        }
        Command::User(UserCommand::SetPassword { email, password, data }) => {
            let password = read_password(password)?;
            let req = AdminRequest::UserSetPassword { email, password };
            let u: UserView = admin(&data, req).await?;
            println!("password changed for {}", safe(&u.email));
        }
        Command::User(UserCommand::SetRole { email, role, data }) => {
            let u: UserView = admin(&data, AdminRequest::UserSetRole { email, role }).await?;
            println!("{} is now {}", safe(&u.email), u.role.as_str());
        }
        Command::User(UserCommand::Disable { email, data }) => {
            let req = AdminRequest::UserSetDisabled { email, disabled: true };
            let u: UserView = admin(&data, req).await?;
            println!("{} is disabled", safe(&u.email));
        }
        Command::User(UserCommand::Enable { email, data }) => {
            let req = AdminRequest::UserSetDisabled { email, disabled: false };
            let u: UserView = admin(&data, req).await?;
            println!("{} is enabled", safe(&u.email));
        }
        Command::User(UserCommand::Remove { email, data }) => {
            let u: UserView = admin(&data, AdminRequest::UserRemove { email }).await?;
            println!("removed {} ({})", safe(&u.email), u.id);
        }
        Command::Experiment(ExperimentCommand::List { status, data }) => {
            let req = AdminRequest::ExperimentList { status };
            let v: Listing<ExperimentRow> = admin(&data, req).await?;
            let mut rows = vec![header(&[
                "ID",
                "NAME",
                "TYPE",
                "ALLOCATION",
                "STATUS",
                "VISITORS",
                "CONVERSIONS",
            ])];
            for e in v.items {
                let status = if e.archived {
                    format!("{} (archived)", word(&e.status))
                } else {
                    word(&e.status)
                };
                rows.push(vec![
                    e.id.to_string(),
                    safe(&e.name).into_owned(),
                    word(&e.exp_type),
                    word(&e.allocation),
                    status,
                    e.visitors.to_string(),
                    e.conversions.to_string(),
                ]);
            }
            if rows.len() == 1 {
                println!("no experiments");
            } else {
                table(&rows);
            }
        }
        Command::Experiment(ExperimentCommand::Show { id, data }) => {
            // The experiment and its analytics as the API answers them.
            print_json(&admin::<Value>(&data, AdminRequest::ExperimentShow { id }).await?);
        }
        Command::Check { experiment, data } => {
            let v: CheckReport = admin(&data, AdminRequest::Check { experiment }).await?;
            for row in &v.experiments {
                let verdict = if row.ok { "ok" } else { "MISMATCH" };
                match &row.outcome {
                    CheckOutcome::Failed { error } => {
                        println!("{}  ERROR  {}", row.experiment, safe(error))
                    }
                    CheckOutcome::Counted { visitors, conversions, .. } => println!(
                        "{}  {verdict}  {visitors} visitors, {conversions} conversions",
                        row.experiment
                    ),
                }
            }
            if !v.ok {
                return Err(Failure {
                    message:
                        "counters disagree with the records: run `samplit repair --experiment ID`"
                            .into(),
                    code: 3,
                });
            }
            println!("all counters match the stored records");
        }
        Command::Repair { experiment, data } => {
            let v: RepairReport = admin(&data, AdminRequest::Repair { experiment }).await?;
            if v.repaired.is_empty() {
                println!("nothing to repair: every state is readable");
            }
            for r in v.repaired {
                println!(
                    "rebuilt {}: {} visitors, {} conversions",
                    r.experiment, r.visitors, r.conversions
                );
            }
        }
        Command::Keys(KeysCommand::Rotate { data }) => {
            let v: RotateReport = admin(&data, AdminRequest::KeysRotate).await?;
            println!("re-encrypted {} bandit states under a new key", v.states);
        }
        Command::Config(ConfigCommand::Show { bind, data }) => {
            let loaded = load_config(&data, bind)?;
            match &loaded.file {
                Some(f) => println!("# config file: {}", f.display()),
                None => println!("# config file: none (defaults and environment)"),
            }
            print!("{}", loaded.config.redacted_toml());
        }
        Command::Healthcheck { bind, data } => {
            let loaded = load_config(&data, bind)?;
            healthcheck(&loaded.config)?;
            println!("ok");
        }
        Command::Simulate {
            rates,
            visitors,
            repetitions,
            seed,
            floor,
            update_every,
            json,
            data,
        } => {
            simulate(rates, visitors, repetitions, seed, floor, update_every, json, &data)?;
        }
        Command::Demo { out, visitors, seed, password, data } => {
            let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
                "sending {visitors} simulated visitors through assign and convert"
            ));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let v =
                admin::<DemoReport>(&data, AdminRequest::Demo { visitors, seed, password }).await;
            bar.finish_and_clear();
            let v = v?;
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("matrix.csv"), &v.matrix_csv)?;
            // Through a JSON value, so the keys are sorted as they always were.
            let meta = serde_json::to_value(&v.metadata)
                .and_then(|m| serde_json::to_string_pretty(&m))
                .unwrap_or_default();
            std::fs::write(out.join("metadata.json"), meta)?;
            let m = &v.metadata;
            println!("{}", v.matrix_csv);
            println!("true best:       {}", m.true_best);
            println!(
                "identified best: {} (probability of being best {:.3})",
                m.identified_best, m.identified_prob_best
            );
            let detected = m.interaction.as_ref().is_some_and(|i| i.detected);
            println!("interaction detected: {detected}");
            println!("recommendation: {}", safe(&m.recommendation.reason));
            println!(
                "wrote {} and {}",
                out.join("matrix.csv").display(),
                out.join("metadata.json").display()
            );
            let email = safe(&v.account.email);
            match &v.account.password {
                Some(p) => println!("dashboard login: {email} / {p}"),
                None => println!("dashboard login: {email} (existing account)"),
            }
        }
        Command::Backup { out, without_secrets, data } => {
            let out = std::path::absolute(&out)?;
            let bar = indicatif::ProgressBar::new_spinner()
                .with_message(format!("copying a snapshot to {}", out.display()));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let req = AdminRequest::Backup { out: out.display().to_string(), without_secrets };
            let v = admin::<BackupReport>(&data, req).await;
            bar.finish_and_clear();
            let v = v?;
            println!("backup written to {} ({} rows)", out.display(), v.rows);
            if !v.secrets.is_empty() {
                let names = serde_json::to_string(&v.secrets).unwrap_or_default();
                println!("secrets included: {names} (keep this backup private)");
            } else if v.secrets_in_config {
                println!(
                    "the secrets are in your configuration, not the data dir: keep them with the backup"
                );
            } else {
                println!("secrets left out: the copy needs jwt.key and state.key to serve");
            }
            println!("start it with: samplit serve --data-dir {}", out.display());
        }
        Command::Restore { backup, force, data } => restore(&backup, force, &data).await?,
        Command::Compact { data } => compact(&data).await?,
        Command::Export(ExportCommand::Postgres { url, schema, full, batch_rows, data }) => {
            let bar = progress_bar();
            let b = bar.clone();
            let req =
                AdminRequest::ExportPostgres { url, schema, full, batch_rows: Some(batch_rows) };
            let v =
                admin_with_progress::<PgExport>(&data, req, &move |p| show_progress(&b, &p)).await;
            bar.finish_and_clear();
            let v = v?;
            println!(
                "exported to {} (schema {}){}: {} experiments changed, {} removed, {} assignments, {} conversions, {} audit entries",
                safe(&v.target),
                safe(&v.schema),
                if v.resumed { ", finishing an interrupted run" } else { "" },
                v.experiments,
                v.experiments_deleted,
                v.assignments,
                v.conversions,
                v.audit_log,
            );
            println!("up to commit {}; run it again to send only what is new", v.commit_seq);
        }
        Command::Export(ExportCommand::Csv { out, data }) => {
            let out = std::path::absolute(&out)?;
            let bar = progress_bar();
            let b = bar.clone();
            let req = AdminRequest::ExportCsv { out: out.display().to_string() };
            let v =
                admin_with_progress::<CsvExport>(&data, req, &move |p| show_progress(&b, &p)).await;
            bar.finish_and_clear();
            let v = v?;
            for (table, rows) in &v.tables {
                println!("{:<22} {rows:>10} rows", format!("{table}.csv"));
            }
            println!("written to {}", out.display());
        }
        Command::Campaign(CampaignCommand::Wave { experiment, recipients, links, data }) => {
            let text = if recipients.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&recipients)
                    .map_err(|e| format!("cannot read {}: {e}", recipients.display()))?
            };
            let recipients = super::campaign::read_recipients(&text);
            if recipients.is_empty() {
                return Err(Failure {
                    message: "the recipients file names no one".into(),
                    code: 2,
                });
            }
            let req = AdminRequest::CampaignWave { experiment, recipients, links };
            let v: WaveAnswer = admin(&data, req).await?;
            print!("{}", super::campaign::wave_csv(&v));
            eprintln!("wave {}: {} recipients", v.wave, v.recipients.len());
        }
        Command::Audit(AuditCommand::Verify { data }) => {
            let v: AuditReport = admin(&data, AdminRequest::AuditVerify).await?;
            if !v.ok {
                for b in &v.broken {
                    eprintln!("BROKEN: owner {} entry {}: {}", b.owner, b.seq, safe(&b.reason));
                }
                return Err(Failure { message: "the audit trail does not verify".into(), code: 3 });
            }
            println!("audit trail intact: {} entries verified", v.checked);
        }
        Command::Serve(_) => unreachable!("serve is dispatched by main"),
    }
    Ok(())
}

/// A bar for admin work that reports `{phase, done, total}`; hidden when not on a terminal.
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg:<24} [{bar:30}] {percent:>3}% {elapsed_precise} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn show_progress(bar: &indicatif::ProgressBar, p: &crate::service::ProgressEvent) {
    if let Some(total) = p.total {
        bar.set_length(total.max(1));
    }
    if let Some(done) = p.done {
        bar.set_position(done);
    }
    bar.set_message(p.phase.clone());
}

#[allow(clippy::too_many_arguments)]
fn simulate(
    rates: Vec<f64>,
    visitors: u64,
    repetitions: u32,
    seed: Option<u64>,
    floor: Option<f64>,
    update_every: u64,
    json: bool,
    data: &DataArgs,
) -> Result<(), Failure> {
    use crate::service::simulate::{SimArm, SimRequest, execute, plan};
    let loaded = load_config(data, None)?;
    let req = SimRequest {
        arms: rates.iter().map(|&r| SimArm { name: None, true_rate: r }).collect(),
        visitors,
        strategies: None,
        seed,
        repetitions: Some(repetitions),
        floor,
        update_every: Some(update_every),
        burn_in: None,
        stop_rule: None,
    };
    let plan = plan(req, &loaded.config.engine).map_err(app_failure)?;
    let bar = indicatif::ProgressBar::new(plan.work());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} visitors  {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let v = execute(&plan, &mut |n| {
        bar.inc(n);
        true
    })
    .ok_or("the simulation stopped")?;
    bar.finish_and_clear();
    if json {
        print_json(&v);
        return Ok(());
    }
    println!(
        "{} arms, {} visitors, {} repetition(s), seed {}",
        rates.len(),
        visitors,
        repetitions,
        v.seed
    );
    for r in &v.results {
        let shares: Vec<String> =
            r.allocations.iter().map(|a| format!("{:.1}%", 100.0 * a / visitors as f64)).collect();
        let name = serde_json::to_value(r.strategy).unwrap_or_default();
        println!(
            "{:<9} conversions {:>10.1}  regret {:>10.1} ± {:<7.1} traffic {}",
            s(&name),
            r.conversions,
            r.regret,
            r.regret_se,
            shares.join(" ")
        );
        if r.strategy == crate::service::simulate::StrategyName::Adaptive {
            println!("          of which the floor costs {:.1}", r.floor_cost);
        }
    }
    Ok(())
}

/// Compacts a stopped data dir in place, with a spinner (redb reports no progress).
async fn compact(data: &DataArgs) -> Result<(), Failure> {
    let loaded = load_config(data, None)?;
    let dir = loaded.config.data_dir().to_path_buf();
    if admin_socket::call(&dir, &AdminRequest::UserList, &mut |_| {}).await.is_some() {
        return Err(format!(
            "a server is running on {}; stop it before compacting (the file must not change meanwhile)",
            dir.display()
        )
        .into());
    }
    let bar = indicatif::ProgressBar::new_spinner()
        .with_message(format!("compacting {}", dir.join(crate::store::DB_FILE).display()));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let d = dir.clone();
    let r = tokio::task::spawn_blocking(move || crate::store::Store::compact(&d)).await;
    bar.finish_and_clear();
    let (before, after) = r.map_err(|e| e.to_string())??;
    println!(
        "compacted {}: {before} bytes -> {after} bytes ({} bytes given back)",
        dir.display(),
        before.saturating_sub(after)
    );
    Ok(())
}

async fn restore(backup: &std::path::Path, force: bool, data: &DataArgs) -> Result<(), Failure> {
    use crate::service::secrets::{JWT_FILE, LINK_FILE, STATE_FILE};
    use crate::store::DB_FILE;
    let loaded = load_config(data, None)?;
    let dir = loaded.config.data_dir().to_path_buf();
    let src = backup.join(DB_FILE);
    if !src.is_file() {
        return Err(format!("{} is not a Samplit backup (no {DB_FILE})", backup.display()).into());
    }
    if admin_socket::call(&dir, &AdminRequest::UserList, &mut |_| {}).await.is_some() {
        return Err(
            format!("a server is running on {}; stop it before restoring", dir.display()).into()
        );
    }
    let target = dir.join(DB_FILE);
    if target.exists() {
        if !force {
            return Err(format!(
                "{} already holds data; pass --force to replace it (the old file is kept aside)",
                dir.display()
            )
            .into());
        }
        // Holding the store proves no other process uses it right now. A damaged file is
        // what a restore is for: redb held its lock while it found the damage.
        match crate::store::Store::open(&dir) {
            Ok(store) => drop(store),
            Err(crate::store::StoreError::Damaged { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::rename(&target, dir.join(format!("{DB_FILE}.before-restore")))?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&src, &target)?;
    for name in [JWT_FILE, STATE_FILE, LINK_FILE] {
        let from = backup.join(name);
        if from.is_file() {
            let text = std::fs::read_to_string(&from)?;
            crate::service::secrets::write_private(&dir.join(name), &text)?;
        }
    }
    let store = crate::store::Store::open(&dir)?;
    // Each restore starts a history of its own (see `Store::renew_instance_id`).
    {
        use crate::store::api::ExportStore;
        store.renew_instance_id().await?;
        let rows = store.row_count()?;
        println!("restored {} into {} ({rows} rows)", backup.display(), dir.display());
    }
    Ok(())
}

/// GET /health over a plain socket: no HTTP client needed for one request.
fn healthcheck(config: &Config) -> Result<(), Failure> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = config.server.bind.parse()?;
    let addr = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let timeout = std::time::Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("no server at {addr}: {e}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    let _ = stream.read_to_string(&mut buf);
    if buf.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("unhealthy: {}", buf.lines().next().unwrap_or("no answer")).into())
    }
}

/// `samplit serve`: open the data dir (failing at once if another server holds it), bind,
/// print where things are, serve until SIGINT or SIGTERM, then drain.
pub async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let loaded = load_config(&args.data, args.bind.clone())?;
    let config = loaded.config.clone();
    let bind = config.server.bind.clone();
    let data_dir = config.data_dir().to_path_buf();
    // Before opening anything: a bad webhooks.ca_file stops the start with its name.
    let webhook_client = crate::service::outbound::client(&config)?;
    let services = Services::open(config).await?;
    services.integrations.set_client(webhook_client.clone());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    services.set_listen_addr(addr);
    let socket = admin_socket::bind(&data_dir)
        .map_err(|e| format!("cannot create the admin socket: {e}"))?;
    tokio::spawn(admin_socket::run(socket, services.clone()));
    let worker = services.clone();
    tokio::spawn(async move { worker.run_webhooks(webhook_client).await });
    let mailer = services.clone();
    tokio::spawn(async move { mailer.run_notifications().await });

    let shutdown = shutdown_signal();
    let shown = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match &loaded.file {
        Some(f) => println!("samplit: config file {}", shown(f).display()),
        None => println!("samplit: no config file (defaults and SAMPLIT_* environment)"),
    }
    println!("samplit: data in {}", shown(&data_dir).display());
    if loaded.config.notifications.enabled() {
        println!("samplit: email via {}", loaded.config.notifications.redacted_url());
    }
    println!("samplit: listening on http://{addr} — open {} in a browser", services.public_url());
    if addr.ip().is_unspecified() && loaded.config.server.public_url.is_empty() {
        println!(
            "samplit: hint: set server.public_url so snippets point at an address browsers can reach"
        );
    }

    let result = crate::http::serve(services.clone(), listener, shutdown).await;
    tracing::info!("shutting down: finishing the batch being committed");
    services.shutdown().await;
    let _ = std::fs::remove_file(admin_socket::path(&data_dir));
    result.map_err(Failure::from)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before the caller says
/// it is listening: a signal that arrives in between must stop the server gracefully, not
/// kill it by the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
