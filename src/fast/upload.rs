//! Request bodies streamed to the backend as they arrive: a
//! `Content-Length` body larger than `retry_buffer`, or a chunked one
//! (passed through with its framing, checked by the strict chunk tracker so
//! that the request behind it on the connection stays for its turn).
//!
//! The head goes first; until the body's first byte is read from the client
//! the request can still be retried (a refused connection, a stale pooled
//! one), after that it cannot: its body is gone. The client's reads
//! are held to `body_timeout` (then 408), the backend's writes to
//! `read_timeout`.

use super::exchange;
use super::request::Streamed;
use super::{respond_error, Answer, BodyError, Request};
use crate::chunked::ChunkedEnd;
use crate::conn::GuardedStream;
use crate::request::decide;
use crate::request::retry::{Failed, Stage};
use crate::request::Ctx;
use crate::snapshot::Snapshot;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The most of a streamed body read and sent at a time.
const CHUNK: usize = 16 * 1024;
/// The room a read starts with: it doubles while reads fill it (up to
/// [`CHUNK`]) and halves when they do not, so a client that stalls mid-body
/// holds little.
const FIRST_ROOM: usize = 4 * 1024;

/// Where a streamed body stands.
pub(super) struct Body {
    framing: Streamed,
    /// `Content-Length` bytes still to come from the client.
    left: u64,
    chunks: ChunkedEnd,
    done: bool,
}

impl Body {
    /// A body framed as `framing`, all of it still to be read.
    pub(super) fn new(framing: Streamed) -> Body {
        Body {
            framing,
            left: match framing {
                Streamed::Length(n) => n,
                Streamed::Chunked => 0,
            },
            chunks: ChunkedEnd::default(),
            done: matches!(framing, Streamed::Length(0)),
        }
    }

    /// Of `data`, the body's next bytes, how many belong to it.
    fn account(&mut self, data: &[u8]) -> Result<usize, ()> {
        match self.framing {
            Streamed::Length(_) => {
                let n = (data.len() as u64).min(self.left) as usize;
                self.left -= n as u64;
                self.done = self.left == 0;
                Ok(n)
            }
            Streamed::Chunked => match self.chunks.feed(data).map_err(|_| ())? {
                Some(n) => {
                    self.done = true;
                    Ok(n)
                }
                None => Ok(data.len()),
            },
        }
    }
}

/// Read the next part of the body from the client into `buf`.
async fn read_more(
    client: &mut GuardedStream,
    buf: &mut Vec<u8>,
    want: usize,
    stall: Duration,
) -> Result<(), BodyError> {
    buf.clear();
    // Room for all of it: a `Vec` without spare room grows by 64 bytes a
    // read.
    buf.reserve(want);
    let mut part = (&mut *client).take(want as u64);
    match tokio::time::timeout(stall, part.read_buf(buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Err(BodyError::Gone),
        Ok(Ok(_)) => Ok(()),
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// Attempts until one has the whole body sent and a response head back,
/// then the answer's relay.
pub(super) async fn proxy(
    ctx: &mut Ctx,
    snap: &Snapshot,
    req: Request<'_>,
    mut body: Body,
    client: &mut GuardedStream,
) -> Answer {
    let settings = &snap.config.proxy;
    let tagged = decide::tags_pool(ctx);
    let mut fresh = false;
    let mut part = Vec::new();
    let mut room = FIRST_ROOM;
    loop {
        let Some(id) = decide::begin_attempt(ctx) else {
            return respond_error(ctx, client, 502).await;
        };
        let (attempt, side) = super::plan(snap, id, &req, tagged);
        let skip_pool = std::mem::take(&mut fresh);
        let mut reused = false;
        let sent = match exchange::connect(&attempt, skip_pool).await {
            Ok((mut up, pooled)) => {
                reused = pooled;
                exchange::send(&mut up, req.head, req.head_len, settings.read_timeout)
                    .await
                    .map(|()| up)
            }
            Err(e) => Err(e),
        };
        let mut up = match sent {
            Ok(up) => up,
            Err(e) => {
                // No byte of the body has been read yet: the request can
                // be made again, as the retry rule allows.
                let failed = Failed {
                    idempotent: req.idempotent,
                    reused,
                    ..Failed::new(e.kind, e.stage)
                };
                if decide::judge_failure(ctx, failed) {
                    fresh = ctx.fresh_retry;
                    continue;
                }
                return respond_error(ctx, client, 502).await;
            }
        };
        // The rest of the body, as it comes.
        while !body.done {
            let want = match body.framing {
                Streamed::Length(_) => (body.left as usize).min(room),
                Streamed::Chunked => room,
            };
            match read_more(client, &mut part, want, settings.body_timeout).await {
                Ok(()) => {}
                Err(BodyError::TimedOut) => return respond_error(ctx, client, 408).await,
                Err(BodyError::Gone) => {
                    return Answer {
                        status: 499,
                        bytes: 0,
                        keep_alive: false,
                    }
                }
            }
            if part.len() == room && room < CHUNK {
                room *= 2;
            } else if part.len() < room / 2 && room > FIRST_ROOM {
                room /= 2;
                part.shrink_to(room);
            }
            let Ok(taken) = body.account(&part) else {
                return respond_error(ctx, client, 400).await;
            };
            if taken < part.len() {
                // The client's next request: kept for its turn.
                client.put_back(part[taken..].to_vec());
            }
            if let Err(e) = exchange::send(&mut up, &part[..taken], 0, settings.read_timeout).await
            {
                let failed = Failed {
                    idempotent: req.idempotent,
                    resendable: false,
                    ..Failed::new(e.kind, Stage::Sent)
                };
                decide::judge_failure(ctx, failed);
                return respond_error(ctx, client, 502).await;
            }
        }
        let mut buf = Vec::with_capacity(exchange::RESPONSE_BUF);
        let mut out = Vec::with_capacity(512);
        let head =
            match exchange::read_head(&mut up, settings.read_timeout, side, &mut buf, &mut out)
                .await
            {
                Ok(head) => head,
                Err(e) => {
                    let failed = Failed {
                        idempotent: req.idempotent,
                        resendable: false,
                        reused,
                        ..Failed::new(e.kind, e.stage)
                    };
                    decide::judge_failure(ctx, failed);
                    return respond_error(ctx, client, super::failure_status(e.kind)).await;
                }
            };
        decide::record_answer(ctx, head.status);
        return super::relay::relay(ctx, client, up, &attempt, buf, &out, head, settings).await;
    }
}
