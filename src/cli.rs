//! The command line: `samplit serve` (the default) and the admin commands. Admin commands
//! go to the running server over its admin socket when there is one, and open the data
//! dir themselves when there is not; the user types the same thing either way.

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;

use crate::admin_socket;
use crate::config::{Config, Loaded, Overrides};
use crate::error::AppError;
use crate::service::Services;
use crate::service::admin::AdminRequest;

#[derive(Parser, Debug)]
#[command(
    name = "samplit",
    args_conflicts_with_subcommands = true,
    version,
    about = "Self-hosted experimentation server: A/B and multi-element tests with adaptive allocation",
    after_help = "Examples:\n  samplit                          serve on 127.0.0.1:8000 with data in ./data\n  samplit serve --bind 0.0.0.0:8080 --data-dir /var/lib/samplit\n  samplit user create --email you@example.com\n  samplit experiment list"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Data directory (default ./data; setting server.data_dir)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default ./samplit.toml when present)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8000; setting server.bind)
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default when no command is given)
    #[command(after_help = "Example:\n  samplit serve --bind 127.0.0.1:8000 --data-dir ./data")]
    Serve(ServeArgs),
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect experiments
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Show the resolved configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 when the server answers /health (for container health checks)
    #[command(after_help = "Example:\n  samplit healthcheck --bind 127.0.0.1:8000")]
    Healthcheck {
        /// Address of the server (default: server.bind from the config)
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Recount every experiment's records and compare them with its counters
    #[command(after_help = "Example:\n  samplit check\n  samplit check --experiment 0b6f...")]
    Check {
        /// Only this experiment
        #[arg(long, value_name = "ID")]
        experiment: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Rebuild bandit state from the assignment and conversion records
    #[command(
        after_help = "Examples:\n  samplit repair                     rebuild every state that cannot be read\n  samplit repair --experiment 0b6f...  rebuild this one"
    )]
    Repair {
        /// Only this experiment (default: every experiment whose state cannot be read)
        #[arg(long, value_name = "ID")]
        experiment: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Manage the bandit-state encryption key
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Simulate adaptive versus fixed allocation on synthetic traffic (no data touched)
    #[command(
        after_help = "Examples:\n  samplit simulate --rates 0.05,0.06 --visitors 20000\n  samplit simulate --rates 0.5,0.4,0.4,0.4,0.4,0.4,0.4,0.4,0.4,0.4 --visitors 100000 --repetitions 20 --floor 0 --update-every 100"
    )]
    Simulate {
        /// True conversion rate of each arm, comma-separated
        #[arg(long, value_delimiter = ',', required = true)]
        rates: Vec<f64>,
        #[arg(long, default_value_t = 10_000)]
        visitors: u64,
        #[arg(long, default_value_t = 1)]
        repetitions: u32,
        /// Seed of the synthetic traffic (default: random)
        #[arg(long)]
        seed: Option<u64>,
        /// Adaptive's minimum share per arm (default: engine.floor)
        #[arg(long)]
        floor: Option<f64>,
        /// Visitors between posterior refreshes
        #[arg(long, default_value_t = crate::service::simulate::DEFAULT_UPDATE_EVERY)]
        update_every: u64,
        /// Print the full result as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Verify the audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Copy the data out: into PostgreSQL (incremental) or as CSV files
    #[command(subcommand)]
    Export(ExportCommand),
    /// Write a consistent snapshot of the data dir to OUT while the server keeps serving
    #[command(
        after_help = "Examples:\n  samplit backup /var/backups/samplit-2026-11-24\n  samplit serve --data-dir /var/backups/samplit-2026-11-24   (the copy starts as it is)"
    )]
    Backup {
        /// Directory to create the copy in (must not hold a data file)
        out: PathBuf,
        /// Leave out jwt.key and state.key (the copy then needs the secrets from elsewhere)
        #[arg(long)]
        without_secrets: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Restore a backup into the data dir (refuses while a server uses it)
    #[command(
        after_help = "Example:\n  samplit restore /var/backups/samplit-2026-11-24 --data-dir ./data"
    )]
    Restore {
        /// A directory written by `samplit backup`
        backup: PathBuf,
        /// Replace an existing data file (it is kept aside as samplit.redb.before-restore)
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Create the demo account and the seed multi-element scenario, send simulated visitors
    /// through the real assign/convert path, and write matrix.csv and metadata.json
    #[command(
        after_help = "Example:\n  samplit demo --out ./demo-output\n  (then log in to the dashboard as demo@samplit.local with the printed password)"
    )]
    Demo {
        /// Where to write matrix.csv and metadata.json
        #[arg(long, default_value = "./samplit-demo", value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        visitors: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Password of the demo account when it is created (default: random, printed)
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (reads the password from stdin when --password is not given)
    #[command(
        after_help = "Example:\n  echo 'a long password' | samplit user create --email ana@example.com --role admin"
    )]
    Create {
        #[arg(long)]
        email: String,
        /// Prefer stdin: a password on the command line shows in the process list
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// admin or member (default member; the first user is always admin)
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List users
    #[command(after_help = "Example:\n  samplit user list")]
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set a user's password (reads it from stdin when --password is not given)
    #[command(
        after_help = "Example:\n  echo 'new long password' | samplit user set-password --email ana@example.com"
    )]
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set a user's role
    #[command(
        after_help = "Example:\n  samplit user set-role --email ana@example.com --role admin"
    )]
    SetRole {
        #[arg(long)]
        email: String,
        /// admin or member
        #[arg(long)]
        role: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// List every experiment of every user
    #[command(after_help = "Example:\n  samplit experiment list --status running")]
    List {
        /// draft, running, paused or completed
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Show one experiment with its results, as JSON
    #[command(after_help = "Example:\n  samplit experiment show 0b6f2c1e-...")]
    Show {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the resolved configuration (defaults < file < environment < flags), secrets redacted
    #[command(after_help = "Example:\n  SAMPLIT_SERVER__BIND=0.0.0.0:8080 samplit config show")]
    Show {
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute every owner's hash chain and name the first broken entry
    #[command(after_help = "Example:\n  samplit audit verify")]
    Verify {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Upsert the data into PostgreSQL, creating the tables if missing; a re-run sends only
    /// what changed since the last export into that schema
    #[command(
        after_help = "Tables: experiments, experiment_elements, element_variants, experiment_arms, \
assignments, conversions, audit_log (and samplit_export_state, the export's cursor).\n\n\
Examples:\n  samplit export postgres --url postgres://samplit:secret@db.internal:5432/analytics\n  \
SAMPLIT_EXPORT_URL=postgres://... samplit export postgres --schema analytics\n  \
samplit export postgres --url 'postgres://samplit@/analytics?host=/var/run/postgresql' --full\n\n\
The server holding the data dir makes the connection: a socket path or localhost is the \
server's."
    )]
    Postgres {
        /// postgres://user:password@host:port/database (or set SAMPLIT_EXPORT_URL, which
        /// keeps the password out of the process list)
        #[arg(long, env = "SAMPLIT_EXPORT_URL", hide_env_values = true)]
        url: String,
        /// PostgreSQL schema to create the tables in (its own, so no table of yours is touched)
        #[arg(long, default_value = "samplit")]
        schema: String,
        /// Send everything again instead of only what changed since the last export
        #[arg(long)]
        full: bool,
        /// Rows per transaction: each is all-or-nothing, and an interrupted export goes on
        /// after the last one committed
        #[arg(long, default_value_t = crate::service::pg_export::DEFAULT_BATCH_ROWS)]
        batch_rows: usize,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write the same tables as CSV files (one per table, header row, RFC 3339 times)
    #[command(after_help = "Example:\n  samplit export csv --out ./samplit-export")]
    Csv {
        /// Directory to write the files in (created if missing; files in it are replaced)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Re-encrypt every bandit state under a newly generated key
    #[command(after_help = "Example:\n  samplit keys rotate")]
    Rotate {
        #[command(flatten)]
        data: DataArgs,
    },
}

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
    Ok(Loaded::resolve(&overrides, std::env::vars())?)
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

/// Runs an admin request against the server that holds the data dir, or in-process.
pub async fn admin(data: &DataArgs, req: AdminRequest) -> Result<Value, Failure> {
    admin_with_progress(data, req, &|_| {}).await
}

/// As `admin`, passing the command's progress reports to `progress` as they come.
async fn admin_with_progress(
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
    let result = services.admin(req, progress).await;
    services.shutdown().await;
    result.map_err(app_failure)
}

fn app_failure(e: AppError) -> Failure {
    Failure {
        message: format!("{} ({})", e.message, e.code.as_str()),
        code: if e.status() < 500 { 2 } else { 1 },
    }
}

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn table(rows: &[Vec<String>]) {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub async fn run_admin_command(cmd: Command) -> Result<(), Failure> {
    match cmd {
        Command::User(UserCommand::Create { email, password, name, role, data }) => {
            let password = read_password(password)?;
            let v = admin(&data, AdminRequest::UserCreate { email, password, name, role }).await?;
            println!("created {} ({}) id {}", s(&v["email"]), s(&v["role"]), s(&v["id"]));
        }
        Command::User(UserCommand::List { data }) => {
            let v = admin(&data, AdminRequest::UserList).await?;
            let mut rows = vec![vec![
                "EMAIL".into(),
                "ROLE".into(),
                "NAME".into(),
                "CREATED".into(),
                "ID".into(),
            ]];
            for u in v["items"].as_array().into_iter().flatten() {
                rows.push(vec![
                    s(&u["email"]),
                    s(&u["role"]),
                    s(&u["name"]),
                    s(&u["created_at"]),
                    s(&u["id"]),
                ]);
            }
            table(&rows);
        }
        Command::User(UserCommand::SetPassword { email, password, data }) => {
            let password = read_password(password)?;
            let v = admin(&data, AdminRequest::UserSetPassword { email, password }).await?;
            println!("password changed for {}", s(&v["email"]));
        }
        Command::User(UserCommand::SetRole { email, role, data }) => {
            let v = admin(&data, AdminRequest::UserSetRole { email, role }).await?;
            println!("{} is now {}", s(&v["email"]), s(&v["role"]));
        }
        Command::Experiment(ExperimentCommand::List { status, data }) => {
            let v = admin(&data, AdminRequest::ExperimentList { status }).await?;
            let mut rows = vec![
                ["ID", "NAME", "TYPE", "ALLOCATION", "STATUS", "VISITORS", "CONVERSIONS"]
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>(),
            ];
            for e in v["items"].as_array().into_iter().flatten() {
                let status = if e["archived"] == Value::Bool(true) {
                    format!("{} (archived)", s(&e["status"]))
                } else {
                    s(&e["status"])
                };
                rows.push(vec![
                    s(&e["id"]),
                    s(&e["name"]),
                    s(&e["type"]),
                    s(&e["allocation"]),
                    status,
                    s(&e["visitors"]),
                    s(&e["conversions"]),
                ]);
            }
            if rows.len() == 1 {
                println!("no experiments");
            } else {
                table(&rows);
            }
        }
        Command::Experiment(ExperimentCommand::Show { id, data }) => {
            print_json(&admin(&data, AdminRequest::ExperimentShow { id }).await?);
        }
        Command::Check { experiment, data } => {
            let v = admin(&data, AdminRequest::Check { experiment }).await?;
            for row in v["experiments"].as_array().into_iter().flatten() {
                let verdict = if row["ok"] == Value::Bool(true) { "ok" } else { "MISMATCH" };
                match row.get("error") {
                    Some(e) => println!("{}  ERROR  {}", s(&row["experiment"]), s(e)),
                    None => println!(
                        "{}  {verdict}  {} visitors, {} conversions",
                        s(&row["experiment"]),
                        s(&row["visitors"]),
                        s(&row["conversions"])
                    ),
                }
            }
            if v["ok"] != Value::Bool(true) {
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
            let v = admin(&data, AdminRequest::Repair { experiment }).await?;
            let rows = v["repaired"].as_array().cloned().unwrap_or_default();
            if rows.is_empty() {
                println!("nothing to repair: every state is readable");
            }
            for r in rows {
                println!(
                    "rebuilt {}: {} visitors, {} conversions",
                    s(&r["experiment"]),
                    s(&r["visitors"]),
                    s(&r["conversions"])
                );
            }
        }
        Command::Keys(KeysCommand::Rotate { data }) => {
            let v = admin(&data, AdminRequest::KeysRotate).await?;
            println!("re-encrypted {} bandit states under a new key", s(&v["states"]));
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
            let v = admin(&data, AdminRequest::Demo { visitors, seed, password }).await;
            bar.finish_and_clear();
            let v = v?;
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join("matrix.csv"), s(&v["matrix_csv"]))?;
            let meta = serde_json::to_string_pretty(&v["metadata"]).unwrap_or_default();
            std::fs::write(out.join("metadata.json"), meta)?;
            let m = &v["metadata"];
            println!("{}", s(&v["matrix_csv"]));
            println!("true best:       {}", s(&m["true_best"]));
            println!(
                "identified best: {} (probability of being best {:.3})",
                s(&m["identified_best"]),
                m["identified_prob_best"].as_f64().unwrap_or(0.0)
            );
            println!("interaction detected: {}", m["interaction"]["detected"]);
            println!("recommendation: {}", s(&m["recommendation"]["reason"]));
            println!(
                "wrote {} and {}",
                out.join("matrix.csv").display(),
                out.join("metadata.json").display()
            );
            match v["account"]["password"].as_str() {
                Some(p) => println!("dashboard login: {} / {p}", s(&v["account"]["email"])),
                None => {
                    println!("dashboard login: {} (existing account)", s(&v["account"]["email"]))
                }
            }
        }
        Command::Backup { out, without_secrets, data } => {
            let out = std::path::absolute(&out)?;
            let bar = indicatif::ProgressBar::new_spinner()
                .with_message(format!("copying a snapshot to {}", out.display()));
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let req = AdminRequest::Backup { out: out.display().to_string(), without_secrets };
            let v = admin(&data, req).await;
            bar.finish_and_clear();
            let v = v?;
            println!("backup written to {} ({} rows)", out.display(), s(&v["rows"]));
            if v["secrets"].as_array().is_some_and(|a| !a.is_empty()) {
                println!("secrets included: {} (keep this backup private)", v["secrets"]);
            } else if v["secrets_in_config"] == Value::Bool(true) {
                println!(
                    "the secrets are in your configuration, not the data dir: keep them with the backup"
                );
            } else {
                println!("secrets left out: the copy needs jwt.key and state.key to serve");
            }
            println!("start it with: samplit serve --data-dir {}", out.display());
        }
        Command::Restore { backup, force, data } => restore(&backup, force, &data).await?,
        Command::Export(ExportCommand::Postgres { url, schema, full, batch_rows, data }) => {
            let bar = progress_bar();
            let b = bar.clone();
            let req =
                AdminRequest::ExportPostgres { url, schema, full, batch_rows: Some(batch_rows) };
            let v = admin_with_progress(&data, req, &move |p| show_progress(&b, &p)).await;
            bar.finish_and_clear();
            let v = v?;
            println!(
                "exported to {} (schema {}){}: {} experiments changed, {} removed, {} assignments, {} conversions, {} audit entries",
                s(&v["target"]),
                s(&v["schema"]),
                if v["resumed"] == Value::Bool(true) {
                    ", finishing an interrupted run"
                } else {
                    ""
                },
                s(&v["experiments"]),
                s(&v["experiments_deleted"]),
                s(&v["assignments"]),
                s(&v["conversions"]),
                s(&v["audit_log"]),
            );
            println!("up to commit {}; run it again to send only what is new", s(&v["commit_seq"]));
        }
        Command::Export(ExportCommand::Csv { out, data }) => {
            let out = std::path::absolute(&out)?;
            let bar = progress_bar();
            let b = bar.clone();
            let req = AdminRequest::ExportCsv { out: out.display().to_string() };
            let v = admin_with_progress(&data, req, &move |p| show_progress(&b, &p)).await;
            bar.finish_and_clear();
            let v = v?;
            for (table, rows) in v["tables"].as_object().into_iter().flatten() {
                println!("{:<22} {rows:>10} rows", format!("{table}.csv"));
            }
            println!("written to {}", out.display());
        }
        Command::Audit(AuditCommand::Verify { data }) => {
            let v = admin(&data, AdminRequest::AuditVerify).await?;
            if v["ok"] != Value::Bool(true) {
                for b in v["broken"].as_array().into_iter().flatten() {
                    eprintln!(
                        "BROKEN: owner {} entry {}: {}",
                        s(&b["owner"]),
                        s(&b["seq"]),
                        s(&b["reason"])
                    );
                }
                return Err(Failure { message: "the audit trail does not verify".into(), code: 3 });
            }
            println!("audit trail intact: {} entries verified", s(&v["checked"]));
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

fn show_progress(bar: &indicatif::ProgressBar, p: &Value) {
    if let Some(total) = p["total"].as_u64() {
        bar.set_length(total.max(1));
    }
    if let Some(done) = p["done"].as_u64() {
        bar.set_position(done);
    }
    if let Some(phase) = p["phase"].as_str() {
        bar.set_message(phase.to_string());
    }
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
    };
    let plan = plan(req, loaded.config.engine.floor).map_err(app_failure)?;
    let bar = indicatif::ProgressBar::new(plan.work());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} visitors  {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let v = serde_json::to_value(execute(&plan, &mut |n| bar.inc(n))).unwrap_or_default();
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
        v["seed"]
    );
    for r in v["results"].as_array().into_iter().flatten() {
        let shares: Vec<String> = r["allocations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| format!("{:.1}%", 100.0 * a.as_f64().unwrap_or(0.0) / visitors as f64))
            .collect();
        println!(
            "{:<9} conversions {:>10.1}  regret {:>10.1} ± {:<7.1} traffic {}",
            s(&r["strategy"]),
            r["conversions"].as_f64().unwrap_or(0.0),
            r["regret"].as_f64().unwrap_or(0.0),
            r["regret_se"].as_f64().unwrap_or(0.0),
            shares.join(" ")
        );
        if r["strategy"] == "adaptive" {
            println!(
                "          of which the floor costs {:.1}",
                r["floor_cost"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

async fn restore(backup: &std::path::Path, force: bool, data: &DataArgs) -> Result<(), Failure> {
    use crate::service::secrets::{JWT_FILE, STATE_FILE};
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
        // Holding the store proves no other process uses it right now.
        drop(crate::store::Store::open(&dir)?);
        std::fs::rename(&target, dir.join(format!("{DB_FILE}.before-restore")))?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&src, &target)?;
    for name in [JWT_FILE, STATE_FILE] {
        let from = backup.join(name);
        if from.is_file() {
            let text = std::fs::read_to_string(&from)?;
            crate::service::secrets::write_private(&dir.join(name), &text)?;
        }
    }
    let store = crate::store::Store::open(&dir)?;
    // Each restore starts a history of its own (see `Store::renew_instance_id`).
    store.renew_instance_id()?;
    let rows = store.row_count()?;
    println!("restored {} into {} ({rows} rows)", backup.display(), dir.display());
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
    let webhook_client = crate::service::outbound::client(&config.webhooks)?;
    let services = Services::open(config).await?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    services.set_listen_addr(addr);
    let socket = admin_socket::bind(&data_dir)
        .map_err(|e| format!("cannot create the admin socket: {e}"))?;
    tokio::spawn(admin_socket::run(socket, services.clone()));
    tokio::spawn(crate::service::webhooks::run(services.clone(), webhook_client));

    let shown = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match &loaded.file {
        Some(f) => println!("samplit: config file {}", shown(f).display()),
        None => println!("samplit: no config file (defaults and SAMPLIT_* environment)"),
    }
    println!("samplit: data in {}", shown(&data_dir).display());
    println!("samplit: listening on http://{addr} — open {} in a browser", services.public_url());
    if addr.ip().is_unspecified() && loaded.config.server.public_url.is_empty() {
        println!(
            "samplit: hint: set server.public_url so snippets point at an address browsers can reach"
        );
    }

    let result = crate::http::serve(services.clone(), listener, shutdown_signal()).await;
    tracing::info!("shutting down: finishing the batch being committed");
    services.shutdown().await;
    let _ = std::fs::remove_file(admin_socket::path(&data_dir));
    result.map_err(Failure::from)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
