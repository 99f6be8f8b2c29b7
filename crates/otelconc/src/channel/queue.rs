//! The queue: `async-channel`, bare or carried. It carries either the bare message
//! (nothing observes the channel: no SDK reads its metrics and the tracer builds no
//! spans; then no context travels either) or the message as a [`Carried`] (room for the
//! sender's context and a timestamp).
//!
//! The bare form keeps the slot size of raw async-channel: with several producers and
//! consumers on neighbouring slots, eight more bytes per slot cost up to ~15%.
//!
//! # Why async-channel, and what was checked against crossfire
//! The channel, the pool's queue, the pipeline buffers and the fan-in all run on
//! async-channel 2.5. crossfire 3.1 (`mpmc::bounded_async`) moves a message in about a
//! third of the time (the `channel` bench suite runs both as peers), so it was evaluated
//! as the queue under every primitive, in `tests/queue_eval.rs` (real tests, run them in
//! release) and `examples/queue_probe.rs` (one-off measurements), crossfire 3.1.22
//! against async-channel 2.5 on the shared 2-core machine:
//! - Cancelled receives: 1,000,000 receive attempts raced against a 1 µs timer or
//!   dropped after one pending poll, two producers and two consumers: nothing lost,
//!   nothing received twice, every message dropped once (pass). A receiver woken by a
//!   send and then dropped passes the wake-up on to the next parked receiver (pass, as
//!   async-channel).
//! - Cancelled sends: `send_with_timer` hands the message back on timeout; a plain
//!   `send` dropped while pending drops its message unsent; 200,000 mixed sends: each
//!   message received, handed back, or dropped with its future, exactly once (pass).
//! - FIFO per producer (pass); receivers drain what was sent before the last sender
//!   left, then see `Disconnected`; a parked sender fails when the last receiver leaves
//!   (pass).
//! - One worker (`current_thread` and `multi_thread(1)`), capacities 1 to 1024:
//!   completes, in order (pass). But on one core (`taskset -c 0`) crossfire spins:
//!   capacity 1 cost 11.5 µs of CPU per message for 11.5 µs of wall time (async-channel:
//!   9.3 µs CPU for 16 µs); below capacity 10 its futures spin and call
//!   `std::thread::yield_now` inside `poll`, on the runtime's worker thread, unless the
//!   program calls `crossfire::detect_backoff_cfg()`, as its docs warn.
//! - A parked receiver burns no CPU: under one 10 ms tick over 10 idle seconds for
//!   either. Delivery at one message per ms (3,000 messages): p50 9.8 µs, p99 43 µs
//!   (async-channel: 23 µs, 39 µs). 1p1c, capacity 1024: 40-74 ns per message against
//!   130-279 ns (two noisy runs).
//! - MSRV 1.79, below ours (1.88). About 230 `unsafe` uses (raw slot reads and
//!   writes in its crossbeam-derived queues, `MaybeUninit` messages in the futures,
//!   waker registries). Maintenance: one maintainer, about 30 releases in 2026, the API
//!   rewritten twice in a year, and two message-safety fixes in the last three months
//!   (3.1.20: a message lost by `try_recv` while a sender drops; 3.1.22: messages
//!   leaked by send futures dropped before their first poll); its README warns that
//!   bugs may hide in atomics on weakly ordered platforms.
//!
//! What rules it out is not any of these but the shape of the API: crossfire has no
//! `close()`. Its channel closes only when the last sender or the last receiver is
//! dropped, while otelconc's channels close while handles live: `Sender::close` and
//! `Receiver::close`, the pool's `close` with submitters still holding the pool, the
//! pipeline and fan-in closing their buffers. async-channel closes inside its queue,
//! atomically with pushes, so a send either lands before the close (and is drained) or
//! fails with `Closed`. Laid over crossfire, a close is a flag beside the queue: a send
//! racing it can land after a receiver saw "closed and empty" and stopped, so a
//! message reported sent would be neither received nor dropped with the last receiver,
//! against the channel's promise. Making it exact costs a counted section around every
//! send (a read-modify-write on a line every producer shares), and parked senders and
//! receivers must then also wait on a close event of ours beside crossfire's wakers:
//! the notification work that makes async-channel slower comes back. So the queue stays
//! async-channel; the bench keeps raw crossfire and kanal (not cancel-safe) as peers to
//! show the distance.
//!
//! Fewer wake-ups alone do not close it either: async-channel takes three full fences
//! per message (a notification of receivers and one of streams per send, one of senders
//! per receive); `gated` in the probe keeps its queue (concurrent-queue) and wakes only
//! when a waiter is counted, one fence per operation. Over four back-to-back runs it
//! measured 0.45-1.7x async-channel at 1p1c and 0.7-1.2x at 4p4c, while crossfire
//! measured 0.4-1.2x and 0.4-1.8x: on this shared machine, no steady gain.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;

use super::error::RecvError;
use crate::telemetry::Carried;

type TrySendError<T> = async_channel::TrySendError<Carried<T>>;

/// The sending side of the underlying channel.
pub(super) enum Tx<T> {
    Bare(async_channel::Sender<T>),
    Wrapped(async_channel::Sender<Carried<T>>),
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Bare(tx) => Self::Bare(tx.clone()),
            Self::Wrapped(tx) => Self::Wrapped(tx.clone()),
        }
    }
}

macro_rules! both {
    ($self:expr, $x:ident => $e:expr) => {
        match $self {
            Self::Bare($x) => $e,
            Self::Wrapped($x) => $e,
        }
    };
}

impl<T> Tx<T> {
    /// Pushes `msg` if there is room. A bare channel drops `msg.trace`, which is always
    /// `None` there (nothing samples or traces).
    #[inline]
    pub(super) fn try_send(&self, msg: Carried<T>) -> Result<(), TrySendError<T>> {
        match self {
            Self::Wrapped(tx) => tx.try_send(msg),
            Self::Bare(tx) => tx.try_send(msg.value).map_err(|e| match e {
                async_channel::TrySendError::Full(v) => {
                    async_channel::TrySendError::Full(Carried::bare(v))
                }
                async_channel::TrySendError::Closed(v) => {
                    async_channel::TrySendError::Closed(Carried::bare(v))
                }
            }),
        }
    }

    pub(super) fn send_blocking(&self, msg: Carried<T>) -> Result<(), Carried<T>> {
        match self {
            Self::Wrapped(tx) => tx.send_blocking(msg).map_err(|e| e.0),
            Self::Bare(tx) => tx.send_blocking(msg.value).map_err(|e| Carried::bare(e.0)),
        }
    }

    pub(super) fn close(&self) -> bool {
        both!(self, tx => tx.close())
    }

    pub(super) fn is_closed(&self) -> bool {
        both!(self, tx => tx.is_closed())
    }

    pub(super) async fn closed(&self) {
        both!(self, tx => tx.closed().await)
    }

    pub(super) fn len(&self) -> usize {
        both!(self, tx => tx.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        both!(self, tx => tx.is_empty())
    }

    pub(super) fn is_full(&self) -> bool {
        both!(self, tx => tx.is_full())
    }

    pub(super) fn capacity(&self) -> Option<usize> {
        both!(self, tx => tx.capacity())
    }

    pub(super) fn sender_count(&self) -> usize {
        both!(self, tx => tx.sender_count())
    }
}

pin_project_lite::pin_project! {
    /// The receiving side of the underlying channel.
    #[project = RxProj]
    pub(super) enum Rx<T> {
        Bare { #[pin] rx: async_channel::Receiver<T> },
        Wrapped { #[pin] rx: async_channel::Receiver<Carried<T>> },
    }
}

impl<T> Clone for Rx<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Bare { rx } => Self::Bare { rx: rx.clone() },
            Self::Wrapped { rx } => Self::Wrapped { rx: rx.clone() },
        }
    }
}

macro_rules! both_rx {
    ($self:expr, $x:ident => $e:expr) => {
        match $self {
            Self::Bare { rx: $x } => $e,
            Self::Wrapped { rx: $x } => $e,
        }
    };
}

impl<T> Rx<T> {
    #[inline]
    pub(super) fn try_recv(&self) -> Result<Carried<T>, async_channel::TryRecvError> {
        match self {
            Self::Bare { rx } => rx.try_recv().map(Carried::bare),
            Self::Wrapped { rx } => rx.try_recv(),
        }
    }

    pub(super) fn recv_blocking(&self) -> Result<Carried<T>, RecvError> {
        match self {
            Self::Bare { rx } => rx.recv_blocking().map(Carried::bare).map_err(|_| RecvError),
            Self::Wrapped { rx } => rx.recv_blocking().map_err(|_| RecvError),
        }
    }

    pub(super) fn close(&self) -> bool {
        both_rx!(self, rx => rx.close())
    }

    pub(super) fn is_closed(&self) -> bool {
        both_rx!(self, rx => rx.is_closed())
    }

    pub(super) fn len(&self) -> usize {
        both_rx!(self, rx => rx.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        both_rx!(self, rx => rx.is_empty())
    }

    pub(super) fn is_full(&self) -> bool {
        both_rx!(self, rx => rx.is_full())
    }

    pub(super) fn capacity(&self) -> Option<usize> {
        both_rx!(self, rx => rx.capacity())
    }

    pub(super) fn sender_count(&self) -> usize {
        both_rx!(self, rx => rx.sender_count())
    }

    pub(super) fn poll_next_msg(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Carried<T>>> {
        match self.project() {
            RxProj::Bare { rx } => rx.poll_next(cx).map(|o| o.map(Carried::bare)),
            RxProj::Wrapped { rx } => rx.poll_next(cx),
        }
    }
}
