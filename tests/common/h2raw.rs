//! Raw HTTP/2 frames for abuse tests: what a hostile client writes, byte by
//! byte, without a library that would refuse to misbehave.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const GOAWAY: u8 = 7;
pub const CONTINUATION: u8 = 9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame, appended to `out`.
pub fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK block for `GET /` (or `POST /` when `post`) to `authority`,
/// from the static table and one literal.
pub fn request_block(authority: &str, post: bool) -> Vec<u8> {
    // :method GET (2) or POST (3), :scheme http (6), :path / (4).
    let mut b = vec![if post { 0x83 } else { 0x82 }, 0x86, 0x84];
    // :authority, literal without indexing, name from the table (1).
    b.push(0x01);
    b.push(authority.len() as u8);
    b.extend_from_slice(authority.as_bytes());
    b
}

/// Connect and send the preface and an empty SETTINGS frame.
pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    frame(&mut hello, SETTINGS, 0, 0, &[]);
    s.write_all(&hello).await.unwrap();
    s
}

/// What the server did with the connection, read until it closed or
/// `within` passed.
#[derive(Debug, Default)]
pub struct Seen {
    /// A GOAWAY frame arrived; its error code.
    pub goaway: Option<u32>,
    /// The server closed (or reset) the connection.
    pub closed: bool,
    /// HEADERS frames received (responses).
    pub responses: usize,
}

/// Read frames from `s` until the server closes it or `within` passes.
pub async fn watch(s: &mut TcpStream, within: Duration) -> Seen {
    let mut seen = Seen::default();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut chunk = [0u8; 16384];
        let read = tokio::time::timeout_at(deadline, s.read(&mut chunk)).await;
        match read {
            Err(_) => return seen,
            Ok(Ok(0)) | Ok(Err(_)) => {
                seen.closed = true;
                return seen;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            match buf[3] {
                GOAWAY if len >= 8 => {
                    seen.goaway = Some(u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]));
                }
                HEADERS => seen.responses += 1,
                _ => {}
            }
            buf.drain(..9 + len);
        }
    }
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}
