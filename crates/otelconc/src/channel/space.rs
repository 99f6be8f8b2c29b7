//! Waiting for a free slot without async-channel's send future (which owns the message
//! and drops it when cancelled): the event that lossless senders and reservers wait
//! on, and the slots that [`Permit`](super::Permit)s hold.
//!
//! Receivers touch this through [`Space::freed`] (one atomic load, plus a wake-up while
//! someone is actually waiting) and, when they close the channel, [`Space::closed`]. Plain `send`, `try_send` and `blocking_send` never
//! touch it, so they cost what async-channel costs; the price is that they do not see
//! reservations (see [`Space::try_claim`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};

use crossbeam_utils::CachePadded;
use event_listener::{Event, EventListener};

/// The channel's free-slot signal and its reserved slots.
pub(super) struct Space {
    /// Woken when a slot frees up or the channel closes.
    event: Event,
    /// How many waiters are registered on `event`.
    waiters: AtomicUsize,
    /// Slots claimed by live permits (and, for the length of one push, by lossless
    /// sends). On a cache line of its own: lossless senders write it, while every
    /// receive reads `waiters`.
    reserved: CachePadded<AtomicUsize>,
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// A slot is now held; give it back with [`Space::release`].
    Held,
    /// Every slot is taken by a message or a reservation.
    Full,
}

impl Space {
    pub(super) fn new() -> Self {
        Self {
            event: Event::new(),
            waiters: AtomicUsize::new(0),
            reserved: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// After `n` messages left the channel: wake as many waiters.
    ///
    /// The load is `SeqCst` and the queue's pop is a `SeqCst` read-modify-write, while a
    /// waiter increments `waiters` (`SeqCst`) before it retries: either this load sees
    /// the waiter, or the waiter's retry sees the freed slot.
    #[inline]
    pub(super) fn freed(&self, n: usize) {
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.event.notify_additional(n);
        }
    }

    /// Wakes every waiter: the channel closed.
    pub(super) fn closed(&self) {
        self.event.notify(usize::MAX);
    }

    /// Claims a slot if `len() + reserved < capacity` (always, unbounded).
    ///
    /// Exact among claimers: `reserved` is read before the length and changed only by
    /// a compare-and-swap, and a permit gives its slot back only after its message is
    /// in the queue, so a stale length can only over-count. It does not stop a plain
    /// `send`/`try_send`/`blocking_send`, which push whenever the queue has room, from
    /// taking a slot that a permit holds.
    pub(super) fn try_claim(&self, len: impl Fn() -> usize, capacity: Option<usize>) -> Claim {
        let mut reserved = self.reserved.load(Ordering::SeqCst);
        loop {
            if let Some(cap) = capacity
                && len().saturating_add(reserved) >= cap
            {
                return Claim::Full;
            }
            match self.reserved.compare_exchange(
                reserved,
                reserved + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Claim::Held,
                Err(now) => reserved = now,
            }
        }
    }

    /// Gives back a claimed slot, and wakes a waiter if there is one.
    ///
    /// The wake-up is needed even when a message went into the slot: between that push
    /// and this release the message is counted twice (in the length and in `reserved`),
    /// so a claimer in between saw the channel full and went to sleep on a slot that is
    /// free now.
    ///
    /// The decrement is `SeqCst` before the `SeqCst` load of `waiters`, and a waiter
    /// registers before it retries its claim: either this sees the waiter, or the
    /// waiter's retry sees the slot.
    #[inline]
    pub(super) fn release(&self) {
        self.reserved.fetch_sub(1, Ordering::SeqCst);
        self.freed(1);
    }
}

/// One waiter's registration on [`Space`]; deregisters when dropped or stopped, and a
/// wake-up it received but did not use passes to another waiter (event-listener does
/// that for a dropped, notified listener).
pub(super) struct Waiter<'a> {
    space: &'a Space,
    listener: Option<EventListener>,
    registered: bool,
}

impl<'a> Waiter<'a> {
    pub(super) fn new(space: &'a Space) -> Self {
        Self {
            space,
            listener: None,
            registered: false,
        }
    }

    /// Whether it has waited yet (registered on the event).
    pub(super) fn is_registered(&self) -> bool {
        self.registered
    }

    /// Called after an attempt found no room: `Ready` means "try again now" (just
    /// registered and listening, or woken), `Pending` that the task will be woken.
    ///
    /// Listen, then try again: a slot freed in between is seen by the retry, a slot
    /// freed later by the listener.
    pub(super) fn poll_room(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        match self.listener.as_mut() {
            None => {
                if !self.registered {
                    self.space.waiters.fetch_add(1, Ordering::SeqCst);
                    self.registered = true;
                }
                self.listener = Some(self.space.event.listen());
                Poll::Ready(())
            }
            Some(l) => match Pin::new(l).poll(cx) {
                Poll::Ready(()) => {
                    self.listener = None;
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    /// Stops waiting: drops the listener and deregisters.
    pub(super) fn stop(&mut self) {
        self.listener = None;
        if std::mem::take(&mut self.registered) {
            self.space.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}
