//! The one client for every server-side fetch (webhook deliveries today; installation checks
//! and the editor proxy next): http and https only, no credentials in the URL, certificates
//! always verified, and loopback and private addresses refused after resolution unless
//! allowed, so a DNS answer that changes between a check and the connection cannot reach
//! inside.

use http_body_util::Full;
use hyper::body::Bytes;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
#[cfg(test)]
use crate::config::WebhooksConfig;

/// Connect and answer timeout of one outbound request.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `ip` is in a special-purpose range of IANA's IPv4 and IPv6 Special-Purpose
/// Address Registries (RFC 6890 and its updates), or multicast: anything that is not a plain
/// public unicast address, and so may reach inside (loopback, private, link-local, CGNAT),
/// reach nothing on purpose (documentation, benchmarking, discard, reserved), or translate
/// to one of those (IPv4-mapped and -compatible, NAT64, 6to4, Teredo). Refused for every
/// server-side fetch unless `webhooks.allow_private`.
pub fn special_purpose(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => special_v4(v),
        IpAddr::V6(v) => special_v6(v),
    }
}

fn special_v4(v: Ipv4Addr) -> bool {
    let [a, b, c, _] = v.octets();
    a == 0 // "this network" 0/8, incl. 0.0.0.0
        || a == 10 // private 10/8
        || a == 100 && (b & 0xc0) == 64 // shared address space (CGNAT) 100.64/10
        || a == 127 // loopback 127/8
        || a == 169 && b == 254 // link local 169.254/16
        || a == 172 && (b & 0xf0) == 16 // private 172.16/12
        || a == 192 && b == 0 && c == 0 // IETF protocol assignments 192.0.0/24
        || a == 192 && b == 0 && c == 2 // documentation TEST-NET-1 192.0.2/24
        || a == 192 && b == 88 && c == 99 // 6to4 relay anycast 192.88.99/24
        || a == 192 && b == 168 // private 192.168/16
        || a == 198 && (b & 0xfe) == 18 // benchmarking 198.18/15
        || a == 198 && b == 51 && c == 100 // documentation TEST-NET-2 198.51.100/24
        || a == 203 && b == 0 && c == 113 // documentation TEST-NET-3 203.0.113/24
        || a >= 224 // multicast 224/4, reserved 240/4, broadcast 255.255.255.255
}

fn special_v6(v: Ipv6Addr) -> bool {
    let s = v.segments();
    if let Some(m) = v.to_ipv4_mapped() {
        return special_v4(m); // ::ffff:0:0/96 IPv4-mapped: the embedded address decides
    }
    // Outside 2000::/3, the global unicast space, nothing is public unicast: ::/128, ::1,
    // ::/96 IPv4-compatible, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, discard 100::/64,
    // unique local fc00::/7, link local fe80::/10, multicast ff00::/8, and the unassigned
    // rest. NAT64 and IPv4-compatible addresses are refused whole: they translate to IPv4
    // on a gateway we cannot see, including to loopback and private addresses.
    (s[0] & 0xe000) != 0x2000
        || s[0] == 0x2001 && s[1] < 0x0200 // IETF protocol assignments 2001::/23: Teredo
        // 2001::/32, benchmarking 2001:2::/48, ORCHIDv2 2001:20::/28 ...
        || s[0] == 0x2001 && s[1] == 0x0db8 // documentation 2001:db8::/32
        // 6to4 2002::/16, refused whole: it reaches IPv4 through whichever anycast relay
        // answers (RFC 7526 deprecated them); a receiver can be given a native address.
        || s[0] == 0x2002
        || s[0] == 0x3fff && s[1] < 0x1000 // documentation 3fff::/20
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

/// Refuses a URL that is not plain http(s), or that resolves to a special-purpose address
/// (loopback, private, ...: `special_purpose`) unless `allow_private`. The message names what is wrong, for a 422.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let (host, port) = target(url)?;
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !allow_private && addrs.iter().any(|a| special_purpose(a.ip())) {
        return Err("resolves to a loopback, private or other special-purpose address (set \
             outbound.allow_private to allow)"
            .into());
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
                .filter(|a| allow || !special_purpose(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{name} resolves only to loopback, private or special-purpose addresses"
                    ),
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
pub fn client(config: &Config) -> Result<Client, ClientError> {
    let allow_private = config.outbound_allows_private();
    let config = &config.webhooks;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&config.ca_file)?)
        .with_no_client_auth();
    let mut http =
        hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(GuardedResolver {
            allow_private,
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
    fn special_purpose_addresses_are_refused_and_public_ones_pass() {
        let refused = [
            // IPv4 special-purpose registry, one or two of each range, and multicast.
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
            // IPv6: unspecified, loopback, IPv4-mapped and -compatible, NAT64, discard.
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::a00:1",
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            // 2001::/23 (Teredo, benchmarking, ORCHIDv2), documentation, 6to4.
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:20::1",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:808:808::1",
            "3fff::1",
            "3fff:fff::1",
            // Unique local, link local, site local, multicast, unassigned.
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "4000::1",
            "::2",
        ];
        for a in refused {
            let ip: IpAddr = a.parse().unwrap();
            assert!(special_purpose(ip), "{a} must be refused");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "9.9.9.9",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.0.3.1",
            "192.88.98.1",
            "192.169.0.1",
            "198.17.0.1",
            "198.20.0.1",
            "198.51.101.1",
            "203.0.114.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "2001:200::1",
            "2001:db9::1",
            "2003::1",
            "3ffe::1",
            "3fff:1000::1",
            "::ffff:8.8.8.8",
        ];
        for a in public {
            let ip: IpAddr = a.parse().unwrap();
            assert!(!special_purpose(ip), "{a} is public and must pass");
        }
    }

    #[tokio::test]
    async fn check_url_refuses_special_literals_unless_allowed() {
        for url in [
            "http://[64:ff9b::7f00:1]/x",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://224.0.0.1/",
            "http://198.18.0.1/",
        ] {
            let e = check_url(url, false).await.unwrap_err();
            assert!(e.contains("special-purpose"), "{url}: {e}");
            assert_eq!(check_url(url, true).await, Ok(()), "{url} with allow_private");
        }
        assert_eq!(check_url("http://8.8.8.8/", false).await, Ok(()));
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
            let webhooks =
                WebhooksConfig { allow_private: false, ca_file: ca_file.display().to_string() };
            let c = Config { webhooks, ..Config::default() };
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
        assert!(client(&Config::default()).is_ok(), "the built-in roots alone");
    }
}
