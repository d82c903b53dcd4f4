//! The `samplit` executable: parse the command line and dispatch.

use clap::Parser;

// The hot path allocates small strings per request (ids, JSON answers); mimalloc's
// thread-local free lists make that markedly cheaper than glibc malloc under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use samplit::cli::{self, Cli, Command, Failure};

fn main() {
    let args = Cli::parse();
    // From the environment until a command has loaded the config, which then takes over.
    cli::logging::init_from_env();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("samplit: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result: Result<(), Failure> = runtime.block_on(async move {
        match args.command {
            None => cli::serve(args.serve).await,
            Some(Command::Serve(a)) => cli::serve(a).await,
            Some(other) => cli::run_admin_command(other).await,
        }
    });
    if let Err(f) = result {
        eprintln!("samplit: {}", f.message);
        std::process::exit(f.code);
    }
}
