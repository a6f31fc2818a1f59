//! The one retry rule. Every request path describes a failed attempt the
//! same way ([`Failed`]) and asks [`judge`] what to do: whether to try
//! again (and where), and whether the failure counts against the backend
//! (outlier ejection) and the shift gate's error window. Pure.
//!
//! The rule, in short: what cannot have reached a backend may go again
//! anywhere; what may have reached it goes again only if it may be sent
//! twice (idempotent, with its body still at hand) and nothing of the
//! answer came; nothing is retried once the answer began. A pooled
//! connection found closed by its backend (the keep-alive race every
//! HTTP/1 client meets) is the connection's fault, not the backend's: the
//! request goes again on a fresh connection to the same backend, once, and
//! nothing is counted against it.

use crate::health::FailureKind;

/// How far an attempt got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No connection (refused, timed out, TLS failed).
    Connect,
    /// Connected, but the request head did not fully reach the backend's
    /// socket: the backend cannot have acted on it.
    HeadUnsent,
    /// The head (at least) was sent; no byte of the answer came.
    Sent,
    /// Part of the answer came.
    Answering,
}

/// What is known about a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// The failure, as counted against a backend.
    pub kind: FailureKind,
    /// How far the attempt got.
    pub stage: Stage,
    /// The method may be sent twice.
    pub idempotent: bool,
    /// The body is still at hand to be sent again (no body, or one kept
    /// whole).
    pub resendable: bool,
    /// The connection came from the idle pool.
    pub reused: bool,
    /// The client's own request body stalled (the backend waited for it).
    pub client_stalled: bool,
    /// This request already had its one fresh-connection retry.
    pub fresh_retry_used: bool,
}

impl Failed {
    /// A failure of `kind` at `stage`, nothing else known yet: a method that
    /// may not be sent twice, its body at hand, a fresh connection. (The
    /// request's one fresh-connection retry is filled in by
    /// `decide::judge_failure`, which keeps it.)
    pub fn new(kind: FailureKind, stage: Stage) -> Failed {
        Failed {
            kind,
            stage,
            idempotent: false,
            resendable: true,
            reused: false,
            client_stalled: false,
            fresh_retry_used: false,
        }
    }
}

/// Where a failed request goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Nowhere: the client gets the error.
    No,
    /// The same backend, on a fresh connection (not counted as a retry).
    SameBackend,
    /// The next backend (a retry, if `retries` allows one).
    NextBackend,
}

/// The verdict on a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Where the request goes next.
    pub retry: Retry,
    /// The failure counts against the backend and the gate.
    pub blame: bool,
}

/// The verdict on `f`.
pub fn judge(f: &Failed) -> Decision {
    let stale = f.reused && matches!(f.kind, FailureKind::Reset);
    let again = |may: bool| match (may && f.resendable, stale && !f.fresh_retry_used) {
        (false, _) => Retry::No,
        (true, true) => Retry::SameBackend,
        (true, false) => Retry::NextBackend,
    };
    match f.stage {
        // Nothing was sent (nor any body read for it).
        Stage::Connect => Decision {
            retry: Retry::NextBackend,
            blame: true,
        },
        // Cannot have been acted on: any method may go again.
        Stage::HeadUnsent => Decision {
            retry: again(true),
            blame: !stale,
        },
        Stage::Sent => match f.kind {
            FailureKind::Reset => Decision {
                retry: again(f.idempotent),
                blame: !stale,
            },
            FailureKind::ReadTimeout => Decision {
                retry: Retry::No,
                blame: !f.client_stalled,
            },
            _ => Decision {
                retry: Retry::No,
                blame: true,
            },
        },
        Stage::Answering => Decision {
            retry: Retry::No,
            blame: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: FailureKind, stage: Stage) -> Failed {
        Failed {
            idempotent: true,
            ..Failed::new(kind, stage)
        }
    }

    fn d(retry: Retry, blame: bool) -> Decision {
        Decision { retry, blame }
    }

    #[test]
    fn what_cannot_have_reached_a_backend_goes_again_anywhere() {
        for kind in [
            FailureKind::ConnectRefused,
            FailureKind::ConnectTimeout,
            FailureKind::Tls,
        ] {
            let f = Failed {
                idempotent: false,
                ..failed(kind, Stage::Connect)
            };
            assert_eq!(judge(&f), d(Retry::NextBackend, true));
        }
        let post = Failed {
            idempotent: false,
            ..failed(FailureKind::Reset, Stage::HeadUnsent)
        };
        assert_eq!(judge(&post), d(Retry::NextBackend, true));
    }

    #[test]
    fn what_may_have_reached_it_goes_again_only_if_it_may_be_sent_twice() {
        let get = failed(FailureKind::Reset, Stage::Sent);
        assert_eq!(judge(&get), d(Retry::NextBackend, true));
        let post = Failed {
            idempotent: false,
            ..get
        };
        assert_eq!(judge(&post), d(Retry::No, true));
        let streamed = Failed {
            resendable: false,
            ..get
        };
        assert_eq!(judge(&streamed), d(Retry::No, true));
        // A timeout is a 504, not a retry (the backend may still be busy).
        assert_eq!(
            judge(&failed(FailureKind::ReadTimeout, Stage::Sent)),
            d(Retry::No, true)
        );
        // Nothing once the answer began.
        assert_eq!(
            judge(&failed(FailureKind::Reset, Stage::Answering)),
            d(Retry::No, true)
        );
        assert_eq!(
            judge(&failed(FailureKind::Other, Stage::Sent)),
            d(Retry::No, true)
        );
    }

    #[test]
    fn a_stale_pooled_connection_is_retried_fresh_once_and_not_blamed() {
        let stale = Failed {
            reused: true,
            ..failed(FailureKind::Reset, Stage::HeadUnsent)
        };
        assert_eq!(judge(&stale), d(Retry::SameBackend, false));
        let sent = Failed {
            stage: Stage::Sent,
            ..stale
        };
        assert_eq!(judge(&sent), d(Retry::SameBackend, false));
        // A POST that may have been read is not sent again, but the
        // keep-alive race is still not the backend's failure.
        let post = Failed {
            idempotent: false,
            ..sent
        };
        assert_eq!(judge(&post), d(Retry::No, false));
        // The second stale connection in one request: an ordinary retry.
        let again = Failed {
            fresh_retry_used: true,
            ..sent
        };
        assert_eq!(judge(&again), d(Retry::NextBackend, false));
    }

    #[test]
    fn a_backend_waiting_for_a_stalled_client_body_is_not_blamed() {
        let f = Failed {
            client_stalled: true,
            ..failed(FailureKind::ReadTimeout, Stage::Sent)
        };
        assert_eq!(judge(&f), d(Retry::No, false));
    }
}
