//! The queue: `async-channel`, bare or enveloped. It carries either the bare message
//! (nothing observes the channel: no SDK reads its metrics and the tracer is a no-op)
//! or the message in an [`Env`] (room for a sampled timestamp or a trace context).
//!
//! The bare form keeps the slot size of raw async-channel: with several producers and
//! consumers on neighbouring slots, eight more bytes per slot cost up to ~15%.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;

use super::envelope::Env;
use super::error::RecvError;

type TrySendError<T> = async_channel::TrySendError<Env<T>>;

/// The sending side of the underlying channel.
pub(super) enum Tx<T> {
    Bare(async_channel::Sender<T>),
    Env(async_channel::Sender<Env<T>>),
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Bare(tx) => Self::Bare(tx.clone()),
            Self::Env(tx) => Self::Env(tx.clone()),
        }
    }
}

macro_rules! both {
    ($self:expr, $x:ident => $e:expr) => {
        match $self {
            Self::Bare($x) => $e,
            Self::Env($x) => $e,
        }
    };
}

impl<T> Tx<T> {
    /// Pushes `env` if there is room. A bare channel drops `env.meta`, which is always
    /// `None` there (nothing samples or traces).
    pub(super) fn try_send(&self, env: Env<T>) -> Result<(), TrySendError<T>> {
        match self {
            Self::Env(tx) => tx.try_send(env),
            Self::Bare(tx) => tx.try_send(env.value).map_err(|e| match e {
                async_channel::TrySendError::Full(v) => {
                    async_channel::TrySendError::Full(Env::bare(v))
                }
                async_channel::TrySendError::Closed(v) => {
                    async_channel::TrySendError::Closed(Env::bare(v))
                }
            }),
        }
    }

    pub(super) fn send_blocking(&self, env: Env<T>) -> Result<(), Env<T>> {
        match self {
            Self::Env(tx) => tx.send_blocking(env).map_err(|e| e.0),
            Self::Bare(tx) => tx.send_blocking(env.value).map_err(|e| Env::bare(e.0)),
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
        Env { #[pin] rx: async_channel::Receiver<Env<T>> },
    }
}

impl<T> Clone for Rx<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Bare { rx } => Self::Bare { rx: rx.clone() },
            Self::Env { rx } => Self::Env { rx: rx.clone() },
        }
    }
}

macro_rules! both_rx {
    ($self:expr, $x:ident => $e:expr) => {
        match $self {
            Self::Bare { rx: $x } => $e,
            Self::Env { rx: $x } => $e,
        }
    };
}

impl<T> Rx<T> {
    pub(super) fn try_recv(&self) -> Result<Env<T>, async_channel::TryRecvError> {
        match self {
            Self::Bare { rx } => rx.try_recv().map(Env::bare),
            Self::Env { rx } => rx.try_recv(),
        }
    }

    pub(super) fn recv_blocking(&self) -> Result<Env<T>, RecvError> {
        match self {
            Self::Bare { rx } => rx.recv_blocking().map(Env::bare).map_err(|_| RecvError),
            Self::Env { rx } => rx.recv_blocking().map_err(|_| RecvError),
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

    pub(super) fn poll_next_env(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Env<T>>> {
        match self.project() {
            RxProj::Bare { rx } => rx.poll_next(cx).map(|o| o.map(Env::bare)),
            RxProj::Env { rx } => rx.poll_next(cx),
        }
    }
}
