//! How items travel between stages: the envelope of each output mode ([`Carrier`]) and
//! the trace a sampled item carries ([`ItemTrace`]).

use opentelemetry::Context;
use tokio::time::Instant;

/// The trace an item carries: the context its next span is a child of, when it was
/// put in the queue the next stage reads, and its sequence number. Present only for
/// items in a sampled trace.
pub(crate) struct ItemTrace {
    pub(crate) cx: Context,
    pub(crate) enqueued: Instant,
    pub(crate) seq: u64,
}

/// An item taken out of its carrier. `value: None` is a skipped item's marker
/// (ordered mode only), which the sink needs to move past `seq`.
pub(crate) struct Opened<T> {
    pub(crate) seq: u64,
    pub(crate) trace: Option<Box<ItemTrace>>,
    pub(crate) value: Option<T>,
}

/// How items travel between stages. Each output mode has its own carrier so that
/// unordered items carry no sequence number and no skip marker: what crosses a
/// channel is kept as small as the mode allows (for `u64` items, 16 bytes unordered
/// against 8 for the bare value), because every byte of a queue slot is memory
/// traffic between the cores running neighbouring stages.
pub(crate) trait Carrier: Send + Sync + 'static {
    /// What crosses a channel.
    type Env<T>;
    /// Wraps an item.
    fn item<T: Send + 'static>(seq: u64, trace: Option<Box<ItemTrace>>, value: T) -> Self::Env<T>;
    /// The marker of a skipped item, for modes that need one.
    fn skipped<T: Send + 'static>(seq: u64) -> Option<Self::Env<T>>;
    /// Unwraps an item.
    fn open<T: Send + 'static>(env: Self::Env<T>) -> Opened<T>;
}

/// The carrier of unordered runs: the value, and its trace when sampled (which holds
/// the sequence number for the span).
pub(crate) struct Unordered;

/// An unordered item.
pub(crate) struct UnorderedEnv<T> {
    pub(crate) trace: Option<Box<ItemTrace>>,
    pub(crate) value: T,
}

impl Carrier for Unordered {
    type Env<T> = UnorderedEnv<T>;

    #[inline]
    fn item<T: Send + 'static>(
        seq: u64,
        mut trace: Option<Box<ItemTrace>>,
        value: T,
    ) -> Self::Env<T> {
        if let Some(t) = &mut trace {
            t.seq = seq;
        }
        UnorderedEnv { trace, value }
    }

    #[inline]
    fn skipped<T: Send + 'static>(_seq: u64) -> Option<Self::Env<T>> {
        None
    }

    #[inline]
    fn open<T: Send + 'static>(env: Self::Env<T>) -> Opened<T> {
        Opened {
            seq: env.trace.as_ref().map_or(0, |t| t.seq),
            trace: env.trace,
            value: Some(env.value),
        }
    }
}

/// The carrier of ordered runs: every item has its sequence number, and skipped items
/// travel on as markers.
pub(crate) struct Ordered;

/// An ordered item, or (`value: None`) a skipped item's marker.
pub(crate) struct OrderedEnv<T> {
    pub(crate) seq: u64,
    pub(crate) trace: Option<Box<ItemTrace>>,
    pub(crate) value: Option<T>,
}

impl Carrier for Ordered {
    type Env<T> = OrderedEnv<T>;

    #[inline]
    fn item<T: Send + 'static>(seq: u64, trace: Option<Box<ItemTrace>>, value: T) -> Self::Env<T> {
        OrderedEnv {
            seq,
            trace,
            value: Some(value),
        }
    }

    #[inline]
    fn skipped<T: Send + 'static>(seq: u64) -> Option<Self::Env<T>> {
        Some(OrderedEnv {
            seq,
            trace: None,
            value: None,
        })
    }

    #[inline]
    fn open<T: Send + 'static>(env: Self::Env<T>) -> Opened<T> {
        Opened {
            seq: env.seq,
            trace: env.trace,
            value: env.value,
        }
    }
}
