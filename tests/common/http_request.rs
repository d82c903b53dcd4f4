//! Reading one HTTP/1.1 request off a socket, for the test receivers that stand in for a
//! webhook endpoint (plain TCP, so a test sees exactly the bytes the server sent).

use std::io::{BufRead, Read};

/// One request as received: lower-cased header names with trimmed values, and the body.
pub struct Request {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case), or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }
}

/// Reads one request; None if the peer closed before sending a request line. A body cut
/// short is kept as far as it came.
pub fn read_request(mut reader: impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(len);
    let _ = reader.take(len as u64).read_to_end(&mut body);
    Some(Request { headers, body })
}

/// A receiver on 127.0.0.1 that answers 200 to each request and hands it over: the URL to
/// point a webhook at, and the requests as they arrive.
pub fn receiver() -> (String, std::sync::mpsc::Receiver<Request>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let Some(req) = read_request(std::io::BufReader::new(&mut s)) else {
                continue;
            };
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = s.flush();
            if tx.send(req).is_err() {
                return;
            }
        }
    });
    (url, rx)
}
