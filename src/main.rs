//! The `samplit` executable: parse the command line and dispatch.

use clap::Parser;

// The hot path allocates small strings per request (ids, JSON answers); mimalloc's
// thread-local free lists make that markedly cheaper than glibc malloc under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use samplit::cli::{self, Cli, Command, Failure};

fn init_logging() {
    // Logging settings come from the config, but the config may fail to load; read the two
    // log settings straight from the environment first so that failure is logged too.
    let level = std::env::var("SAMPLIT_LOG__LEVEL").unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("SAMPLIT_LOG__FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() {
    let args = Cli::parse();
    init_logging();
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
