//! The one client for every server-side fetch (webhook deliveries today; installation checks
//! and the editor proxy next): http and https only, no credentials in the URL, certificates
//! always verified, and loopback and private addresses refused after resolution unless
//! allowed, so a DNS answer that changes between a check and the connection cannot reach
//! inside.

use http_body_util::Full;
use hyper::body::Bytes;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::WebhooksConfig;

/// Connect and answer timeout of one outbound request.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn private(ip: IpAddr) -> bool {
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

/// Longest URL fetched.
const MAX_URL: usize = 2048;

/// Host and port a URL points at, or why it is not acceptable. Parsed by the same
/// `Uri` parser the client uses, so the address checked is the address connected to.
pub fn target(url: &str) -> Result<(String, u16), String> {
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

/// Refuses a URL that is not plain http(s), or that resolves to loopback or private
/// addresses unless `allow_private`. The message names what is wrong, for a 422.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let (host, port) = target(url)?;
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private && addrs.iter().any(|a| private(a.ip())) {
        return Err(
            "resolves to a loopback or private address (set webhooks.allow_private to allow)"
                .into(),
        );
    }
    Ok(())
}

/// The outbound client: HTTP/1.1 over plain TCP or TLS, one connection pool for every fetch.
pub type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<
        hyper_util::client::legacy::connect::HttpConnector<GuardedResolver>,
    >,
    Full<Bytes>,
>;

/// Resolves hosts for the client and drops loopback and private addresses (unless
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

/// Builds the client once, at start-up. Certificates are always verified, against
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
pub fn describe(e: &dyn std::error::Error) -> String {
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
