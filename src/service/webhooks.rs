//! Webhooks: subscriptions, signed deliveries with persisted exponential-backoff retries,
//! and the watcher that turns results into one-off events (winner found, SRM detected).

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::auth::Principal;
use super::{Services, now_ms, rfc3339};
use crate::config::WebhooksConfig;
use crate::error::{AppError, AppResult, Code};
use crate::store::webhooks::{Attempt, Delivery, Webhook};

pub const EVENTS: &[&str] = &[
    "experiment.started",
    "experiment.paused",
    "experiment.resumed",
    "experiment.completed",
    "experiment.archived",
    "experiment.winner_found",
    "experiment.srm_detected",
];
const MAX_ATTEMPTS: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(10);

/// HMAC-SHA256 of the raw body keyed by the secret, as `sha256=<hex>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64 // CGNAT 100.64/10
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v.to_ipv4_mapped().is_some_and(|m| private(IpAddr::V4(m)))
        }
    }
}

/// Longest webhook URL accepted.
const MAX_URL: usize = 2048;

/// Host and port a webhook URL points at, or why it is not acceptable. Parsed by the same
/// `Uri` parser the client uses, so the address checked is the address connected to.
fn target(url: &str) -> Result<(String, u16), String> {
    if url.len() > MAX_URL {
        return Err(format!("must be at most {MAX_URL} characters"));
    }
    let uri: hyper::Uri =
        url.parse().map_err(|e| format!("is not a valid http:// or https:// URL: {e}"))?;
    let (Some(scheme), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
        return Err("must be an absolute http:// or https:// URL".into());
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        other => return Err(format!("must be an http:// or https:// URL, not {other}://")),
    };
    if auth.as_str().contains('@') {
        return Err("must not contain credentials (user@host); authenticate the receiver \
                    by the X-Samplit-Signature header"
            .into());
    }
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("needs a host".into());
    }
    Ok((host.to_string(), auth.port_u16().unwrap_or(default_port)))
}

impl Services {
    /// Refuses URLs that resolve to loopback or private addresses unless allowed; checked
    /// at creation and again before every delivery (DNS can change).
    async fn check_target(&self, url: &str) -> AppResult<()> {
        let (host, port) = target(url).map_err(|m| AppError::validation("url", m))?;
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| AppError::validation("url", format!("cannot resolve {host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(AppError::validation("url", format!("{host} has no address")));
        }
        if !self.config.webhooks.allow_private && addrs.iter().any(|a| private(a.ip())) {
            return Err(AppError::validation(
                "url",
                "resolves to a loopback or private address (set webhooks.allow_private to allow)",
            ));
        }
        Ok(())
    }

    pub async fn create_webhook(
        &self,
        who: &Principal,
        url: String,
        events: Vec<String>,
    ) -> AppResult<Value> {
        self.check_target(&url).await?;
        if events.is_empty() {
            return Err(AppError::validation("events", "needs at least one event"));
        }
        for (i, e) in events.iter().enumerate() {
            if !EVENTS.contains(&e.as_str()) {
                return Err(AppError::validation(
                    format!("events[{i}]"),
                    format!("must be one of {}", EVENTS.join(", ")),
                ));
            }
        }
        let hook = Webhook {
            id: Uuid::new_v4(),
            owner: who.id(),
            url,
            events,
            secret: format!("whsec_{}", super::secrets::random_hex32()),
            created_at: now_ms(),
        };
        self.store.insert_webhook(&hook)?;
        Ok(json!({"id": hook.id, "url": hook.url, "events": hook.events, "secret": hook.secret,
                  "created_at": rfc3339(hook.created_at)}))
    }

    pub fn list_webhooks(&self, who: &Principal) -> AppResult<Value> {
        let items: Vec<Value> = self
            .store
            .webhooks(Some(who.id()))?
            .iter()
            .map(|h| json!({"id": h.id, "url": h.url, "events": h.events, "created_at": rfc3339(h.created_at)}))
            .collect();
        Ok(json!({"total": items.len(), "items": items}))
    }

    fn owned_webhook(&self, who: &Principal, id: Uuid) -> AppResult<Webhook> {
        self.store
            .webhook(id)?
            .filter(|h| h.owner == who.id())
            .ok_or_else(|| AppError::new(Code::WebhookNotFound, "no such webhook"))
    }

    pub fn delete_webhook(&self, who: &Principal, id: Uuid) -> AppResult<()> {
        self.owned_webhook(who, id)?;
        Ok(self.store.delete_webhook(id)?)
    }

    pub fn webhook_deliveries(&self, who: &Principal, id: Uuid) -> AppResult<Value> {
        self.owned_webhook(who, id)?;
        let items: Vec<Value> = self
            .store
            .deliveries(id)?
            .iter()
            .map(|d| {
                let attempts: Vec<Value> = d
                    .attempts
                    .iter()
                    .map(|a| json!({"at": rfc3339(a.at), "status_code": a.status_code, "error": a.error}))
                    .collect();
                json!({"id": d.id, "event": d.event, "state": d.state, "attempts": attempts,
                       "next_attempt_at": super::opt_rfc3339(d.next_attempt_at),
                       "created_at": rfc3339(d.created_at)})
            })
            .collect();
        Ok(json!({"total": items.len(), "items": items}))
    }

    /// The deliveries of `event` to every webhook of `owner` that subscribes to it, for the
    /// caller to store with the change they report (see `Store::put_experiment`).
    pub fn deliveries(
        &self,
        owner: Uuid,
        event: &str,
        exp: Uuid,
        data: &Value,
    ) -> AppResult<Vec<Delivery>> {
        let now = now_ms();
        Ok(self
            .store
            .webhooks(Some(owner))?
            .into_iter()
            .filter(|h| h.events.iter().any(|e| e == event))
            .map(|h| {
                let id = Uuid::new_v4();
                let body = json!({"id": id, "event": event, "at": rfc3339(now), "experiment_id": exp, "data": data});
                Delivery {
                    id,
                    webhook_id: h.id,
                    event: event.to_string(),
                    body: body.to_string(),
                    state: "pending".into(),
                    attempts: vec![],
                    next_attempt_at: Some(now),
                    created_at: now,
                }
            })
            .collect())
    }

    /// Wakes the delivery worker after deliveries were stored.
    pub fn deliveries_queued(&self, n: usize) {
        if n > 0 {
            self.deliveries_due.notify_one();
        }
    }

    /// Queues a one-off event (winner found, SRM detected): at most once per experiment.
    pub fn emit_once(
        &self,
        owner: Uuid,
        event: &'static str,
        exp: Uuid,
        data: Value,
    ) -> AppResult<()> {
        let deliveries = self.deliveries(owner, event, exp, &data)?;
        if self.store.enqueue(&deliveries, Some((exp, event)))? {
            self.deliveries_queued(deliveries.len());
        }
        Ok(())
    }

    /// One pass over the due deliveries.
    async fn deliver_due(&self, client: &Client) {
        let due = match self.store.due_deliveries(now_ms()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook queue");
                return;
            }
        };
        for mut d in due {
            let hook = match self.store.webhook(d.webhook_id) {
                Ok(Some(h)) => h,
                _ => continue,
            };
            let result = match self.check_target(&hook.url).await {
                Ok(()) => send(client, &hook, &d).await,
                Err(e) => Err(e.message),
            };
            let at = now_ms();
            match result {
                Ok(code) if (200..300).contains(&code) => {
                    d.attempts.push(Attempt { at, status_code: Some(code), error: None });
                    d.state = "delivered".into();
                    d.next_attempt_at = None;
                }
                other => {
                    let (status_code, error) = match other {
                        Ok(code) => (Some(code), None),
                        Err(e) => (None, Some(e)),
                    };
                    d.attempts.push(Attempt { at, status_code, error });
                    if d.attempts.len() >= MAX_ATTEMPTS {
                        d.state = "failed".into();
                        d.next_attempt_at = None;
                    } else {
                        // 1 s, 2 s, 4 s ... doubling, at most an hour.
                        let backoff = 1000i64 << (d.attempts.len() - 1).min(12);
                        d.next_attempt_at = Some(at + backoff.min(3_600_000));
                    }
                }
            }
            if let Err(e) = self.store.save_delivery(&d) {
                tracing::error!(error = %e, delivery = %d.id, "cannot save a webhook delivery");
            }
        }
    }

    /// Emits winner-found and SRM events when an experiment's results turn that way.
    fn watch_results(&self) {
        for e in self.catalog.all().iter().filter(|e| e.serving()) {
            let Some(snap) = self.writer.live().get(e.exp.id) else { continue };
            if snap.state.visitors() == 0 {
                continue;
            }
            let a = self.analyse(&e.exp, &snap.state);
            if a["recommendation"]["decision"] == "declare_winner" {
                let data = json!({"recommendation": a["recommendation"]});
                let _ = self.emit_once(e.exp.owner, "experiment.winner_found", e.exp.id, data);
            }
            if a["srm"]["mismatch"] == true {
                let data = json!({"srm": a["srm"]});
                let _ = self.emit_once(e.exp.owner, "experiment.srm_detected", e.exp.id, data);
            }
        }
    }
}

/// The delivery client: HTTP/1.1 over plain TCP or TLS, one connection pool for all hooks.
pub type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<
        hyper_util::client::legacy::connect::HttpConnector<GuardedResolver>,
    >,
    Full<Bytes>,
>;

/// Resolves webhook hosts for the client and drops loopback and private addresses (unless
/// `webhooks.allow_private`), so the address connected to is one that passed the check: a
/// DNS answer that changes between the check and the connection cannot reach inside.
/// (IP literals skip resolution; `check_target` refuses private ones before every delivery.)
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

type Resolving = std::pin::Pin<
    Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<std::net::SocketAddr>>> + Send>,
>;

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow || !private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{name} resolves only to loopback or private addresses"),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("webhooks.ca_file {path}: cannot read it: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("webhooks.ca_file {path}: not a PEM certificate file: {message}")]
    Pem { path: String, message: String },
    #[error("webhooks.ca_file {path}: has no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    Empty { path: String },
    #[error("webhooks.ca_file {path}: certificate {n} is not a usable root: {source}")]
    BadRoot { path: String, n: usize, source: rustls::Error },
    #[error("cannot set up TLS for webhooks: {0}")]
    Tls(#[from] rustls::Error),
}

/// The trusted roots: the compiled-in public roots (Mozilla's, via webpki-roots, so a
/// container without a CA bundle still verifies), plus the PEM certificates of `ca_file`.
fn roots(ca_file: &str) -> Result<rustls::RootCertStore, ClientError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if ca_file.is_empty() {
        return Ok(roots);
    }
    let path = ca_file.to_string();
    let pem = std::fs::read(ca_file)
        .map_err(|source| ClientError::Read { path: path.clone(), source })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ClientError::Pem { path: path.clone(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(ClientError::Empty { path });
    }
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|source| ClientError::BadRoot {
            path: path.clone(),
            n: i + 1,
            source,
        })?;
    }
    Ok(roots)
}

/// Builds the delivery client once, at start-up. Certificates are always verified, against
/// the public roots and `webhooks.ca_file`; there is no switch to turn that off.
pub fn client(config: &WebhooksConfig) -> Result<Client, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&config.ca_file)?)
        .with_no_client_auth();
    let mut http =
        hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(GuardedResolver {
            allow_private: config.allow_private,
        });
    http.enforce_http(false);
    http.set_connect_timeout(Some(TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector))
}

/// An error with its causes, `outer: inner: ...`, so the delivery log says "invalid peer
/// certificate: UnknownIssuer" rather than only "client error (Connect)".
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

async fn send(client: &Client, hook: &Webhook, d: &Delivery) -> Result<u16, String> {
    let req = hyper::Request::post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("samplit/", env!("CARGO_PKG_VERSION")))
        .header("x-samplit-event", d.event.as_str())
        .header("x-samplit-delivery", d.id.to_string())
        .header("x-samplit-signature", signature(&hook.secret, d.body.as_bytes()))
        .body(Full::new(Bytes::from(d.body.clone())))
        .map_err(|e| describe(&e))?;
    let res = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| describe(&e))?;
    let status = res.status().as_u16();
    // Read (and drop) a bounded body so the connection can be reused.
    let _ = tokio::time::timeout(
        TIMEOUT,
        http_body_util::Limited::new(res.into_body(), 64 * 1024).collect(),
    )
    .await;
    Ok(status)
}

/// The delivery worker and the results watcher; runs for the life of the server. `client`
/// comes from [`client`], built once when the server starts.
pub async fn run(services: Arc<Services>, client: Client) {
    let mut watch = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = services.deliveries_due.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = watch.tick() => services.watch_results(),
        }
        services.deliver_due(&client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_client_resolver_never_hands_out_private_addresses_unless_allowed() {
        use std::str::FromStr;
        use tower::Service;
        let name =
            || hyper_util::client::legacy::connect::dns::Name::from_str("localhost").unwrap();
        let err = GuardedResolver { allow_private: false }.call(name()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        let ok: Vec<_> =
            GuardedResolver { allow_private: true }.call(name()).await.unwrap().collect();
        assert!(ok.iter().all(|a| a.ip().is_loopback()) && !ok.is_empty());
    }

    #[test]
    fn targets_take_http_and_https_with_their_default_ports() {
        let t = |u: &str| target(u);
        assert_eq!(t("http://example.com/x"), Ok(("example.com".into(), 80)));
        assert_eq!(t("https://example.com/x?y=1"), Ok(("example.com".into(), 443)));
        assert_eq!(t("https://example.com:8443"), Ok(("example.com".into(), 8443)));
        assert_eq!(t("https://[2001:db8::1]:9/"), Ok(("2001:db8::1".into(), 9)));
        assert_eq!(t("https://[2001:db8::1]/"), Ok(("2001:db8::1".into(), 443)));
        assert_eq!(t("HTTPS://Example.com/"), Ok(("Example.com".into(), 443)));
    }

    #[test]
    fn targets_refuse_other_schemes_credentials_and_long_urls() {
        let err = |u: &str| target(u).unwrap_err();
        assert!(err("ftp://example.com/").contains("not ftp://"));
        assert!(err("example.com/hook").contains("http:// or https://"));
        assert!(err("/hook").contains("absolute"));
        assert!(err("https://user@example.com/").contains("credentials"));
        assert!(err("https://user:pw@example.com/").contains("credentials"));
        assert!(err("http://exa mple.com/").contains("not a valid http:// or https:// URL"));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(err(&long).contains("2048"));
    }

    #[test]
    fn a_bad_ca_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let with = |ca_file: &std::path::Path| {
            let c = WebhooksConfig { allow_private: false, ca_file: ca_file.display().to_string() };
            client(&c).err().map(|e| e.to_string()).unwrap_or_default()
        };
        let missing = dir.path().join("nope.pem");
        let e = with(&missing);
        assert!(e.starts_with("webhooks.ca_file ") && e.contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        assert!(with(&junk).contains("no PEM certificate"));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap();
        let e = with(&broken);
        assert!(e.contains("broken.pem") && e.contains("certificate 1"), "{e}");
        let none = WebhooksConfig { allow_private: false, ca_file: String::new() };
        assert!(client(&none).is_ok(), "the built-in roots alone");
    }
}
