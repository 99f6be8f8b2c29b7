//! The sending half.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use opentelemetry::Context;
use tokio::time::Instant;

use super::carry::end_producer;
use super::error::{SendError, SendTimeoutError, TrySendError};
use super::metrics::{Outcome, Side, Waited, record_wait, timed_blocking};
use super::permit::Permit;
use super::queue::Tx;
use super::space::{Claim, Waiter};
use super::state::Shared;
use crate::telemetry::{Carried, EndingSpan};

/// The sending half of a channel. Clone it for more producers.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 8);
/// let tx2 = tx.clone();
/// tx.send(1).await.unwrap();
/// tx2.send(2).await.unwrap();
/// assert_eq!(rx.len(), 2);
/// # });
/// ```
pub struct Sender<T> {
    pub(super) inner: Tx<T>,
    pub(super) shared: Arc<Shared>,
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("name", &self.shared.name.value)
            .field("len", &self.inner.len())
            .field("capacity", &self.inner.capacity())
            .field("closed", &self.inner.is_closed())
            .finish()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// `value` as it goes into the channel, and its producer span (if any).
    #[inline]
    pub(super) fn carry(&self, value: T) -> (Carried<T>, Option<EndingSpan>) {
        self.shared.carry(value)
    }

    /// Counts a finished send by `outcome` and ends its producer span, if it has one,
    /// by the error rule ([`Outcome::send_end`]).
    #[inline]
    pub(super) fn finish(&self, outcome: Outcome, producer: Option<EndingSpan>) {
        self.shared.metrics.sends.add(outcome, 1);
        if let Some(span) = producer {
            end_producer(span, outcome);
        }
    }

    /// Sends `value`, waiting for space if the channel is full.
    ///
    /// It costs what async-channel's send costs: it does not look at slots held by
    /// [`Permit`]s (see [`reserve`](Self::reserve)).
    ///
    /// The message carries the sender's context to the receiver whenever it holds a
    /// valid span context, sampled or not, or baggage (except on a channel nothing
    /// observes, see the [module docs](super#cost)). No span is built for the send
    /// itself, unless the channel was built with
    /// [`producer_spans(true)`](super::Builder::producer_spans) and the send is inside a
    /// sampled trace. See
    /// [`docs/telemetry.md`](https://example.invalid/otelconc/blob/main/docs/telemetry.md).
    ///
    /// # Errors
    /// [`SendError`] with the message if the channel is closed (every receiver dropped,
    /// or [`close`](Self::close) called).
    ///
    /// # Cancel safety
    /// If `send` is used as a branch in `tokio::select!` and another branch completes
    /// first, then it is guaranteed that the message was not sent. **However, in that
    /// case, the message is dropped and will be lost.** (It is counted as `cancelled`,
    /// and its producer span, if it has one, ends cancelled.)
    ///
    /// To avoid losing messages, use [`reserve`](Self::reserve) to reserve capacity,
    /// then use the returned [`Permit`] to send the message.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send(5).await.unwrap();
    /// assert_eq!(rx.recv().await, Ok(5));
    /// # });
    /// ```
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match &self.inner {
            Tx::Bare(tx) => send_bare(tx, value).await,
            Tx::Wrapped(tx) => {
                // Dropped before the send completes, `producer` ends its span as cancelled.
                let (msg, producer) = self.carry(value);
                self.send_carried(tx, msg, producer).await
            }
        }
    }

    /// As [`send`](Self::send), with the message carrying `cx` (an extracted remote
    /// context, say: see [`telemetry::extract`](crate::telemetry::extract)) instead of
    /// the current context. The receiver sees it exactly as it would see a local
    /// sender's context: it is carried when it holds a valid span context (sampled or
    /// not) or baggage, a traced receive's span is its child when it is sampled (by
    /// the rule in `docs/telemetry.md`), and producer spans are its children.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Cancel safety
    /// If `send_with_context` is used as a branch in `tokio::select!` and another branch
    /// completes first, then it is guaranteed that the message was not sent. **However,
    /// in that case, the message is dropped and will be lost.**
    ///
    /// To avoid losing messages, use [`reserve`](Self::reserve) to reserve capacity,
    /// then use the returned [`Permit`] to send the message.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::collections::HashMap;
    /// // Headers of a message from another process (here with no trace in them).
    /// let headers: HashMap<String, String> = HashMap::new();
    /// let cx = otelconc::telemetry::extract(&headers);
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send_with_context(5, &cx).await.unwrap();
    /// assert_eq!(rx.recv().await, Ok(5));
    /// # });
    /// ```
    pub async fn send_with_context(&self, value: T, cx: &Context) -> Result<(), SendError<T>> {
        match &self.inner {
            Tx::Bare(tx) => send_bare(tx, value).await,
            Tx::Wrapped(tx) => {
                let (msg, producer) = self.shared.carry_with(value, cx);
                self.send_carried(tx, msg, producer).await
            }
        }
    }

    /// Sends a carried message on a wrapped channel, waiting for space.
    async fn send_carried(
        &self,
        tx: &async_channel::Sender<Carried<T>>,
        msg: Carried<T>,
        producer: Option<EndingSpan>,
    ) -> Result<(), SendError<T>> {
        let metrics = &self.shared.metrics;
        // With space free, the message goes in without building the send future (as
        // that future's first poll would do).
        let sent = match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(msg)) => Err(async_channel::SendError(msg)),
            Err(async_channel::TrySendError::Full(msg)) if metrics.sends.is_on() => {
                Waited::new(tx.send(msg), &metrics.send_wait, &metrics.sends).await
            }
            Err(async_channel::TrySendError::Full(msg)) => tx.send(msg).await,
        };
        match sent {
            Ok(()) => {
                self.finish(Outcome::Ok, producer);
                Ok(())
            }
            Err(async_channel::SendError(msg)) => {
                self.finish(Outcome::Closed, producer);
                Err(SendError(msg.value))
            }
        }
    }

    /// Sends `value` if there is space now, without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the message.
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{bounded, TrySendError};
    /// let (tx, rx) = bounded::<u32>("jobs", 1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// drop(rx);
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if let Tx::Bare(tx) = &self.inner {
            return try_send_bare(tx, value);
        }
        let (msg, producer) = self.carry(value);
        self.try_send_carried(msg, producer)
    }

    /// As [`try_send`](Self::try_send), with the message carrying `cx` instead of the
    /// current context (see [`send_with_context`](Self::send_with_context)).
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    ///
    /// # Examples
    /// ```
    /// use opentelemetry::Context;
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send_with_context(1, &Context::new()).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_send_with_context(&self, value: T, cx: &Context) -> Result<(), TrySendError<T>> {
        if let Tx::Bare(tx) = &self.inner {
            return try_send_bare(tx, value);
        }
        let (msg, producer) = self.shared.carry_with(value, cx);
        self.try_send_carried(msg, producer)
    }

    fn try_send_carried(
        &self,
        msg: Carried<T>,
        producer: Option<EndingSpan>,
    ) -> Result<(), TrySendError<T>> {
        let (outcome, result) = match self.inner.try_send(msg) {
            Ok(()) => (Outcome::Ok, Ok(())),
            Err(async_channel::TrySendError::Full(msg)) => {
                (Outcome::Refused, Err(TrySendError::Full(msg.value)))
            }
            Err(async_channel::TrySendError::Closed(msg)) => {
                (Outcome::Closed, Err(TrySendError::Closed(msg.value)))
            }
        };
        self.finish(outcome, producer);
        result
    }

    /// Sends `value`, waiting at most `timeout` for space.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`], with the message.
    ///
    /// # Cancel safety
    /// If `send_timeout` is used as a branch in `tokio::select!` and another branch
    /// completes first, then it is guaranteed that the message was not sent.
    /// **However, in that case, the message is dropped and will be lost.** Its own
    /// timeout loses nothing: the error hands the message back (and a producer span,
    /// if the send has one, ends with `error.type = timeout`).
    ///
    /// To avoid losing messages, use [`reserve`](Self::reserve) to reserve capacity,
    /// then use the returned [`Permit`] to send the message.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use otelconc::channel::{bounded, SendTimeoutError};
    /// let (tx, _rx) = bounded::<u32>("jobs", 1);
    /// tx.send(1).await.unwrap();
    /// let err = tx.send_timeout(2, Duration::from_millis(1)).await.unwrap_err();
    /// assert_eq!(err, SendTimeoutError::Timeout(2));
    /// # });
    /// ```
    pub async fn send_timeout(
        &self,
        value: T,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut fut = self.send_lossless(value);
        match tokio::time::timeout(timeout, &mut fut).await {
            Ok(r) => r.map_err(|SendError(v)| SendTimeoutError::Closed(v)),
            Err(_) => match fut.take_back(Outcome::Timeout) {
                Some(v) => Err(SendTimeoutError::Timeout(v)),
                None => Ok(()),
            },
        }
    }

    /// Sends `value` and can give it back if you stop waiting: a lossless send for
    /// `select!` and timeouts.
    ///
    /// The returned future is `Unpin`: poll it through `&mut fut` in `select!`, and when
    /// another branch wins call [`SendLossless::cancel`] to get the message back.
    ///
    /// # Errors
    /// [`SendError`] with the message if the channel is closed.
    ///
    /// Use [`reserve`](Self::reserve) when you can produce the message after the slot
    /// is free; use this when you hold the message already and want a send that never
    /// fails with `Full`: it keeps waiting if a plain send took the slot it found, and
    /// it never takes a slot a [`Permit`] holds.
    ///
    /// # Cancel safety
    /// This method is cancel safe when the future is polled by `&mut` and
    /// [`SendLossless::cancel`] is called on it when another branch completes first:
    /// the message enters the channel only inside a poll that then returns
    /// `Ready(Ok(()))`, and until then `cancel` returns it. **Dropping the future
    /// without calling `cancel` drops the message and it will be lost** (counted as
    /// `cancelled`). Either way a producer span, if the send has one, ends with status
    /// Unset and `otelconc.outcome = cancelled`.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send(1).await.unwrap(); // now full
    /// let mut send = tx.send_lossless(2);
    /// tokio::select! {
    ///     r = &mut send => r.unwrap(),
    ///     _ = tokio::time::sleep(Duration::from_millis(1)) => {
    ///         assert_eq!(send.cancel(), Some(2)); // nothing lost
    ///     }
    /// }
    /// assert_eq!(rx.len(), 1);
    /// # });
    /// ```
    pub fn send_lossless(&self, value: T) -> SendLossless<'_, T> {
        SendLossless {
            sender: self,
            value: Some(value),
            msg: None,
            producer: None,
            waiter: Waiter::new(&self.shared.space),
            since: None,
        }
    }

    /// Sends `value` from synchronous code, blocking the thread while the channel is
    /// full.
    ///
    /// Do not call it from async code: it blocks the runtime's thread. Call it from
    /// `spawn_blocking` or a plain thread.
    ///
    /// # Errors
    /// [`SendError`] with the message if the channel is closed.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// std::thread::spawn(move || tx.blocking_send(9)).join().unwrap().unwrap();
    /// assert_eq!(rx.try_recv(), Ok(9));
    /// ```
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        let (msg, producer) = self.carry(value);
        let metrics = &self.shared.metrics;
        let result = match self.inner.try_send(msg) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(msg)) => Err(msg),
            Err(async_channel::TrySendError::Full(msg)) => {
                timed_blocking(&metrics.send_wait, &metrics.sends, || {
                    self.inner.send_blocking(msg)
                })
            }
        };
        let outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Closed
        };
        self.finish(outcome, producer);
        result.map_err(|msg| SendError(msg.value))
    }

    /// Closes the channel for every handle; returns `true` if this call closed it.
    ///
    /// Messages already in the channel can still be received. Blocked senders wake up
    /// with their message in a `Closed` error.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// assert!(tx.close());
    /// assert!(!rx.close());
    /// assert!(tx.is_closed());
    /// ```
    pub fn close(&self) -> bool {
        let closed = self.inner.close();
        self.shared.space.closed();
        closed
    }

    /// Whether the channel is closed.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Waits until the channel is closed (every receiver dropped, or `close` called).
    ///
    /// # Cancel safety
    /// This method is cancel safe.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// drop(rx);
    /// tx.closed().await;
    /// # });
    /// ```
    pub async fn closed(&self) {
        self.inner.closed().await;
    }

    /// Messages in the channel now.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the channel is empty.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Whether the channel is full (never, for an unbounded channel).
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(1).unwrap();
    /// assert!(tx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// The capacity, or `None` for an unbounded channel.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// assert_eq!(tx.capacity(), Some(4));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }

    /// Live sender handles.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// let _tx2 = tx.clone();
    /// assert_eq!(tx.sender_count(), 2);
    /// ```
    pub fn sender_count(&self) -> usize {
        self.inner.sender_count()
    }

    /// Live receiver handles.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// drop(rx);
    /// assert_eq!(tx.receiver_count(), 0);
    /// ```
    pub fn receiver_count(&self) -> usize {
        self.shared.receiver_handles.load(Ordering::Relaxed)
    }
}

impl<T> Sender<T> {
    /// Claims a slot for a permit, or says why not.
    #[inline]
    fn claim(&self) -> Result<Claim, SendError<()>> {
        if self.inner.is_closed() {
            return Err(SendError(()));
        }
        Ok(self
            .shared
            .space
            .try_claim(|| self.inner.len(), self.inner.capacity()))
    }

    /// Waits for a free slot and holds it: the returned [`Permit`] sends one message
    /// into it without waiting.
    ///
    /// This is the lossless way to send under `tokio::select!` or a timeout: reserving
    /// takes no message, so a reservation that loses the race loses nothing, and the
    /// message is handed over only once the slot is held.
    ///
    /// What a permit guarantees: reservations never over-commit the channel (the
    /// messages in it plus the live permits never exceed its capacity), and
    /// [`Permit::send`] fails with `Full` only if a plain [`send`](Self::send),
    /// [`try_send`](Self::try_send) or [`blocking_send`](Self::blocking_send) on this
    /// channel filled the held slot in the meantime: those fast paths do not look at
    /// reservations, so that they cost what async-channel costs. On a channel whose
    /// senders all go through `reserve`, [`try_reserve`](Self::try_reserve),
    /// [`send_lossless`](Self::send_lossless) or [`send_timeout`](Self::send_timeout),
    /// a permit's send never fails with `Full`.
    ///
    /// Reserving counts no send; the permit's send is counted like a
    /// [`try_send`](Self::try_send), and its message carries the trace context current
    /// at that send. One wait in 64 of each thread is timed into
    /// `otelconc.channel.send.wait.duration`.
    ///
    /// # Errors
    /// [`SendError`]`(())` if the channel is closed.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `reserve` is used as a branch in
    /// `tokio::select!` and another branch completes first, no slot is held and no
    /// message was taken.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// let permit = tx.reserve().await.unwrap();
    /// assert!(tx.try_reserve().is_err()); // the one slot is held
    /// permit.send(1).unwrap();
    /// // Under select!: the message is handed over only once a slot is held.
    /// tokio::select! {
    ///     permit = tx.reserve() => permit.unwrap().send(2).unwrap(),
    ///     _ = tokio::time::sleep(Duration::from_millis(1)) => {} // nothing lost
    /// }
    /// assert_eq!(rx.recv().await, Ok(1));
    /// # });
    /// ```
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        if let Claim::Held = self.claim()? {
            return Ok(Permit::new(self));
        }
        let mut waiter = Waiter::new(&self.shared.space);
        let since = self.shared.metrics.sends.wait_start();
        std::future::poll_fn(|cx| {
            loop {
                if let Claim::Held = self.claim()? {
                    record_wait(&self.shared.metrics.send_wait, since);
                    return Poll::Ready(Ok(Permit::new(self)));
                }
                ready!(waiter.poll_room(cx));
            }
        })
        .await
    }

    /// Holds a free slot if there is one now, without waiting (see
    /// [`reserve`](Self::reserve) for what a permit guarantees).
    ///
    /// # Errors
    /// [`TrySendError::Full`]`(())` when every slot holds a message or is held by a
    /// permit, [`TrySendError::Closed`]`(())` when the channel is closed.
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{bounded, TrySendError};
    /// let (tx, rx) = bounded::<u32>("jobs", 1);
    /// let permit = tx.try_reserve().unwrap();
    /// assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full(()));
    /// drop(permit); // gives the slot back
    /// tx.try_reserve().unwrap().send(3).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(3));
    /// ```
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        match self.claim() {
            Ok(Claim::Held) => Ok(Permit::new(self)),
            Ok(Claim::Full) => Err(TrySendError::Full(())),
            Err(SendError(())) => Err(TrySendError::Closed(())),
        }
    }
}

/// Future of [`Sender::send_lossless`]: a send that hands the message back when you
/// stop waiting.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
/// let mut send = tx.send_lossless(1);
/// (&mut send).await.unwrap();
/// assert_eq!(send.cancel(), None); // already sent
/// assert_eq!(rx.recv().await, Ok(1));
/// # });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct SendLossless<'a, T> {
    sender: &'a Sender<T>,
    /// The message before the first poll (nothing captured, no span yet).
    value: Option<T>,
    /// The message after the first poll, until it is in the channel.
    msg: Option<Carried<T>>,
    /// Its producer span, if it has one: ends with the send, or cancelled.
    producer: Option<EndingSpan>,
    waiter: Waiter<'a>,
    /// When the wait began, for one wait in 64.
    since: Option<Instant>,
}

// The message is never pinned: it moves into the channel by value.
impl<T> Unpin for SendLossless<'_, T> {}

impl<T> fmt::Debug for SendLossless<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendLossless")
            .field("pending", &(self.value.is_some() || self.msg.is_some()))
            .field("waiting", &self.waiter.is_registered())
            .finish()
    }
}

impl<T> SendLossless<'_, T> {
    /// Stops the send and returns the message if it is not in the channel yet, or
    /// `None` if the send already completed (or failed, handing it back then).
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// let mut send = tx.send_lossless(4);
    /// assert_eq!(send.cancel(), Some(4)); // never polled, never sent
    /// ```
    pub fn cancel(&mut self) -> Option<T> {
        self.take_back(Outcome::Cancelled)
    }

    fn take_back(&mut self, outcome: Outcome) -> Option<T> {
        self.stop_waiting();
        if let Some(v) = self.value.take() {
            return Some(v);
        }
        let msg = self.msg.take()?;
        self.sender.finish(outcome, self.producer.take());
        Some(msg.value)
    }

    fn stop_waiting(&mut self) {
        self.waiter.stop();
        self.since = None;
    }

    /// Pushes the message if a slot can be claimed for it: the claim keeps this push
    /// out of slots that permits hold. `Err` hands the message back (no room).
    fn push(&mut self, msg: Carried<T>) -> Result<Result<(), SendError<T>>, Carried<T>> {
        let sender = self.sender;
        match sender.claim() {
            Err(SendError(())) => {
                sender.finish(Outcome::Closed, self.producer.take());
                Ok(Err(SendError(msg.value)))
            }
            Ok(Claim::Full) => Err(msg),
            Ok(Claim::Held) => {
                let pushed = sender.inner.try_send(msg);
                sender.shared.space.release();
                match pushed {
                    Ok(()) => {
                        record_wait(&sender.shared.metrics.send_wait, self.since);
                        sender.finish(Outcome::Ok, self.producer.take());
                        Ok(Ok(()))
                    }
                    Err(async_channel::TrySendError::Closed(msg)) => {
                        sender.finish(Outcome::Closed, self.producer.take());
                        Ok(Err(SendError(msg.value)))
                    }
                    // A plain send took the room between the claim and the push.
                    Err(async_channel::TrySendError::Full(msg)) => Err(msg),
                }
            }
        }
    }
}

impl<T> Drop for SendLossless<'_, T> {
    fn drop(&mut self) {
        // Dropped without `cancel`: the message (if still here) is dropped unsent.
        drop(self.take_back(Outcome::Cancelled));
    }
}

impl<T> Future for SendLossless<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(v) = this.value.take() {
            let (msg, producer) = this.sender.carry(v);
            this.msg = Some(msg);
            this.producer = producer;
        }
        loop {
            let Some(msg) = this.msg.take() else {
                // Polled after completion: the message is long gone.
                return Poll::Ready(Ok(()));
            };
            match this.push(msg) {
                Ok(done) => {
                    this.stop_waiting();
                    return Poll::Ready(done);
                }
                Err(msg) => {
                    this.msg = Some(msg);
                    if !this.waiter.is_registered() {
                        this.since = this.sender.shared.metrics.sends.wait_start();
                    }
                    ready!(this.waiter.poll_room(cx));
                }
            }
        }
    }
}

/// A send on a channel nothing observes: async-channel's, nothing carried.
async fn send_bare<T>(tx: &async_channel::Sender<T>, value: T) -> Result<(), SendError<T>> {
    match tx.try_send(value) {
        Ok(()) => Ok(()),
        Err(async_channel::TrySendError::Full(v)) => tx.send(v).await.map_err(|e| SendError(e.0)),
        Err(async_channel::TrySendError::Closed(v)) => Err(SendError(v)),
    }
}

/// A try-send on a channel nothing observes: async-channel's, nothing carried.
fn try_send_bare<T>(tx: &async_channel::Sender<T>, value: T) -> Result<(), TrySendError<T>> {
    tx.try_send(value).map_err(|e| match e {
        async_channel::TrySendError::Full(v) => TrySendError::Full(v),
        async_channel::TrySendError::Closed(v) => TrySendError::Closed(v),
    })
}
