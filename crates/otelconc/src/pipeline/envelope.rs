//! What crosses a stage buffer in each output mode ([`Mode`]): the item as a
//! [`Carried`] value, plus, in ordered runs, its sequence number (or a skipped item's
//! marker).

use crate::telemetry::Carried;

/// How items travel between stages. Each output mode has its own envelope so that
/// unordered items carry no sequence number and no skip marker: what crosses a channel
/// is kept as small as the mode allows (for `u64` items, 16 bytes unordered against 8
/// for the bare value), because every byte of a queue slot is memory traffic between
/// the cores running neighbouring stages.
pub(crate) trait Mode: Send + Sync + 'static {
    /// What crosses a channel.
    type Env<T>;
    /// Wraps item `seq`.
    fn item<T: Send + 'static>(seq: u64, item: Carried<T>) -> Self::Env<T>;
    /// The marker of a skipped item, for modes that need one.
    fn skipped<T: Send + 'static>(seq: u64) -> Option<Self::Env<T>>;
    /// Unwraps an item: its sequence number and the item, `None` for a skipped item's
    /// marker.
    fn open<T: Send + 'static>(env: Self::Env<T>) -> (u64, Option<Carried<T>>);
}

/// Unordered runs: the carried item alone. Its sequence number (for the span) rides in
/// its [`Trace`](crate::telemetry::Trace), when it carries one.
pub(crate) struct Unordered;

impl Mode for Unordered {
    type Env<T> = Carried<T>;

    #[inline]
    fn item<T: Send + 'static>(seq: u64, mut item: Carried<T>) -> Self::Env<T> {
        if let Some(t) = &mut item.trace {
            t.seq = seq;
        }
        item
    }

    #[inline]
    fn skipped<T: Send + 'static>(_seq: u64) -> Option<Self::Env<T>> {
        None
    }

    #[inline]
    fn open<T: Send + 'static>(env: Self::Env<T>) -> (u64, Option<Carried<T>>) {
        (env.trace.as_ref().map_or(0, |t| t.seq), Some(env))
    }
}

/// Ordered runs: every item has its sequence number, and skipped items travel on as
/// markers (`None`) so the sink can move past them.
pub(crate) struct Ordered;

impl Mode for Ordered {
    type Env<T> = (u64, Option<Carried<T>>);

    #[inline]
    fn item<T: Send + 'static>(seq: u64, item: Carried<T>) -> Self::Env<T> {
        (seq, Some(item))
    }

    #[inline]
    fn skipped<T: Send + 'static>(seq: u64) -> Option<Self::Env<T>> {
        Some((seq, None))
    }

    #[inline]
    fn open<T: Send + 'static>(env: Self::Env<T>) -> (u64, Option<Carried<T>>) {
        env
    }
}

#[cfg(test)]
mod tests {
    use super::{Mode, Ordered, Unordered};

    /// What crosses a buffer is no bigger than the old envelopes were: the value and
    /// one pointer unordered; plus the sequence number and the skip marker ordered.
    #[test]
    fn envelopes_stay_small() {
        assert_eq!(size_of::<<Unordered as Mode>::Env<u64>>(), 16);
        assert_eq!(size_of::<<Ordered as Mode>::Env<u64>>(), 32);
    }
}
