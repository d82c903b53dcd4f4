//! Logging to stderr. It starts from the environment alone (SAMPLIT_LOG__LEVEL and
//! SAMPLIT_LOG__FORMAT), so a config file that fails to load is still reported, and is
//! switched to the config's `[log]` settings (defaults < samplit.toml < env < flags) as soon
//! as a command has loaded them.

use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

static HANDLE: OnceLock<reload::Handle<Boxed, Registry>> = OnceLock::new();

/// The filter and the formatter as one layer. The filter is a plain (global) layer rather
/// than a per-layer filter: a per-layer filter is registered once, when the subscriber is
/// built, and would not be on a layer swapped in by `reload`.
fn layer(level: &str, json: bool) -> Boxed {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, not in a file or a log collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    if json { filter.and_then(fmt.json()).boxed() } else { filter.and_then(fmt).boxed() }
}

/// Installs the subscriber from the environment alone. Called once, first thing.
pub fn init_from_env() {
    let level = std::env::var("SAMPLIT_LOG__LEVEL").unwrap_or_else(|_| "info".into());
    let json = std::env::var("SAMPLIT_LOG__FORMAT").as_deref() == Ok("json");
    let (layer, handle) = reload::Layer::new(layer(&level, json));
    if tracing_subscriber::registry().with(layer).try_init().is_ok() {
        let _ = HANDLE.set(handle);
    }
}

/// Switches to the loaded configuration's level and format.
pub fn apply(log: &crate::config::LogConfig) {
    let Some(handle) = HANDLE.get() else { return };
    let bad_level = EnvFilter::try_new(&log.level).is_err();
    if handle.reload(layer(&log.level, log.format == "json")).is_err() {
        return;
    }
    if bad_level {
        tracing::warn!(level = %log.level, "log.level is not a valid filter; logging at info");
    }
}
