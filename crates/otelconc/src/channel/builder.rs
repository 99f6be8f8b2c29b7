//! Building a channel: [`bounded`], [`unbounded`], or [`builder`] for the knobs.

use super::error::BuildError;
use super::queue::{Rx, Tx};
use super::receiver::Receiver;
use super::sender::Sender;
use super::state::Shared;
use crate::telemetry::Telemetry;

/// A bounded channel named `name` holding at most `capacity` messages, reporting to the
/// global providers.
///
/// # Panics
/// If `name` is empty or `capacity` is 0 (see [`Builder::try_bounded`] for a `Result`).
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::bounded::<u32>("jobs", 16);
/// assert_eq!(tx.capacity(), Some(16));
/// # drop(rx);
/// ```
pub fn bounded<T: Send + 'static>(
    name: impl Into<String>,
    capacity: usize,
) -> (Sender<T>, Receiver<T>) {
    builder(name).bounded(capacity)
}

/// An unbounded channel named `name`, reporting to the global providers.
///
/// # Panics
/// If `name` is empty (see [`Builder::try_unbounded`] for a `Result`).
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::unbounded::<u32>("events");
/// assert_eq!(tx.capacity(), None);
/// # drop(rx);
/// ```
pub fn unbounded<T: Send + 'static>(name: impl Into<String>) -> (Sender<T>, Receiver<T>) {
    builder(name).unbounded()
}

/// A [`Builder`] for a channel named `name`, to choose its [`Telemetry`].
///
/// # Examples
/// ```
/// use otelconc::telemetry::Telemetry;
/// let (tx, rx) = otelconc::channel::builder("jobs")
///     .telemetry(Telemetry::global())
///     .bounded::<u32>(8);
/// # drop((tx, rx));
/// ```
pub fn builder(name: impl Into<String>) -> Builder {
    Builder {
        name: name.into(),
        telemetry: None,
        producer_spans: false,
    }
}

/// Builds a channel: its name, its [`Telemetry`], then bounded or unbounded.
///
/// # Examples
/// ```
/// let (tx, rx) = otelconc::channel::builder("jobs").unbounded::<u32>();
/// # drop((tx, rx));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    name: String,
    telemetry: Option<Telemetry>,
    producer_spans: bool,
}

impl Builder {
    /// The meter, tracer and span policy to use (default [`Telemetry::global`]).
    ///
    /// # Examples
    /// ```
    /// use otelconc::telemetry::{SpanPolicy, Telemetry};
    /// let t = Telemetry::global().with_span_policy(SpanPolicy::Never);
    /// let (tx, rx) = otelconc::channel::builder("jobs").telemetry(t).bounded::<u32>(8);
    /// # drop((tx, rx));
    /// ```
    pub fn telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Whether every send inside a sampled trace gets its own `otelconc.channel.send`
    /// span (kind INTERNAL, child of the sender's context), which the message then
    /// carries instead of the sender's context (a consumer span without a sampled span
    /// of its own is its child, and links to it). Default `false`: the message carries
    /// the sender's context as is, which keeps the traced cost at one span per message.
    ///
    /// The span lasts until the message is in the channel. A send that fails ends it
    /// with status Error and `error.type` `queue_full` (a full channel refused it),
    /// `closed`, or `timeout` ([`Sender::send_timeout`](super::Sender::send_timeout));
    /// a send dropped or cancelled before it completed ends it with status Unset and
    /// `otelconc.outcome = cancelled`. Outside a sampled trace no span is started.
    ///
    /// # Examples
    /// ```
    /// let (tx, rx) = otelconc::channel::builder("jobs").producer_spans(true).bounded::<u32>(8);
    /// # drop((tx, rx));
    /// ```
    pub fn producer_spans(mut self, on: bool) -> Self {
        self.producer_spans = on;
        self
    }

    /// A bounded channel.
    ///
    /// # Panics
    /// If the name is empty or `capacity` is 0.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::builder("jobs").bounded::<u32>(2);
    /// assert_eq!(tx.capacity(), Some(2));
    /// ```
    pub fn bounded<T: Send + 'static>(self, capacity: usize) -> (Sender<T>, Receiver<T>) {
        match self.try_bounded(capacity) {
            Ok(pair) => pair,
            Err(e) => panic!("{e}"),
        }
    }

    /// A bounded channel, or why the configuration is invalid.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`], [`BuildError::ZeroCapacity`].
    ///
    /// # Examples
    /// ```
    /// use otelconc::channel::{builder, BuildError};
    /// assert_eq!(builder("").try_bounded::<u32>(1).unwrap_err(), BuildError::EmptyName);
    /// assert_eq!(builder("a").try_bounded::<u32>(0).unwrap_err(), BuildError::ZeroCapacity);
    /// ```
    pub fn try_bounded<T: Send + 'static>(
        self,
        capacity: usize,
    ) -> Result<(Sender<T>, Receiver<T>), BuildError> {
        if capacity == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        self.build(Some(capacity))
    }

    /// An unbounded channel.
    ///
    /// # Panics
    /// If the name is empty.
    ///
    /// # Examples
    /// ```
    /// let (tx, _rx) = otelconc::channel::builder("jobs").unbounded::<u32>();
    /// assert_eq!(tx.capacity(), None);
    /// ```
    pub fn unbounded<T: Send + 'static>(self) -> (Sender<T>, Receiver<T>) {
        match self.try_unbounded() {
            Ok(pair) => pair,
            Err(e) => panic!("{e}"),
        }
    }

    /// An unbounded channel, or why the configuration is invalid.
    ///
    /// # Errors
    /// [`BuildError::EmptyName`].
    ///
    /// # Examples
    /// ```
    /// assert!(otelconc::channel::builder("").try_unbounded::<u32>().is_err());
    /// ```
    pub fn try_unbounded<T: Send + 'static>(self) -> Result<(Sender<T>, Receiver<T>), BuildError> {
        self.build(None)
    }

    fn build<T: Send + 'static>(
        self,
        capacity: Option<usize>,
    ) -> Result<(Sender<T>, Receiver<T>), BuildError> {
        if self.name.is_empty() {
            return Err(BuildError::EmptyName);
        }
        let telemetry = self.telemetry.unwrap_or_else(Telemetry::global);
        let shared = Shared::new(self.name, telemetry, self.producer_spans, capacity);
        let (tx, rx) = if shared.is_observed() {
            let (tx, rx) = raw_channel(capacity);
            shared.metrics.set_len(&rx);
            (Tx::Wrapped(tx), Rx::Wrapped { rx })
        } else {
            let (tx, rx) = raw_channel(capacity);
            shared.metrics.set_len(&rx);
            (Tx::Bare(tx), Rx::Bare { rx })
        };
        let sender = Sender {
            inner: tx,
            shared: shared.clone(),
        };
        let receiver = Receiver { inner: rx, shared };
        Ok((sender, receiver))
    }
}

/// The underlying async-channel pair: bounded to `capacity`, or unbounded.
fn raw_channel<M>(
    capacity: Option<usize>,
) -> (async_channel::Sender<M>, async_channel::Receiver<M>) {
    match capacity {
        Some(c) => async_channel::bounded(c),
        None => async_channel::unbounded(),
    }
}
