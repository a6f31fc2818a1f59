//! Finding the end of a chunked body passed through as is. The fast path
//! does not decode the body (the client gets the backend's chunks
//! unchanged); it only has to know where the body ends, to reuse the
//! backend connection and to serve the next request on the client's. Pure.

/// The body's chunk framing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct ChunkError;

/// Chunk sizes above this are refused (no real body comes near).
const MAX_CHUNK: u64 = 1 << 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far, digits seen, whitespace seen
    /// after them (no more digits then), in an extension.
    Size {
        n: u64,
        digits: u8,
        ws: bool,
        ext: bool,
    },
    /// A chunk-size line's `\r`: its `\n` must follow.
    SizeLf { n: u64, digits: u8 },
    /// In chunk data: bytes left.
    Data(u64),
    /// After chunk data: expecting its line end.
    DataEnd,
    /// After chunk data and a `\r`: expecting `\n`.
    DataEndLf,
    /// After the last chunk: trailer lines until an empty one.
    Trailer { line_start: bool },
    /// A trailer line's `\r`: its `\n` must follow.
    TrailerLf { line_start: bool },
    /// The body is complete.
    Done,
}

const SIZE_START: State = State::Size {
    n: 0,
    digits: 0,
    ws: false,
    ext: false,
};

/// The state after a chunk-size line of `digits` digits giving `n`.
fn size_line_end(n: u64, digits: u8) -> Result<State, ChunkError> {
    match (digits, n) {
        (0, _) => Err(ChunkError),
        (_, 0) => Ok(State::Trailer { line_start: true }),
        _ => Ok(State::Data(n)),
    }
}

/// The state after a trailer line ends.
fn trailer_line_end(line_start: bool) -> State {
    if line_start {
        State::Done
    } else {
        State::Trailer { line_start: true }
    }
}

/// Tracks chunk framing across the reads of one body. Strict where a
/// client could read the framing differently (digits, line ends), so that
/// the proxy and the client agree on where the body ends.
#[derive(Debug, Clone)]
pub struct ChunkedEnd {
    state: State,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        ChunkedEnd { state: SIZE_START }
    }
}

impl ChunkedEnd {
    /// Feed the next bytes of the body; returns how many of them belong to it
    /// once its end is among them.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.state = match self.state {
                State::Done => return Ok(Some(i)),
                State::Data(left) => {
                    let take = left.min((data.len() - i) as u64);
                    i += take as usize;
                    self.state = if take == left {
                        State::DataEnd
                    } else {
                        State::Data(left - take)
                    };
                    continue;
                }
                State::Size { n, digits, ws, ext } => match b {
                    b'\n' => size_line_end(n, digits)?,
                    b'\r' => State::SizeLf { n, digits },
                    _ if ext => self.state,
                    b';' if digits > 0 => State::Size {
                        n,
                        digits,
                        ws,
                        ext: true,
                    },
                    b' ' | b'\t' if digits > 0 => State::Size {
                        n,
                        digits,
                        ws: true,
                        ext,
                    },
                    _ if ws => return Err(ChunkError),
                    _ => {
                        let d = (b as char).to_digit(16).ok_or(ChunkError)?;
                        let n = n * 16 + u64::from(d);
                        if n > MAX_CHUNK {
                            return Err(ChunkError);
                        }
                        State::Size {
                            n,
                            digits: digits.saturating_add(1),
                            ws,
                            ext,
                        }
                    }
                },
                State::SizeLf { n, digits } => match b {
                    b'\n' => size_line_end(n, digits)?,
                    _ => return Err(ChunkError),
                },
                State::DataEnd => match b {
                    b'\r' => State::DataEndLf,
                    b'\n' => SIZE_START,
                    _ => return Err(ChunkError),
                },
                State::DataEndLf => match b {
                    b'\n' => SIZE_START,
                    _ => return Err(ChunkError),
                },
                State::Trailer { line_start } => match b {
                    b'\n' => trailer_line_end(line_start),
                    b'\r' => State::TrailerLf { line_start },
                    _ => State::Trailer { line_start: false },
                },
                State::TrailerLf { line_start } => match b {
                    b'\n' => trailer_line_end(line_start),
                    _ => return Err(ChunkError),
                },
            };
            i += 1;
        }
        Ok((self.state == State::Done).then_some(data.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\n";

    #[test]
    fn the_end_is_found_in_one_piece() {
        let mut c = ChunkedEnd::default();
        let mut data = BODY.to_vec();
        data.extend_from_slice(b"HTTP/1.1 200");
        assert_eq!(c.feed(&data), Ok(Some(BODY.len())));
    }

    #[test]
    fn no_trailers_and_bare_newlines() {
        let mut c = ChunkedEnd::default();
        assert_eq!(c.feed(b"3\nabc\n0\n\nX"), Ok(Some(9)));
    }

    #[test]
    fn broken_framing_is_an_error() {
        assert_eq!(ChunkedEnd::default().feed(b"zz\r\n"), Err(ChunkError));
        assert_eq!(ChunkedEnd::default().feed(b"\r\n"), Err(ChunkError));
        assert_eq!(ChunkedEnd::default().feed(b"2\r\nabX"), Err(ChunkError));
        // Digits split by a space or a bare CR: a client could read either.
        assert_eq!(ChunkedEnd::default().feed(b"1 0\r\n"), Err(ChunkError));
        assert_eq!(ChunkedEnd::default().feed(b"1\r0\n"), Err(ChunkError));
        assert_eq!(ChunkedEnd::default().feed(b" 5\r\n"), Err(ChunkError));
        assert_eq!(
            ChunkedEnd::default().feed(b"0\r\nX: 1\rY\n"),
            Err(ChunkError)
        );
        // Whitespace before an extension is fine.
        assert_eq!(ChunkedEnd::default().feed(b"0 ;x=1\r\n\r\n"), Ok(Some(10)));
        assert_eq!(
            ChunkedEnd::default().feed(b"ffffffffffffffffff\r\n"),
            Err(ChunkError)
        );
    }

    proptest! {
        /// However the body is cut into reads, the end is found at the same
        /// place and not before.
        #[test]
        fn any_split_finds_the_same_end(cuts in proptest::collection::vec(0..BODY.len(), 0..6)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            cuts.push(BODY.len());
            let mut c = ChunkedEnd::default();
            let mut start = 0;
            let mut end = None;
            for cut in cuts {
                if cut < start { continue; }
                if let Some(n) = c.feed(&BODY[start..cut]).unwrap() {
                    end = Some(start + n);
                    break;
                }
                start = cut;
            }
            prop_assert_eq!(end, Some(BODY.len()));
        }
    }
}
