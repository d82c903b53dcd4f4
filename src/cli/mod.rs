//! The command line: `samplit serve` (the default) and the admin commands. Admin commands
//! go to the running server over its admin socket when there is one, and open the data
//! dir themselves when there is not; the user types the same thing either way, and sees the
//! same answer: both ways yield the same typed result, rendered by the same code.
//!
//! `args` declares the commands and flags (clap), `commands` runs them, `render` shows
//! their answers, `logging` sets up stderr logging.

mod args;
mod campaign;
mod commands;
pub mod logging;
pub mod render;

pub use args::{
    AuditCommand, CampaignCommand, Cli, Command, ConfigCommand, DataArgs, ExperimentCommand,
    ExportCommand, KeysCommand, ServeArgs, UserCommand,
};
pub use commands::{Failure, admin, load_config, run_admin_command, serve};
pub use render::print_json;
