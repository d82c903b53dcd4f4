//! Settings, resolved in exactly one place: defaults < samplit.toml < SAMPLIT_* environment
//! < command-line flags. Every key a layer names must exist in the defaults, so a typo is an
//! error that names the key and where it came from instead of a silently ignored setting.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::{Table, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub state: StateConfig,
    pub limits: LimitsConfig,
    pub engine: EngineConfig,
    pub writer: WriterConfig,
    pub webhooks: WebhooksConfig,
    pub outbound: OutboundConfig,
    pub notifications: NotificationsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub mode: Mode,
    pub bind: String,
    pub data_dir: PathBuf,
    /// Base URL that snippets point at; empty means `http://{bind}`.
    pub public_url: String,
    pub body_limit_bytes: usize,
    /// Origins allowed to call the tracker endpoints; `["*"]` allows any.
    pub tracker_cors_origins: Vec<String>,
    /// Origins allowed to call the management API from a browser; empty allows same-origin only.
    pub api_cors_origins: Vec<String>,
    /// Reverse proxies (IPs or CIDR ranges) whose `X-Forwarded-For` names the visitor.
    pub trusted_proxies: Vec<String>,
    /// Seconds a connection may take to send a request's headers, and may sit idle between
    /// two requests; then it is closed.
    pub header_timeout_secs: u64,
    /// Seconds a request may take to send its body; then it is answered 408.
    pub body_timeout_secs: u64,
    /// Seconds a shutdown waits for open requests to finish before dropping them.
    pub shutdown_grace_secs: u64,
}

/// An address range such as `10.0.0.0/8`, `::1/128` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        // Addresses are compared as IPv4 when they are IPv4-mapped; so are ranges.
        if let std::net::IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= 96
        {
            return Some(Cidr { addr: v4.into(), prefix: prefix - 96 });
        }
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(a.to_bits()), u128::from(b.to_bits()), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub open_registration: bool,
    /// HS256 signing key; empty means generated into `<data_dir>/jwt.key` on first start.
    pub jwt_secret: String,
    pub token_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// 64 hex characters (AES-256); empty means generated into `<data_dir>/state.key`.
    pub encryption_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub tracker_per_ip: u32,
    pub tracker_per_site: u32,
    pub api_per_token: u32,
    pub login_per_ip: u32,
    pub simulate_per_ip: u32,
    pub context_max_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Minimum share of traffic each arm of an adaptive experiment keeps.
    pub floor: f64,
    /// Equal weights until every arm has this many visitors.
    pub burn_in: u64,
    /// Least time between two weight refreshes of one experiment.
    pub refresh_interval_ms: u64,
    /// Least absolute move of some arm's weight that publishes a new weights version (and
    /// its audit entry); a change of the leading arm always does.
    pub min_weight_change: f64,
    /// Probability of being best the leader needs before a winner may be declared.
    pub prob_best_threshold: f64,
    /// Expected-loss threshold (absolute conversion rate) for the recommendation.
    pub loss_threshold: f64,
    /// Visitors per arm before a winner may be declared.
    pub min_sample: u64,
    /// What `recommendation` follows: `sequential` (anytime-valid, the default) or
    /// `bayesian` (the posterior thresholds above).
    pub decision_rule: crate::engine::decision::DecisionRule,
    /// Error rate of the sequential rule over all arms together (each arm's confidence
    /// sequence is taken at alpha / arms).
    pub sequential_alpha: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterConfig {
    /// Most records committed in one transaction.
    pub max_batch: usize,
    /// Most records waiting for the writer; past it new ones are refused with a 503 rather
    /// than queued without bound (memory and latency would grow with the backlog).
    pub max_queue: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub allow_private: bool,
    /// PEM file of extra root certificates trusted for https receivers, besides the built-in
    /// public roots; empty means none.
    pub ca_file: String,
}

/// Every server-side fetch (webhook deliveries, and the installation check and editor proxy
/// to come) goes through one client with these rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Allow loopback, private and other special-purpose addresses (tests, intranets).
    pub allow_private: bool,
}

/// Email to experiment owners (winner found, SRM detected, completed). Off while
/// `smtp_url` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// `smtp://user:password@host:port` (plain), `smtps://...` (TLS from the first byte), or
    /// `smtp://...?tls=required` (STARTTLS); empty turns email off.
    pub smtp_url: String,
    /// The sender, `Samplit <samplit@example.com>` or a bare address; needed with `smtp_url`.
    pub from: String,
}

impl NotificationsConfig {
    pub fn enabled(&self) -> bool {
        !self.smtp_url.is_empty()
    }

    /// `smtp_url` with its password replaced, for logs and `samplit config show`.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.smtp_url)
    }
}

/// Replaces the password of `scheme://user:password@host` with `<redacted>`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_string(),
    }
}

/// Why an SMTP URL cannot be used, in words for the `notifications.smtp_url` error.
fn check_smtp_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("must look like smtp://user:password@host:port or smtps://...".into());
    };
    if !matches!(scheme, "smtp" | "smtps") {
        return Err(format!("scheme must be smtp:// or smtps://, not {scheme}://"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err("has an unclosed [ in its host".into()),
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    if host.is_empty() {
        return Err("needs a host, as in smtp://mail.example.com:587".into());
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("port {p:?} is not a port number"));
    }
    if let Some(q) = rest.split_once('?').map(|(_, q)| q) {
        for pair in q.split('&') {
            match pair {
                "tls=required" | "tls=opportunistic" if scheme == "smtp" => {}
                _ => {
                    return Err(format!(
                        "unknown option {pair:?}: smtp:// takes tls=required or \
                         tls=opportunistic, smtps:// none"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `samplit=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                mode: Mode::Development,
                bind: "127.0.0.1:8000".into(),
                data_dir: PathBuf::from("./data"),
                public_url: String::new(),
                body_limit_bytes: 1024 * 1024,
                tracker_cors_origins: vec!["*".into()],
                api_cors_origins: vec![],
                trusted_proxies: vec![],
                header_timeout_secs: 10,
                body_timeout_secs: 30,
                shutdown_grace_secs: 10,
            },
            auth: AuthConfig {
                open_registration: false,
                jwt_secret: String::new(),
                token_ttl_secs: 86_400,
            },
            state: StateConfig { encryption_key: String::new() },
            limits: LimitsConfig {
                tracker_per_ip: 100,
                tracker_per_site: 2000,
                api_per_token: 50,
                login_per_ip: 10,
                simulate_per_ip: 10,
                context_max_bytes: 4096,
            },
            engine: EngineConfig {
                floor: 0.01,
                burn_in: 0,
                refresh_interval_ms: 1000,
                min_weight_change: crate::engine::allocator::MIN_WEIGHT_CHANGE,
                prob_best_threshold: 0.95,
                loss_threshold: 0.001,
                min_sample: 100,
                decision_rule: crate::engine::decision::DecisionRule::Sequential,
                sequential_alpha: 0.05,
            },
            writer: WriterConfig { max_batch: 2048, max_queue: 50_000 },
            webhooks: WebhooksConfig { allow_private: false, ca_file: String::new() },
            outbound: OutboundConfig { allow_private: false },
            notifications: NotificationsConfig { smtp_url: String::new(), from: String::new() },
            log: LogConfig { level: "info".into(), format: "text".into() },
        }
    }
}

/// What the command line may override; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
}

/// The resolved settings and where they came from, for the start-up banner.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unknown setting `{key}` in {origin}")]
    UnknownKey { key: String, origin: String },
    #[error("setting `{key}` from {origin}: {message}")]
    Invalid { key: String, origin: String, message: String },
}

impl Loaded {
    /// Resolves the four layers. `env` is passed in so tests need not touch the process.
    pub fn resolve(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let defaults = Value::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
            key: "*".into(),
            origin: "defaults".into(),
            message: e.to_string(),
        })?;
        let Value::Table(defaults) = defaults else { unreachable!("Config serializes to a table") };
        let mut merged = defaults.clone();

        let file = match &overrides.config_file {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from("samplit.toml")).filter(|p| p.is_file()),
        };
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            let table: Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.clone(),
                message: e.message().to_string(),
            })?;
            merge(&mut merged, &defaults, table, "", &path.display().to_string())?;
        }

        let mut env_table = Table::new();
        for (name, raw) in env {
            let Some(rest) = name.strip_prefix("SAMPLIT_") else { continue };
            // Settings always name a section (`SAMPLIT_SERVER__BIND`); other SAMPLIT_* names,
            // such as the ones Kubernetes derives from a service called samplit, are not ours.
            if !rest.contains("__") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let key = path.join(".");
            let Some(default) = lookup(&defaults, &path) else {
                return Err(ConfigError::UnknownKey { key, origin: format!("environment {name}") });
            };
            insert(&mut env_table, &path, coerce(&raw, default));
        }
        merge(&mut merged, &defaults, env_table, "", "the environment")?;

        let mut cli = Table::new();
        if let Some(b) = &overrides.bind {
            insert(&mut cli, &["server".into(), "bind".into()], Value::String(b.clone()));
        }
        if let Some(d) = &overrides.data_dir {
            let d = d.display().to_string();
            insert(&mut cli, &["server".into(), "data_dir".into()], Value::String(d));
        }
        merge(&mut merged, &defaults, cli, "", "the command line")?;

        let config: Config =
            serde_path_to_error::deserialize(Value::Table(merged)).map_err(|e| {
                ConfigError::Invalid {
                    key: e.path().to_string(),
                    origin: "the merged configuration".into(),
                    message: e.inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(Loaded { config, file })
    }
}

impl Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| ConfigError::Invalid {
            key: key.into(),
            origin: "the configuration".into(),
            message: message.into(),
        };
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad("server.bind", "must be an address such as 127.0.0.1:8000"));
        }
        if !(0.0..0.5).contains(&self.engine.floor) {
            return Err(bad("engine.floor", "must be in [0, 0.5)"));
        }
        if !(0.0..0.5).contains(&self.engine.min_weight_change) {
            return Err(bad("engine.min_weight_change", "must be in [0, 0.5)"));
        }
        if !(self.engine.prob_best_threshold > 0.5 && self.engine.prob_best_threshold < 1.0) {
            return Err(bad("engine.prob_best_threshold", "must be in (0.5, 1)"));
        }
        if !(self.engine.loss_threshold > 0.0 && self.engine.loss_threshold < 1.0) {
            return Err(bad("engine.loss_threshold", "must be in (0, 1)"));
        }
        if !(self.engine.sequential_alpha > 0.0 && self.engine.sequential_alpha < 0.5) {
            return Err(bad("engine.sequential_alpha", "must be in (0, 0.5)"));
        }
        if self.writer.max_batch == 0 {
            return Err(bad("writer.max_batch", "must be at least 1"));
        }
        if self.writer.max_queue == 0 {
            return Err(bad("writer.max_queue", "must be at least 1"));
        }
        if let Some(p) = self.server.trusted_proxies.iter().find(|p| Cidr::parse(p).is_none()) {
            return Err(bad(
                "server.trusted_proxies",
                &format!("{p:?} is not an IP address or range such as 10.0.0.0/8"),
            ));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(bad("server.body_limit_bytes", "must be at least 1024"));
        }
        if !(1..=3600).contains(&self.server.header_timeout_secs) {
            return Err(bad("server.header_timeout_secs", "must be 1 to 3600"));
        }
        if !(1..=3600).contains(&self.server.body_timeout_secs) {
            return Err(bad("server.body_timeout_secs", "must be 1 to 3600"));
        }
        if self.server.shutdown_grace_secs > 3600 {
            return Err(bad("server.shutdown_grace_secs", "must be 0 to 3600"));
        }
        if self.notifications.enabled() {
            if let Err(m) = check_smtp_url(&self.notifications.smtp_url) {
                return Err(bad("notifications.smtp_url", &m));
            }
            if self.notifications.from.trim().is_empty() {
                return Err(bad(
                    "notifications.from",
                    "is needed with notifications.smtp_url: the sender's address",
                ));
            }
        }
        if !self.notifications.from.is_empty()
            && self.notifications.from.parse::<lettre::message::Mailbox>().is_err()
        {
            return Err(bad(
                "notifications.from",
                "must be an address such as samplit@example.com or `Samplit <samplit@example.com>`",
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(bad("log.format", "must be `text` or `json`"));
        }
        Ok(())
    }

    /// The parsed `server.trusted_proxies` (validated at load).
    pub fn trusted_proxies(&self) -> Vec<Cidr> {
        self.server.trusted_proxies.iter().filter_map(|p| Cidr::parse(p)).collect()
    }

    pub fn production(&self) -> bool {
        self.server.mode == Mode::Production
    }

    pub fn data_dir(&self) -> &Path {
        &self.server.data_dir
    }

    /// The base URL that snippets and the banner use.
    /// Whether server-side fetches may reach special-purpose addresses: `outbound.allow_private`,
    /// or the older `webhooks.allow_private`, which keeps working.
    pub fn outbound_allows_private(&self) -> bool {
        self.outbound.allow_private || self.webhooks.allow_private
    }

    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.bind)
        } else {
            self.server.public_url.trim_end_matches('/').to_string()
        }
    }

    /// The resolved settings as TOML with every secret replaced, for `samplit config show`.
    pub fn redacted_toml(&self) -> String {
        let mut c = self.clone();
        for s in [&mut c.auth.jwt_secret, &mut c.state.encryption_key] {
            if !s.is_empty() {
                *s = "<redacted>".into();
            }
        }
        c.notifications.smtp_url = c.notifications.redacted_url();
        toml::to_string_pretty(&c).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

fn lookup<'a>(table: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = table.get(first)?;
    if rest.is_empty() {
        return Some(v);
    }
    match v {
        Value::Table(t) => lookup(t, rest),
        _ => None,
    }
}

fn insert(table: &mut Table, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return;
    }
    let entry = table.entry(first.clone()).or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(t) = entry {
        insert(t, rest, value);
    }
}

/// An environment value is text; read it as the type the default has, so a string setting
/// that looks like a number stays a string.
fn coerce(raw: &str, default: &Value) -> Value {
    match default {
        Value::String(_) => Value::String(raw.to_string()),
        _ => format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .or_else(|| {
                // Lists may be given bare and comma-separated: SAMPLIT_X__ORIGINS=a,b
                matches!(default, Value::Array(_)).then(|| {
                    Value::Array(
                        raw.split(',')
                            .map(|s| s.trim())
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.into()))
                            .collect(),
                    )
                })
            })
            .unwrap_or_else(|| Value::String(raw.to_string())),
    }
}

fn merge(
    into: &mut Table,
    defaults: &Table,
    layer: Table,
    prefix: &str,
    origin: &str,
) -> Result<(), ConfigError> {
    for (k, v) in layer {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let Some(default) = defaults.get(&k) else {
            return Err(ConfigError::UnknownKey { key, origin: origin.into() });
        };
        match (default, v) {
            (Value::Table(dt), Value::Table(vt)) => {
                let Some(Value::Table(target)) = into.get_mut(&k) else {
                    unreachable!("merged starts as a copy of the defaults")
                };
                merge(target, dt, vt, &key, origin)?;
            }
            (Value::Table(_), _) => {
                return Err(ConfigError::Invalid {
                    key,
                    origin: origin.into(),
                    message: "is a section, not a value".into(),
                });
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges_match_what_they_cover() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")) && !c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "v4-mapped v6 counts as v4");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("::ffff:10.0.0.0/104").unwrap().contains(ip("10.1.2.3")));
        for bad in ["10.0.0.0/33", "nope", "1.2.3.4/x", "::/129"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    fn resolve(file: Option<&str>, env: &[(&str, &str)], o: Overrides) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let mut o = o;
        if let Some(text) = file {
            let p = dir.path().join("samplit.toml");
            std::fs::write(&p, text).unwrap();
            o.config_file = Some(p);
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Loaded::resolve(&o, env).map(|l| l.config).map_err(|e| e.to_string())
    }

    #[test]
    fn the_shipped_samplit_toml_documents_exactly_the_defaults() {
        let shipped: Table = include_str!("../samplit.toml").parse().unwrap();
        let Value::Table(defaults) = Value::try_from(Config::default()).unwrap() else { panic!() };
        assert_eq!(shipped, defaults, "samplit.toml and Config::default() disagree");
    }

    #[test]
    fn defaults_need_no_file() {
        let c = resolve(None, &[], Overrides::default()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8000");
        assert_eq!(c.server.data_dir, PathBuf::from("./data"));
        assert!(!c.auth.open_registration);
    }

    #[test]
    fn layers_apply_in_order() {
        let file = "[server]\nbind = \"127.0.0.1:9000\"\n[auth]\nopen_registration = false\n";
        let env =
            [("SAMPLIT_AUTH__OPEN_REGISTRATION", "true"), ("SAMPLIT_SERVER__BIND", "0.0.0.0:1")];
        let o = Overrides { bind: Some("127.0.0.1:7".into()), ..Default::default() };
        let c = resolve(Some(file), &env, o).unwrap();
        assert!(c.auth.open_registration, "env beats file");
        assert_eq!(c.server.bind, "127.0.0.1:7", "cli beats env");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = resolve(Some("[server]\nbnid = \"x\"\n"), &[], Overrides::default()).unwrap_err();
        assert!(e.contains("server.bnid"), "{e}");
        let e = resolve(None, &[("SAMPLIT_AUTH__NOPE", "1")], Overrides::default()).unwrap_err();
        assert!(e.contains("auth.nope"), "{e}");
        // Names without a section are not settings (Kubernetes makes SAMPLIT_PORT and such).
        let ok = resolve(
            None,
            &[("SAMPLIT_SERVICE_HOST", "10.0.0.1"), ("SAMPLIT_PORT", "tcp://x")],
            Overrides::default(),
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn env_strings_stay_strings_and_types_are_checked() {
        let c = resolve(None, &[("SAMPLIT_AUTH__JWT_SECRET", "12345")], Overrides::default());
        assert_eq!(c.unwrap().auth.jwt_secret, "12345");
        let e = resolve(None, &[("SAMPLIT_LIMITS__TRACKER_PER_IP", "lots")], Overrides::default());
        assert!(e.unwrap_err().contains("limits.tracker_per_ip"));
        let c = resolve(
            None,
            &[("SAMPLIT_SERVER__API_CORS_ORIGINS", "http://a,http://b")],
            Overrides::default(),
        );
        assert_eq!(c.unwrap().server.api_cors_origins, vec!["http://a", "http://b"]);
    }

    #[test]
    fn webhooks_ca_file_comes_from_file_then_environment() {
        let c = resolve(None, &[], Overrides::default()).unwrap();
        assert_eq!(c.webhooks.ca_file, "", "none by default");
        let file = "[webhooks]\nca_file = \"/etc/a.pem\"\n";
        let c = resolve(Some(file), &[], Overrides::default()).unwrap();
        assert_eq!(c.webhooks.ca_file, "/etc/a.pem");
        let env = [("SAMPLIT_WEBHOOKS__CA_FILE", "/etc/b.pem")];
        let c = resolve(Some(file), &env, Overrides::default()).unwrap();
        assert_eq!(c.webhooks.ca_file, "/etc/b.pem", "env beats file");
    }

    #[test]
    fn prob_best_threshold_is_checked() {
        let c = resolve(None, &[], Overrides::default()).unwrap();
        assert_eq!(c.engine.prob_best_threshold, 0.95);
        let c = resolve(Some("[engine]\nprob_best_threshold = 0.99\n"), &[], Overrides::default());
        assert_eq!(c.unwrap().engine.prob_best_threshold, 0.99);
        for bad in ["0.5", "1.0", "1.5", "-1.0"] {
            let env = [("SAMPLIT_ENGINE__PROB_BEST_THRESHOLD", bad)];
            let e = resolve(None, &env, Overrides::default()).unwrap_err();
            assert!(e.contains("engine.prob_best_threshold"), "{bad}: {e}");
        }
    }

    #[test]
    fn decision_rule_and_sequential_alpha_are_checked() {
        use crate::engine::decision::DecisionRule;
        let c = resolve(None, &[], Overrides::default()).unwrap();
        assert_eq!(c.engine.decision_rule, DecisionRule::Sequential);
        assert_eq!(c.engine.sequential_alpha, 0.05);
        let env = [("SAMPLIT_ENGINE__DECISION_RULE", "bayesian")];
        let c = resolve(None, &env, Overrides::default()).unwrap();
        assert_eq!(c.engine.decision_rule, DecisionRule::Bayesian);
        let env = [("SAMPLIT_ENGINE__DECISION_RULE", "frequentist")];
        let e = resolve(None, &env, Overrides::default()).unwrap_err();
        assert!(e.contains("engine.decision_rule"), "{e}");
        for bad in ["0", "0.5", "-0.1"] {
            let env = [("SAMPLIT_ENGINE__SEQUENTIAL_ALPHA", bad)];
            let e = resolve(None, &env, Overrides::default()).unwrap_err();
            assert!(e.contains("engine.sequential_alpha"), "{bad}: {e}");
        }
    }

    #[test]
    fn connection_timeouts_are_checked() {
        let c = resolve(None, &[], Overrides::default()).unwrap();
        let s = &c.server;
        assert_eq!(
            (s.header_timeout_secs, s.body_timeout_secs, s.shutdown_grace_secs),
            (10, 30, 10)
        );
        let ok = [("SAMPLIT_SERVER__SHUTDOWN_GRACE_SECS", "0")];
        assert_eq!(resolve(None, &ok, Overrides::default()).unwrap().server.shutdown_grace_secs, 0);
        for (key, bad) in [
            ("header_timeout_secs", "0"),
            ("body_timeout_secs", "0"),
            ("body_timeout_secs", "3601"),
            ("shutdown_grace_secs", "3601"),
        ] {
            let env = [(format!("SAMPLIT_SERVER__{}", key.to_uppercase()), bad.to_string())];
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let e = resolve(None, &env, Overrides::default()).unwrap_err();
            assert!(e.contains(&format!("server.{key}")), "{key}={bad}: {e}");
        }
    }

    #[test]
    fn smtp_settings_are_checked_and_named() {
        let c = resolve(None, &[], Overrides::default()).unwrap();
        assert!(!c.notifications.enabled(), "off by default");
        let from = ("SAMPLIT_NOTIFICATIONS__FROM", "Samplit <samplit@example.com>");
        for good in [
            "smtp://127.0.0.1:2525",
            "smtp://user:p%40ss@mail.example.com:587?tls=required",
            "smtps://u:p@mail.example.com",
            "smtp://[::1]:25",
        ] {
            let env = [("SAMPLIT_NOTIFICATIONS__SMTP_URL", good), from];
            assert!(resolve(None, &env, Overrides::default()).is_ok(), "{good}");
        }
        for bad in [
            "http://mail.example.com",
            "mail.example.com:25",
            "smtp://:25",
            "smtp://host:0",
            "smtp://host:99999",
            "smtps://host?tls=required",
            "smtp://host?tls=maybe",
        ] {
            let env = [("SAMPLIT_NOTIFICATIONS__SMTP_URL", bad), from];
            let e = resolve(None, &env, Overrides::default()).unwrap_err();
            assert!(e.contains("notifications.smtp_url"), "{bad}: {e}");
        }
        let env = [("SAMPLIT_NOTIFICATIONS__SMTP_URL", "smtp://h:25")];
        let e = resolve(None, &env, Overrides::default()).unwrap_err();
        assert!(e.contains("notifications.from"), "{e}");
        let env = [
            ("SAMPLIT_NOTIFICATIONS__SMTP_URL", "smtp://h:25"),
            ("SAMPLIT_NOTIFICATIONS__FROM", "nope"),
        ];
        let e = resolve(None, &env, Overrides::default()).unwrap_err();
        assert!(e.contains("notifications.from"), "{e}");
    }

    #[test]
    fn redaction_hides_the_smtp_password() {
        let env = [
            ("SAMPLIT_NOTIFICATIONS__SMTP_URL", "smtps://mailer:hunter22@mail.example.com:465"),
            ("SAMPLIT_NOTIFICATIONS__FROM", "samplit@example.com"),
        ];
        let shown = resolve(None, &env, Overrides::default()).unwrap().redacted_toml();
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("smtps://mailer:<redacted>@mail.example.com:465"), "{shown}");
    }

    #[test]
    fn redaction_hides_secrets() {
        let c =
            resolve(None, &[("SAMPLIT_AUTH__JWT_SECRET", "topsecretvalue")], Overrides::default());
        let shown = c.unwrap().redacted_toml();
        assert!(!shown.contains("topsecretvalue"));
        assert!(shown.contains("<redacted>"));
    }
}
