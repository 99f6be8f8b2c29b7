//! [`Permit`]: a slot held by [`Sender::reserve`](super::Sender::reserve).

use std::fmt;

use super::error::TrySendError;
use super::metrics::Outcome;
use super::sender::Sender;

/// One slot of a channel, held by [`Sender::reserve`] or [`Sender::try_reserve`]:
/// [`send`](Self::send) puts one message into it without waiting; dropping the permit
/// gives the slot back.
///
/// See [`Sender::reserve`] for what a permit guarantees.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// let permit = tx.reserve().await.unwrap();
/// permit.send(7).unwrap();
/// assert_eq!(rx.recv().await, Ok(7));
/// # });
/// ```
#[must_use = "a permit holds a slot of the channel until it is used or dropped"]
pub struct Permit<'a, T> {
    sender: &'a Sender<T>,
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("sender", &self.sender)
            .finish()
    }
}

impl<'a, T> Permit<'a, T> {
    pub(super) fn new(sender: &'a Sender<T>) -> Self {
        Self { sender }
    }

    /// Sends `value` into the held slot, without waiting, and gives the slot up.
    ///
    /// Counted like a [`Sender::try_send`]; the message carries the context current
    /// here (as [`Sender::send`] says).
    ///
    /// # Errors
    /// [`TrySendError::Closed`] with the message if the channel closed since the
    /// reservation. [`TrySendError::Full`] with the message only if a plain `send`,
    /// `try_send` or `blocking_send` on this channel took the held slot (see
    /// [`Sender::reserve`]).
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{bounded, TrySendError};
    /// let (tx, rx) = bounded::<u32>("jobs", 1);
    /// let permit = tx.try_reserve().unwrap();
    /// rx.close();
    /// assert_eq!(permit.send(1), Err(TrySendError::Closed(1)));
    /// ```
    pub fn send(self, value: T) -> Result<(), TrySendError<T>> {
        let sender = self.sender;
        // Built while the permit still holds its slot: should the user's tracer panic
        // here, the permit's drop gives the slot back.
        let (msg, producer) = sender.carry(value);
        // The slot is given back below, after the push: no second release on drop.
        std::mem::forget(self);
        let pushed = sender.inner.try_send(msg);
        // After the push: a claimer never sees the slot free while it is being filled.
        sender.shared.space.release();
        let (outcome, result) = match pushed {
            Ok(()) => (Outcome::Ok, Ok(())),
            Err(async_channel::TrySendError::Full(msg)) => {
                (Outcome::Refused, Err(TrySendError::Full(msg.value)))
            }
            Err(async_channel::TrySendError::Closed(msg)) => {
                (Outcome::Closed, Err(TrySendError::Closed(msg.value)))
            }
        };
        sender.finish(outcome, producer);
        result
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.sender.shared.space.release();
    }
}
