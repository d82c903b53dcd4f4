//! AES-256-GCM sealing of bandit state. The record's own id is the associated data, so a
//! state copied onto another experiment fails to open instead of silently applying.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};

const NONCE_LEN: usize = 12;
const FORMAT: u8 = 1;

#[derive(Clone)]
pub struct StateKey(Aes256Gcm);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct OpenError;

impl StateKey {
    pub fn new(key: &[u8; 32]) -> StateKey {
        StateKey(Aes256Gcm::new(key.into()))
    }

    /// `format byte | nonce | ciphertext+tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let ct = self
            .0
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != FORMAT {
            return Err(OpenError);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().map_err(|_| OpenError)?;
        self.0
            .decrypt(&nonce.into(), Payload { msg: &sealed[1 + NONCE_LEN..], aad })
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let k = StateKey::new(&[7u8; 32]);
        let sealed = k.seal(b"exp-1", b"hello");
        assert_eq!(k.open(b"exp-1", &sealed).unwrap(), b"hello");
        assert_eq!(k.open(b"exp-2", &sealed), Err(OpenError), "bound to its record");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(b"exp-1", &bad), Err(OpenError));
        assert_eq!(StateKey::new(&[8u8; 32]).open(b"exp-1", &sealed), Err(OpenError));
    }
}
