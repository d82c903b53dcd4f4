//! The secrets: the JWT signing key and the bandit-state key, given in config or generated
//! on first start into the data dir with mode 0600 (production refuses to run on a weak or
//! missing configured one), and the campaign link key, always generated: it only has to
//! outlive the links it signed, like the data dir itself.

use std::io::Write;
use std::path::Path;

use crate::config::Config;

pub const JWT_FILE: &str = "jwt.key";
pub const STATE_FILE: &str = "state.key";
/// Signs campaign open pixels and click links. Kept apart from the state key so that a
/// state key rotation does not break every link already sent.
pub const LINK_FILE: &str = "link.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot use {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub struct Secrets {
    pub jwt: Vec<u8>,
    pub state: [u8; 32],
    pub link: [u8; 32],
}

const WEAK: &[&str] = &["secret", "changeme", "change-me", "password", "samplit", "test"];

pub fn load(config: &Config) -> Result<Secrets, SecretError> {
    let dir = config.data_dir();
    let prod = config.production();
    let jwt = &config.auth.jwt_secret;
    let jwt = if !jwt.is_empty() {
        if jwt.len() < 32
            || WEAK.iter().any(|w| jwt.eq_ignore_ascii_case(w))
            || crate::engine::text::predictable_secret(jwt.as_bytes())
        {
            let msg = "auth.jwt_secret is weak: use at least 32 random characters \
                       (for example `openssl rand -hex 32`); repeated blocks, runs such as \
                       `aaaa` or `1234` and few distinct characters do not count as random";
            if prod {
                return Err(SecretError::Refused(msg.into()));
            }
            tracing::warn!("{msg}");
        }
        jwt.as_bytes().to_vec()
    } else if prod {
        return Err(SecretError::Refused(
            "production mode needs auth.jwt_secret set (SAMPLIT_AUTH__JWT_SECRET); \
             generate one with `openssl rand -hex 32`"
                .into(),
        ));
    } else {
        hex::decode(file_or_generate(dir, JWT_FILE)?)
            .map_err(|e| SecretError::Refused(format!("{JWT_FILE} is not hex: {e}")))?
    };

    let key = &config.state.encryption_key;
    let state_hex = if !key.is_empty() {
        key.clone()
    } else if prod {
        return Err(SecretError::Refused(
            "production mode needs state.encryption_key set (64 hex characters, \
             SAMPLIT_STATE__ENCRYPTION_KEY); generate one with `openssl rand -hex 32`"
                .into(),
        ));
    } else {
        file_or_generate(dir, STATE_FILE)?
    };
    let state = parse_key(&state_hex).ok_or_else(|| {
        SecretError::Refused("state.encryption_key must be 64 hex characters (32 bytes)".into())
    })?;
    if state.iter().all(|&b| b == state[0]) {
        return Err(SecretError::Refused("state.encryption_key is trivially weak".into()));
    }
    if prod && !key.is_empty() && crate::engine::text::predictable_secret(key.trim().as_bytes()) {
        return Err(SecretError::Refused(
            "state.encryption_key is predictable (a repeated block, runs or few distinct \
             digits): generate one with `openssl rand -hex 32`"
                .into(),
        ));
    }
    let link = parse_key(&file_or_generate(dir, LINK_FILE)?)
        .ok_or_else(|| SecretError::Refused(format!("{LINK_FILE} must be 64 hex characters")))?;
    Ok(Secrets { jwt, state, link })
}

pub fn parse_key(hex_key: &str) -> Option<[u8; 32]> {
    hex::decode(hex_key.trim()).ok()?.try_into().ok()
}

pub fn random_hex32() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    hex::encode(b)
}

fn file_or_generate(dir: &Path, name: &str) -> Result<String, SecretError> {
    let path = dir.join(name);
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    match std::fs::read_to_string(&path) {
        Ok(s) => return Ok(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    // The data dir this creates is private to its owner, as `Store::open` makes it.
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)?;
    let value = random_hex32();
    write_private(&path, &value).map_err(io)?;
    tracing::info!(file = %path.display(), "generated a new secret");
    Ok(value)
}

/// Writes a file readable by its owner only, atomically (temp file then rename).
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
