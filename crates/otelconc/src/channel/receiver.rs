//! The receiving half.

use std::fmt;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_core::Stream;

use super::carry::Batch;
use super::error::{RecvError, RecvTimeoutError, TryRecvError};
use super::metrics::{Receives, Waited, timed_blocking};
use super::queue::Rx;
use super::received::{Received, ReceivedBatch};
use super::state::Shared;
use crate::telemetry::{Carried, EndingSpan, Histogram};

pin_project_lite::pin_project! {
/// The receiving half of a channel. Clone it for more consumers: each message goes to
/// exactly one of them.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 8);
/// let rx2 = rx.clone();
/// tx.send(1).await.unwrap();
/// tx.send(2).await.unwrap();
/// assert_eq!(rx.recv().await.unwrap() + rx2.recv().await.unwrap(), 3);
/// # });
/// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Receiver<T> {
        #[pin]
        pub(super) inner: Rx<T>,
        pub(super) shared: Arc<Shared>,
    }

    impl<T> PinnedDrop for Receiver<T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.shared.receiver_handles.fetch_sub(1, Ordering::AcqRel) == 1 {
                // The last receiver: close now (the channel would close when `inner`
                // drops) and wake lossless senders and reservers so they see it closed.
                this.inner.close();
                this.shared.space.closed();
            }
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.shared.name.value)
            .field("len", &self.inner.len())
            .field("capacity", &self.inner.capacity())
            .field("closed", &self.inner.is_closed())
            .finish()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.receiver_handles.fetch_add(1, Ordering::Relaxed);
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T> Receiver<T> {
    /// The receivers' wait samples.
    #[inline]
    fn counts(&self) -> &Receives {
        &self.shared.metrics.recvs
    }

    /// Unwraps one message that left the channel: wakes a slot waiter, records
    /// queue time if it was sampled. (Successful receives are not counted here: the
    /// exported count is derived as sent minus size, which saves an add per message.)
    #[inline]
    fn take(&self, msg: Carried<T>) -> T {
        self.shared.space.freed(1);
        self.shared.arrived(msg)
    }

    /// Like [`take`](Self::take), with the consumer span or the sender's context.
    fn take_traced(&self, msg: Carried<T>) -> Received<T> {
        self.shared.space.freed(1);
        self.shared.received(msg)
    }

    async fn recv_msg(&self) -> Result<Carried<T>, RecvError> {
        let shared = &*self.shared;
        let received = match &self.inner {
            Rx::Bare { rx } => rx.recv().await.map(Carried::bare),
            // A message that is there already is taken without building the receive
            // future (as `recv` itself would, on its first poll).
            Rx::Wrapped { rx } => match rx.try_recv() {
                Ok(msg) => Ok(msg),
                Err(async_channel::TryRecvError::Closed) => Err(async_channel::RecvError),
                Err(async_channel::TryRecvError::Empty) if self.counts().is_on() => {
                    Waited::new(rx.recv(), &shared.metrics.recv_wait, self.counts()).await
                }
                Err(async_channel::TryRecvError::Empty) => rx.recv().await,
            },
        };
        received.map_err(|_| RecvError)
    }

    /// Receives the next message, waiting until one is ready.
    ///
    /// A message carries its sender's context (see [`Sender::send`](super::Sender::send));
    /// this form drops it (a sampled queue time is still recorded). Use
    /// [`recv_traced`](Self::recv_traced) to process the message under it, or in a
    /// consumer span.
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and empty.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `recv` is used as a branch in `tokio::select!`
    /// and another branch completes first, it is guaranteed that no messages were
    /// received on this channel.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<&str>("jobs", 1);
    /// tx.send("hello").await.unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Ok("hello"));
    /// assert!(rx.recv().await.is_err());
    /// # });
    /// ```
    pub async fn recv(&self) -> Result<T, RecvError> {
        if let Rx::Bare { rx } = &self.inner {
            // Nothing observes this channel: it is async-channel.
            let got = match rx.try_recv() {
                Ok(v) => Ok(v),
                Err(async_channel::TryRecvError::Empty) => rx.recv().await.map_err(|_| RecvError),
                Err(async_channel::TryRecvError::Closed) => Err(RecvError),
            };
            if got.is_ok() {
                self.shared.space.freed(1);
            }
            return got;
        }
        let msg = self.recv_msg().await?;
        Ok(self.take(msg))
    }

    /// Receives the next message with its trace, by the messaging rule: when this
    /// receive runs inside a sampled trace, [`Received`] holds an
    /// `otelconc.channel.receive` span (kind INTERNAL) that is a child of the current
    /// span; else, when the message was sent inside a sampled trace, one that is a child
    /// of the sender's context (the span current at the send, or that send's
    /// `otelconc.channel.send` span on a channel built with
    /// [`producer_spans(true)`](super::Builder::producer_spans)). Either way the span
    /// links to the sender's span context, carries the queue wait when the send was
    /// timed, and ends when the `Received` is dropped.
    ///
    /// With neither sampled, no span is started and [`Received::context`] is the
    /// context the sender carried (an unsampled span context and its baggage), so work
    /// run under it stays in the sender's trace. A channel nothing observes carries no
    /// context (see the [module docs](super#cost)). See
    /// [`docs/telemetry.md`](https://example.invalid/otelconc/blob/main/docs/telemetry.md).
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and empty.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `recv_traced` is used as a branch in
    /// `tokio::select!` and another branch completes first, it is guaranteed that no
    /// messages were received on this channel.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.send(3).await.unwrap();
    /// let msg = rx.recv_traced().await.unwrap();
    /// assert!(msg.context().is_none()); // sent outside any trace
    /// let value = msg.in_span(|v| async move { v * 2 }).await;
    /// assert_eq!(value, 6);
    /// # });
    /// ```
    pub async fn recv_traced(&self) -> Result<Received<T>, RecvError> {
        let msg = self.recv_msg().await?;
        Ok(self.take_traced(msg))
    }

    /// Receives a message if one is ready, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] or [`TryRecvError::Closed`] (closed and empty).
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{bounded, TryRecvError};
    /// let (tx, rx) = bounded::<u32>("jobs", 1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        if let Rx::Bare { rx } = &self.inner {
            // Nothing observes this channel: it is async-channel.
            return match rx.try_recv() {
                Ok(v) => {
                    self.shared.space.freed(1);
                    Ok(v)
                }
                Err(async_channel::TryRecvError::Empty) => Err(TryRecvError::Empty),
                Err(async_channel::TryRecvError::Closed) => Err(TryRecvError::Closed),
            };
        }
        match self.inner.try_recv() {
            Ok(msg) => Ok(self.take(msg)),
            Err(async_channel::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(async_channel::TryRecvError::Closed) => Err(TryRecvError::Closed),
        }
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`], or [`RecvTimeoutError::Closed`] once the channel
    /// is closed and empty.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `recv_timeout` is used as a branch in
    /// `tokio::select!` and another branch completes first (or it times out), it is
    /// guaranteed that no messages were received on this channel.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use otelconc::channel::{bounded, RecvTimeoutError};
    /// let (_tx, rx) = bounded::<u32>("jobs", 1);
    /// let r = rx.recv_timeout(Duration::from_millis(1)).await;
    /// assert_eq!(r, Err(RecvTimeoutError::Timeout));
    /// # });
    /// ```
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        let (histogram, counts) = (&self.shared.metrics.recv_wait, self.counts());
        let msg = match &self.inner {
            Rx::Bare { rx } => recv_within(rx, timeout, histogram, counts)
                .await
                .map(Carried::bare),
            Rx::Wrapped { rx } => recv_within(rx, timeout, histogram, counts).await,
        }?;
        Ok(self.take(msg))
    }

    /// Receives from synchronous code, blocking the thread until a message is ready.
    ///
    /// Do not call it from async code: it blocks the runtime's thread.
    ///
    /// # Errors
    /// [`RecvError`] once the channel is closed and empty.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// std::thread::spawn(move || tx.blocking_send(4));
    /// assert_eq!(rx.recv_blocking(), Ok(4));
    /// ```
    pub fn recv_blocking(&self) -> Result<T, RecvError> {
        let msg = match self.inner.try_recv() {
            Ok(msg) => Ok(msg),
            Err(async_channel::TryRecvError::Closed) => Err(RecvError),
            Err(async_channel::TryRecvError::Empty) => {
                timed_blocking(&self.shared.metrics.recv_wait, self.counts(), || {
                    self.inner.recv_blocking()
                })
            }
        };
        msg.map(|msg| self.take(msg))
    }

    /// Waits for at least one message, then takes up to `limit` that are ready,
    /// appending them to `buf`; returns how many it took.
    ///
    /// Returns 0 only when `limit` is 0 or the channel is closed and empty.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `recv_many` is used as a branch in
    /// `tokio::select!` and another branch completes first, it is guaranteed that no
    /// messages were received on this channel.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 8);
    /// for i in 0..5 { tx.send(i).await.unwrap(); }
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.recv_many(&mut buf, 3).await, 3);
    /// assert_eq!(buf, [0, 1, 2]);
    /// # });
    /// ```
    pub async fn recv_many(&self, buf: &mut Vec<T>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        let Ok(first) = self.recv_msg().await else {
            return 0;
        };
        self.drain(first, buf, limit, drop)
    }

    /// Puts `first` and then, without waiting, what else is ready into `buf`, up to
    /// `limit` messages in all; hands the producer context of each traced message to
    /// `traced`. Returns how many; lossless senders are woken once for all of them.
    fn drain(
        &self,
        first: Carried<T>,
        buf: &mut Vec<T>,
        limit: usize,
        mut traced: impl FnMut(opentelemetry::Context),
    ) -> usize {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(Carried { value, trace }) = next.take() {
            if let Some(trace) = trace {
                self.shared.queue_wait(&trace);
                if let Some(cx) = trace.cx {
                    traced(cx);
                }
            }
            buf.push(value);
            n += 1;
            if n < limit {
                next = self.inner.try_recv().ok();
            }
        }
        self.shared.space.freed(n);
        n
    }

    /// [`recv_many`](Self::recv_many) with the batch's trace, by the batch rule: the
    /// returned [`ReceivedBatch`] holds an `otelconc.channel.receive_batch` span (kind
    /// INTERNAL, with `otelconc.channel.batch_size`) whose parent is the current span
    /// when this receive runs inside a sampled trace, else the context of the first
    /// message of the batch that was sent inside a sampled trace (so the span joins that
    /// trace instead of starting a root a sampler may drop). It links to the span
    /// context every message carried from its sender, sampled or not (the span current
    /// at the send, or its `otelconc.channel.send` span), and ends when the batch is
    /// dropped.
    ///
    /// The SDK keeps at most 128 links per span by default
    /// (`OTEL_SPAN_LINK_COUNT_LIMIT`): links beyond that are dropped, while
    /// `otelconc.channel.batch_size` still says how many messages the batch took.
    ///
    /// With neither sampled, no span is started, and [`ReceivedBatch::context`] is the
    /// first context a message of the batch carried, if any.
    ///
    /// # Cancel safety
    /// This method is cancel safe. If `recv_many_traced` is used as a branch in
    /// `tokio::select!` and another branch completes first, it is guaranteed that no
    /// messages were received on this channel.
    ///
    /// # Examples
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 8);
    /// tx.send(1).await.unwrap();
    /// let mut buf = Vec::new();
    /// let batch = rx.recv_many_traced(&mut buf, 8).await;
    /// assert_eq!(batch.len(), 1);
    /// assert!(batch.context().is_none()); // nothing was traced
    /// # });
    /// ```
    pub async fn recv_many_traced(&self, buf: &mut Vec<T>, limit: usize) -> ReceivedBatch {
        if limit == 0 {
            return ReceivedBatch::new(0, EndingSpan::none());
        }
        let Ok(first) = self.recv_msg().await else {
            return ReceivedBatch::new(0, EndingSpan::none());
        };
        let mut batch = Batch::default();
        let n = self.drain(first, buf, limit, |cx| batch.add(&self.shared, cx));
        let span = self.shared.batch_span(n, &batch);
        ReceivedBatch::new(n, EndingSpan::new(span, batch.first()))
    }

    /// Closes the channel for every handle; returns `true` if this call closed it.
    ///
    /// Messages already in the channel can still be received.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(1).unwrap();
    /// assert!(rx.close());
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert!(rx.try_recv().is_err());
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
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Messages in the channel now.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the channel is empty.
    ///
    /// # Examples
    /// ```
    /// let (_tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Whether the channel is full (never, for an unbounded channel).
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 1);
    /// tx.try_send(1).unwrap();
    /// assert!(rx.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// The capacity, or `None` for an unbounded channel.
    ///
    /// # Examples
    /// ```
    /// let (_tx, rx) = otelconc::channel::unbounded::<u32>("jobs");
    /// assert_eq!(rx.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }

    /// Live sender handles.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// drop(tx);
    /// assert_eq!(rx.sender_count(), 0);
    /// ```
    pub fn sender_count(&self) -> usize {
        self.inner.sender_count()
    }

    /// Live receiver handles.
    ///
    /// # Examples
    /// ```
    /// let (_tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
    /// let _rx2 = rx.clone();
    /// assert_eq!(rx.receiver_count(), 2);
    /// ```
    pub fn receiver_count(&self) -> usize {
        self.shared.receiver_handles.load(Ordering::Relaxed)
    }
}

/// Receives from `rx` within `timeout`, timing a sampled wait (receivers count no
/// outcomes: `otelconc.channel.received` is derived from the senders' counts).
async fn recv_within<M>(
    rx: &async_channel::Receiver<M>,
    timeout: Duration,
    histogram: &Histogram,
    counts: &Receives,
) -> Result<M, RecvTimeoutError> {
    match rx.try_recv() {
        Ok(m) => Ok(m),
        Err(async_channel::TryRecvError::Closed) => Err(RecvTimeoutError::Closed),
        Err(async_channel::TryRecvError::Empty) => {
            let mut wait = pin!(Waited::new(rx.recv(), histogram, counts));
            match tokio::time::timeout(timeout, wait.as_mut()).await {
                Ok(r) => r.map_err(|_| RecvTimeoutError::Closed),
                Err(_) => {
                    wait.as_mut().timed_out();
                    Err(RecvTimeoutError::Timeout)
                }
            }
        }
    }
}

/// Messages until the channel is closed and empty. Polling the stream is cancel safe,
/// like [`Receiver::recv`]. Waits through the stream are not recorded in
/// `otelconc.channel.receive.wait.duration`.
///
/// # Examples
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use futures::StreamExt;
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 4);
/// tx.send(1).await.unwrap();
/// tx.send(2).await.unwrap();
/// drop(tx);
/// assert_eq!(rx.collect::<Vec<_>>().await, [1, 2]);
/// # });
/// ```
impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<T>> {
        match self.as_mut().project().inner.poll_next_msg(cx) {
            Poll::Ready(Some(msg)) => Poll::Ready(Some(self.take(msg))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
