//! The command line's shape: every command and flag, with help text and examples. Only
//! clap definitions live here; `commands` runs them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// Email and push campaigns: send waves of recipients
    #[command(subcommand)]
    Campaign(CampaignCommand),
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
        /// Leave out jwt.key, state.key and link.key (the copy then needs the secrets from elsewhere)
        #[arg(long)]
        without_secrets: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Compact the data file: give back to the file system the space of pages that earlier
    /// commits freed (the server must be stopped; the data is unchanged)
    #[command(after_help = "Example:\n  samplit compact --data-dir ./data")]
    Compact {
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
    /// Lock a user out: no login, and their tokens and API keys stop working at once
    #[command(after_help = "Example:\n  samplit user disable --email ana@example.com")]
    Disable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Let a disabled user back in (their API keys work again; old sessions stay ended)
    #[command(after_help = "Example:\n  samplit user enable --email ana@example.com")]
    Enable {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Remove a user and their API keys (their experiments are kept but unreachable)
    #[command(after_help = "Example:\n  samplit user remove --email ana@example.com")]
    Remove {
        #[arg(long)]
        email: String,
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
pub enum CampaignCommand {
    /// Assign a wave of recipients under the campaign's current weights and print, as CSV,
    /// what to send each one: user_id, variant_name, subject (content.text), body
    /// (content.html), open_url (put it in an <img>), then link_1..link_N (the --link URLs
    /// rewritten to count clicks)
    #[command(
        after_help = "The recipients file holds one id per line, or CSV whose first column is the id (a first line `user_id`, `id`, `email` or `recipient` is taken as a header). At most 10,000 recipients per wave; a recipient sent to before keeps their variant.

Examples:
  samplit campaign wave --experiment 0b6f2c1e-... --recipients list.txt > wave1.csv
  samplit campaign wave --experiment 0b6f2c1e-... --recipients users.csv \
      --link https://shop.example/sale --link https://shop.example/help > wave2.csv"
    )]
    Wave {
        /// The campaign experiment's id (it must be running)
        #[arg(long, value_name = "ID")]
        experiment: String,
        /// File of recipient ids ("-" reads stdin)
        #[arg(long, value_name = "FILE")]
        recipients: PathBuf,
        /// A link the message contains (http or https); repeat for several
        #[arg(long = "link", value_name = "URL")]
        links: Vec<String>,
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
