//! The queue: `async-channel`, bare or carried. It carries either the bare message
//! (nothing observes the channel: no SDK reads its metrics and the tracer builds no
//! spans; then no context travels either) or the message as a [`Carried`] (room for the
//! sender's context and a timestamp).
//!
//! The bare form keeps the slot size of raw async-channel: with several producers and
//! consumers on neighbouring slots, eight more bytes per slot cost up to ~15%.

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
