//! Campaign links and pixels: the signed tokens in an open pixel's and a click link's URL,
//! and the checks on a wave's links. Pure: the key comes from the caller.
//!
//! A token names (experiment, wave, recipient, kind, link index) and carries an
//! HMAC-SHA256 over exactly those bytes, so it is verified without a store read and cannot
//! be edited to count another recipient or to point at another link: the link itself is
//! stored with its wave and looked up by index, never read from the request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::model::Invalid;

pub const MAX_RECIPIENTS: usize = 10_000;
pub const MAX_LINKS: usize = 20;
pub const MAX_LINK_LEN: usize = 2048;

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
/// version, kind, experiment, wave, link index.
const FIXED_LEN: usize = 1 + 1 + 16 + 4 + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Open,
    Click,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Open => 0,
            Kind::Click => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub experiment: Uuid,
    pub wave: u32,
    /// The index into the wave's links; 0 for an open.
    pub link: u16,
    pub recipient: String,
}

fn mac(key: &[u8; 32], payload: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    m.update(payload);
    m
}

impl Token {
    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(FIXED_LEN + self.recipient.len() + MAC_LEN);
        p.push(VERSION);
        p.push(self.kind.byte());
        p.extend_from_slice(self.experiment.as_bytes());
        p.extend_from_slice(&self.wave.to_be_bytes());
        p.extend_from_slice(&self.link.to_be_bytes());
        p.extend_from_slice(self.recipient.as_bytes());
        p
    }

    /// base64url(payload ‖ HMAC-SHA256(key, payload)).
    pub fn sign(&self, key: &[u8; 32]) -> String {
        let mut p = self.payload();
        let tag = mac(key, &p).finalize().into_bytes();
        p.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(p)
    }

    /// The token's fields, if `text` is one this key signed (compared in constant time).
    pub fn verify(key: &[u8; 32], text: &str) -> Option<Token> {
        // A recipient id is at most 128 characters of 4 bytes.
        if text.len() > 1024 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        if raw.len() < FIXED_LEN + MAC_LEN {
            return None;
        }
        let (payload, tag) = raw.split_at(raw.len() - MAC_LEN);
        mac(key, payload).verify_slice(tag).ok()?;
        if payload[0] != VERSION {
            return None;
        }
        let kind = match payload[1] {
            0 => Kind::Open,
            1 => Kind::Click,
            _ => return None,
        };
        let experiment = Uuid::from_slice(&payload[2..18]).ok()?;
        let wave = u32::from_be_bytes(payload[18..22].try_into().ok()?);
        let link = u16::from_be_bytes(payload[22..24].try_into().ok()?);
        let recipient = String::from_utf8(payload[FIXED_LEN..].to_vec()).ok()?;
        Some(Token { kind, experiment, wave, link, recipient })
    }
}

/// A wave's links: absolute http(s) URLs with a host, no spaces or control characters (they
/// go into a `Location` header and into emails).
pub fn check_links(links: &[String]) -> Result<(), Invalid> {
    let bad = |i: usize, m: &str| Invalid { field: format!("links[{i}]"), message: m.into() };
    if links.len() > MAX_LINKS {
        return Err(Invalid { field: "links".into(), message: format!("at most {MAX_LINKS}") });
    }
    for (i, l) in links.iter().enumerate() {
        if l.len() > MAX_LINK_LEN {
            return Err(bad(i, "must be at most 2048 characters"));
        }
        let lower = l.to_ascii_lowercase();
        let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
        let Some(rest) = rest else {
            return Err(bad(i, "must be an http:// or https:// URL"));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(bad(i, "must name a host"));
        }
        if host.contains('@') {
            return Err(bad(i, "must not carry credentials"));
        }
        if l.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
            return Err(bad(i, "must not contain spaces, backslashes or control characters"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn token() -> Token {
        Token {
            kind: Kind::Click,
            experiment: Uuid::from_u128(42),
            wave: 3,
            link: 1,
            recipient: "alice@example.com".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips() {
        let t = token();
        assert_eq!(Token::verify(&KEY, &t.sign(&KEY)), Some(t));
    }

    #[test]
    fn any_altered_byte_or_another_key_is_refused() {
        let signed = token().sign(&KEY);
        let raw = URL_SAFE_NO_PAD.decode(&signed).unwrap();
        for i in 0..raw.len() {
            let mut r = raw.clone();
            r[i] ^= 1;
            assert_eq!(Token::verify(&KEY, &URL_SAFE_NO_PAD.encode(&r)), None, "byte {i}");
        }
        assert_eq!(Token::verify(&[8; 32], &signed), None);
        assert_eq!(Token::verify(&KEY, &signed[..signed.len() - 2]), None);
        assert_eq!(Token::verify(&KEY, "not a token"), None);
        assert_eq!(Token::verify(&KEY, ""), None);
    }

    #[test]
    fn links_must_be_http_urls_with_a_host() {
        let ok = |l: &str| check_links(&[l.to_string()]).is_ok();
        assert!(ok("https://shop.example/sale?x=1"));
        assert!(ok("HTTP://shop.example"));
        assert!(!ok("javascript:alert(1)"));
        assert!(!ok("ftp://shop.example/"));
        assert!(!ok("//shop.example/"));
        assert!(!ok("https:///path"));
        assert!(!ok("https://user:pw@shop.example/"));
        assert!(!ok("https://shop.example/a b"));
        assert!(!ok("https://shop.example/\r\nSet-Cookie: x"));
        let e = check_links(&["https://a.example".into(), "mailto:x@y".into()]).unwrap_err();
        assert_eq!(e.field, "links[1]");
    }
}
