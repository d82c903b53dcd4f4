//! The local admin socket: a running server listens on `<data_dir>/admin.sock` (mode 0600)
//! so CLI commands can reach the data while the server holds the redb file. One JSON line
//! in; out, any number of `{"progress": ...}` lines (long commands) and then one answer line.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::error::{AppError, Code};
use crate::service::admin::AdminRequest;
use crate::service::{ProgressEvent, Services};

pub const SOCKET_FILE: &str = "admin.sock";
/// The longest request line: a campaign wave carries up to 10,000 recipient ids of up to
/// 128 characters each (up to 4 bytes a character), well over 1 MiB at the extreme.
const MAX_LINE: u64 = 8 * 1024 * 1024;

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Binds the socket. Only called while holding the store's lock, so a socket file left
/// by a crashed server can be replaced safely.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    let p = path(data_dir);
    let _ = std::fs::remove_file(&p);
    let listener = UnixListener::bind(&p)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

pub async fn run(listener: UnixListener, services: Arc<Services>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let services = services.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, services).await {
                tracing::warn!(error = %e, "admin socket connection failed");
            }
        });
    }
}

async fn handle(stream: UnixStream, services: Arc<Services>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_LINE)).read_line(&mut line).await?;
    let mut caller_gone = false;
    let answer = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(req) => {
            tracing::info!(command = req.name(), "admin command over the socket");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressEvent>();
            let progress = move |v: ProgressEvent| drop(tx.send(v));
            let work = services.admin.run(req, &progress);
            tokio::pin!(work);
            let result = loop {
                tokio::select! {
                    Some(p) = rx.recv() => {
                        if caller_gone {
                            continue;
                        }
                        let mut out = json!({"progress": p}).to_string();
                        out.push('\n');
                        // A caller that went away or stopped reading must not stall the
                        // command half-way: its progress lines are dropped from then on.
                        let sent = tokio::time::timeout(
                            std::time::Duration::from_secs(2),
                            write.write_all(out.as_bytes()),
                        )
                        .await;
                        caller_gone = !matches!(sent, Ok(Ok(())));
                    }
                    result = &mut work => break result,
                }
            };
            match result {
                Ok(v) => json!({"ok": true, "result": v}),
                Err(e) => json!({"ok": false, "error": e.body(false)["error"]}),
            }
        }
        Err(e) => json!({"ok": false, "error": {"code": "BAD_REQUEST", "message": e.to_string()}}),
    };
    if caller_gone {
        // Half a progress line may be on the socket: an answer after it would be garbage.
        return Ok(());
    }
    let mut out = answer.to_string();
    out.push('\n');
    let sent = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        write.write_all(out.as_bytes()).await?;
        write.shutdown().await
    });
    sent.await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Sends a request to the server holding `data_dir`, or None when no server answers there.
/// Progress lines go to `progress` as they arrive.
pub async fn call(
    data_dir: &Path,
    req: &AdminRequest,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Option<Result<Value, AppError>> {
    let stream = UnixStream::connect(path(data_dir)).await.ok()?;
    Some(exchange(stream, req, progress).await)
}

async fn exchange(
    stream: UnixStream,
    req: &AdminRequest,
    progress: &mut dyn FnMut(ProgressEvent),
) -> Result<Value, AppError> {
    let io = |e: std::io::Error| AppError::internal(format!("admin socket: {e}"));
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(|e| AppError::internal(e.to_string()))?;
    line.push('\n');
    write.write_all(line.as_bytes()).await.map_err(io)?;
    let mut reader = BufReader::new(read);
    let v = loop {
        let mut answer = String::new();
        let n = (&mut reader).take(64 * MAX_LINE).read_line(&mut answer).await.map_err(io)?;
        if n == 0 {
            return Err(AppError::internal(
                "the server closed the admin connection before answering (did it stop?); \
                 check its log, and re-run the command",
            ));
        }
        let mut v: Value = serde_json::from_str(&answer)
            .map_err(|e| AppError::internal(format!("admin socket answered garbage: {e}")))?;
        match v.get_mut("progress") {
            Some(p) => progress(serde_json::from_value(p.take()).unwrap_or_default()),
            None => break v,
        }
    };
    if v["ok"].as_bool() == Some(true) {
        return Ok(v["result"].clone());
    }
    let code = v["error"]["code"].as_str().unwrap_or("INTERNAL").to_string();
    let message = v["error"]["message"].as_str().unwrap_or("unknown error").to_string();
    Err(AppError {
        code: code_from_str(&code),
        message,
        details: v["error"].get("details").cloned(),
    })
}

fn code_from_str(s: &str) -> Code {
    Code::parse(s).unwrap_or(Code::Internal)
}
