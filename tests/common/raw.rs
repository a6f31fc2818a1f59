//! Raw bytes at both ends of the proxy: a backend that records every request
//! it receives (head and body, per connection) and answers from a script
//! chosen by path, and a client that sends exact bytes (in pieces, with
//! pauses) and reads until the proxy closes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Which backend connection it came on (0, 1, …).
    pub conn: usize,
    /// The head, as text (request line and headers).
    pub head: String,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
}

impl Received {
    /// The request target.
    pub fn target(&self) -> &str {
        self.head.split_whitespace().nth(1).unwrap_or("")
    }

    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What the scripted backend does for a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Send these bytes (then keep the connection unless `close`).
    Bytes(&'static [u8], bool),
    /// A `200` with a body of this many bytes.
    Big(usize),
    /// Reset the connection at once (the head and whatever came with it
    /// were read).
    Reset,
}

/// The default script: `/` answers `200 ok`.
pub fn default_answer(path: &str) -> Answer {
    match path {
        "/big" => Answer::Big(64 << 20),
        "/reset" => Answer::Reset,
        _ => Answer::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
    }
}

/// A backend that records what it receives.
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    conns: Arc<AtomicUsize>,
    /// When a write of a `Big` answer failed (the proxy let go of it).
    pub released: Arc<Mutex<Option<Instant>>>,
}

impl Recorder {
    /// Listen on a free loopback port and answer with `script`.
    pub async fn spawn(script: fn(&str) -> Answer) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(Mutex::new(None));
        let (l, c, r) = (log.clone(), conns.clone(), released.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let n = c.fetch_add(1, SeqCst);
                tokio::spawn(serve(s, n, script, l.clone(), r.clone()));
            }
        });
        Recorder {
            addr,
            log,
            conns,
            released,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("lock").clone()
    }

    /// How many connections the proxy opened.
    pub fn connections(&self) -> usize {
        self.conns.load(SeqCst)
    }
}

/// Decode a chunked body at the start of `buf`; `None` while incomplete.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// One complete request at the start of `buf`: head, body, length used.
fn take_request(buf: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let (body, used) = dechunk(&buf[end..])?;
        return Some((head, body, end + used));
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < end + len {
        return None;
    }
    Some((head, buf[end..end + len].to_vec(), end + len))
}

async fn serve(
    mut s: TcpStream,
    conn: usize,
    script: fn(&str) -> Answer,
    log: Arc<Mutex<Vec<Received>>>,
    released: Arc<Mutex<Option<Instant>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some((head, body, used)) = take_request(&buf) {
            buf.drain(..used);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            // A well-behaved backend: no body after a HEAD answer's head.
            let head_only = head.starts_with("HEAD ");
            log.lock()
                .expect("lock")
                .push(Received { conn, head, body });
            match script(&path) {
                Answer::Bytes(bytes, close) => {
                    let end = bytes
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(bytes.len(), |i| i + 4);
                    let bytes = if head_only { &bytes[..end] } else { bytes };
                    if s.write_all(bytes).await.is_err() || close {
                        return;
                    }
                }
                Answer::Big(n) => {
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
                    let mut ok = s.write_all(head.as_bytes()).await.is_ok();
                    let piece = vec![b'x'; 64 * 1024];
                    let mut left = n;
                    while ok && left > 0 {
                        let k = left.min(piece.len());
                        ok = s.write_all(&piece[..k]).await.is_ok();
                        left -= k;
                    }
                    if !ok {
                        *released.lock().expect("lock") = Some(Instant::now());
                        return;
                    }
                }
                Answer::Reset => {
                    reset(&s);
                    return;
                }
            }
        }
        // A head the script resets on is acted on as soon as it is whole.
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            if matches!(script(path), Answer::Reset) {
                log.lock().expect("lock").push(Received {
                    conn,
                    head,
                    body: Vec::new(),
                });
                reset(&s);
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Make closing `s` send a reset, not a FIN.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// What a raw client got.
#[derive(Debug)]
pub struct RawReply {
    /// Every byte the proxy sent.
    pub bytes: Vec<u8>,
    /// How long after the last piece was sent the proxy closed (`None`:
    /// still open when the client gave up).
    pub closed_after: Option<Duration>,
}

impl RawReply {
    /// The bytes as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status codes of the responses, in order.
    pub fn statuses(&self) -> Vec<u16> {
        let text = self.text();
        text.match_indices("HTTP/1.")
            .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
            .collect()
    }
}

/// Send `pieces` to `addr`, each after `pause`, then read until the proxy
/// closes or `wait` passes.
pub async fn send_raw(
    addr: SocketAddr,
    pieces: &[&[u8]],
    pause: Duration,
    wait: Duration,
) -> RawReply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.set_nodelay(true);
    let mut bytes = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        if s.write_all(p).await.is_err() {
            break;
        }
    }
    let sent = Instant::now();
    let deadline = tokio::time::Instant::now() + wait;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawReply {
                    bytes,
                    closed_after: Some(sent.elapsed()),
                }
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => {
                return RawReply {
                    bytes,
                    closed_after: None,
                }
            }
        }
    }
}

/// Read one request head from `s`, a byte at a time (so nothing behind it
/// is taken): its text, or `None` if the connection ends first.
pub async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.ok()?;
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}
