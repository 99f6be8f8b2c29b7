//! `fan_out_items`: many items through one async function at bounded concurrency, as a
//! stream adapter (no task per item).

use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, ready};

use futures_core::{Stream, TryFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;

use super::error::ItemError;
use super::metrics::ItemCounts;
use super::state::Shared;
use crate::telemetry::names::fan as names;
use crate::telemetry::{End, EndingSpan, poll_guarded};

/// Where an item keeps its span: nowhere ([`NoSpan`], a zero-sized type, when the call
/// carried no context) or in an [`ItemSpan`]. A stream uses one or the other for all its
/// items, so an item future with nothing to carry has no span field at all.
trait SpanSlot {
    fn context(&self) -> Option<&Context>;
    /// Ends the span with the item's outcome.
    fn end<R, E: fmt::Display>(&mut self, out: &Result<R, ItemError<E>>);
}

/// No span and no context: the call was made with no context worth carrying.
struct NoSpan;

impl SpanSlot for NoSpan {
    #[inline(always)]
    fn context(&self) -> Option<&Context> {
        None
    }
    #[inline(always)]
    fn end<R, E: fmt::Display>(&mut self, _out: &Result<R, ItemError<E>>) {}
}

/// The item's span (inside a sampled trace), or the caller's carried context (outside
/// one): the item runs under it. A span ends with the item's outcome by the error rule,
/// or, if the item is dropped unfinished, as cancelled.
struct ItemSpan(EndingSpan);

impl SpanSlot for ItemSpan {
    #[inline]
    fn context(&self) -> Option<&Context> {
        self.0.context()
    }

    #[inline]
    fn end<R, E: fmt::Display>(&mut self, out: &Result<R, ItemError<E>>) {
        if self.0.has_span() {
            end_span(&mut self.0, out);
        }
    }
}

#[cold]
#[inline(never)]
fn end_span<R, E: fmt::Display>(span: &mut EndingSpan, out: &Result<R, ItemError<E>>) {
    span.finish(match out {
        Ok(_) => End::Ok,
        Err(ItemError::Failed { error, .. }) => End::error(error),
        Err(ItemError::Panicked { message, .. }) => End::panic(message.clone()),
    });
}

pin_project! {
    /// One item's future: the user's future, polled under the item's span or carried
    /// context, with panics caught ([`poll_guarded`]). Kept small: it is allocated once
    /// per item.
    struct Item<Fut, S> {
        #[pin]
        fut: Fut,
        index: usize,
        span: S,
    }
}

impl<Fut, S, R, E> Future for Item<Fut, S>
where
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
    S: SpanSlot,
{
    type Output = Done<R, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // After a panic the item is ready with the panic's message and its owner drops
        // it without polling again.
        let index = *this.index;
        let out = match ready!(poll_guarded(this.fut, this.span.context(), cx)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(ItemError::Failed { index, error }),
            Err(message) => Err(ItemError::Panicked { index, message }),
        };
        this.span.end(&out);
        Poll::Ready((index, out))
    }
}

/// An item's result.
type Res<Fut> = Result<<Fut as TryFuture>::Ok, ItemError<<Fut as TryFuture>::Error>>;

/// An item's index and result, as its future ends.
type Done<R, E> = (usize, Result<R, ItemError<E>>);

/// The items in flight: without or with a span slot, fixed for the stream's life.
enum Running<Fut> {
    Plain(FuturesUnordered<Item<Fut, NoSpan>>),
    Traced(FuturesUnordered<Item<Fut, ItemSpan>>),
}

impl<Fut> Running<Fut> {
    fn new(traced: bool) -> Self {
        if traced {
            Self::Traced(FuturesUnordered::new())
        } else {
            Self::Plain(FuturesUnordered::new())
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            Self::Plain(r) => r.len(),
            Self::Traced(r) => r.len(),
        }
    }

    #[inline]
    fn push(&mut self, item: Started<Fut>) {
        match (self, item) {
            (Self::Plain(r), Started::Plain(i)) => r.push(i),
            (Self::Traced(r), Started::Traced(i)) => r.push(i),
            // The source starts items with a slot exactly when the stream has slots.
            (Self::Plain(r), Started::Traced(i)) => r.push(Item {
                fut: i.fut,
                index: i.index,
                span: NoSpan,
            }),
            (Self::Traced(r), Started::Plain(i)) => r.push(Item {
                fut: i.fut,
                index: i.index,
                span: ItemSpan(EndingSpan::none()),
            }),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Plain(r) => r.clear(),
            Self::Traced(r) => r.clear(),
        }
    }
}

impl<Fut, R, E> Running<Fut>
where
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    #[inline]
    fn poll_next(&mut self, cx: &mut TaskCx<'_>) -> Poll<Option<Done<R, E>>> {
        match self {
            Self::Plain(r) => r.poll_next_unpin(cx),
            Self::Traced(r) => r.poll_next_unpin(cx),
        }
    }
}

/// An item started by [`Source::next_item`].
enum Started<Fut> {
    Plain(Item<Fut, NoSpan>),
    Traced(Item<Fut, ItemSpan>),
}

/// The span of item `index`, a child of the caller's context `parent`.
#[cold]
#[inline(never)]
fn item_span(fan: &Shared, parent: &Context, index: usize) -> Context {
    fan.telemetry.start_span(
        &names::ITEM,
        parent,
        vec![
            fan.name.clone(),
            KeyValue::new(names::ATTR_INDEX, i64::try_from(index).unwrap_or(i64::MAX)),
        ],
    )
}

/// What [`Source::next_item`] found.
enum Next<Fut> {
    Item(Started<Fut>),
    /// `f` itself panicked for the item at this index: it fails without a future.
    Panicked(usize, String),
    Exhausted,
}

/// What both stream forms share: the input, the function, the limit and telemetry.
struct Source<I, F> {
    items: Option<I>,
    f: F,
    limit: usize,
    next_index: usize,
    /// The caller's context at the call, when it was worth carrying (a valid span
    /// context, sampled or not, or baggage): every item runs under it, or under its
    /// own span, a child of it.
    carried: Option<Context>,
    /// Whether items get spans: `carried` is in a sampled trace (per the span policy).
    spans: bool,
    fan: Arc<Shared>,
    /// This stream's counts of the outcomes it yielded.
    counts: ItemCounts,
}

impl<I, F, Fut, R, E> Source<I, F>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    fn new(items: I, limit: usize, f: F, fan: Arc<Shared>) -> Self {
        let carried = fan.telemetry.capture();
        let spans = carried
            .as_ref()
            .is_some_and(|cx| fan.telemetry.spans_under(cx));
        Self {
            items: Some(items),
            f,
            limit,
            next_index: 0,
            carried,
            spans,
            counts: ItemCounts::join(&fan.metrics),
            fan,
        }
    }

    /// The next item's future, built by `f` under the item's span or carried context
    /// with panics caught ([`poll_guarded`]: building it is polling a future that is
    /// ready at once).
    #[inline]
    fn next_item(&mut self, cx: &mut TaskCx<'_>) -> Next<Fut> {
        let Some(item) = self.items.as_mut().and_then(Iterator::next) else {
            self.items = None;
            return Next::Exhausted;
        };
        let index = self.next_index;
        self.next_index += 1;
        if self.carried.is_some() {
            return self.next_carried(item, index, cx);
        }
        let f = &mut self.f;
        // Building the future is polling one that is ready at once with it.
        #[allow(
            clippy::async_yields_async,
            reason = "the future yielded is the item's"
        )]
        let build = async { f(item) };
        match poll_guarded(pin!(build), None, cx) {
            Poll::Ready(Ok(fut)) => Next::Item(Started::Plain(Item {
                fut,
                index,
                span: NoSpan,
            })),
            Poll::Ready(Err(message)) => Next::Panicked(index, message),
            Poll::Pending => unreachable!("calling `f` does not wait"),
        }
    }

    /// [`Source::next_item`] with a context to carry: `f` runs under the item's span
    /// (inside a sampled trace) or the carried context, which the item keeps.
    #[inline(never)]
    fn next_carried(&mut self, item: I::Item, index: usize, cx: &mut TaskCx<'_>) -> Next<Fut> {
        let carried = self.carried.as_ref();
        let span = match carried {
            Some(parent) if self.spans => Some(item_span(&self.fan, parent, index)),
            _ => None,
        };
        let mut span = EndingSpan::new(span, carried);
        let f = &mut self.f;
        #[allow(
            clippy::async_yields_async,
            reason = "the future yielded is the item's"
        )]
        let build = async { f(item) };
        match poll_guarded(pin!(build), span.context(), cx) {
            Poll::Ready(Ok(fut)) => Next::Item(Started::Traced(Item {
                fut,
                index,
                span: ItemSpan(span),
            })),
            Poll::Ready(Err(message)) => {
                span.finish(End::panic(message.clone()));
                Next::Panicked(index, message)
            }
            Poll::Pending => unreachable!("calling `f` does not wait"),
        }
    }

    #[inline]
    fn count(&self, out: &Result<R, ItemError<E>>) {
        self.counts.count(out);
    }

    fn remaining_hint(&self, running: usize) -> (usize, Option<usize>) {
        let (lo, hi) = self.items.as_ref().map_or((0, Some(0)), |i| i.size_hint());
        (
            lo.saturating_add(running),
            hi.and_then(|h| h.checked_add(running)),
        )
    }
}

/// The results of [`fan_out_items`](super::fan_out_items), in input order.
///
/// Keeps at most `concurrency` items' futures running (counting results that finished
/// ahead of their turn); polls them inside the task that polls this stream (no task per
/// item). Yields every item's result, errors included, in input order; stop early (for
/// example with `try_collect`) and dropping the stream cancels the items still running.
/// With [`fail_fast`](FanOutItems::fail_fast), the first error to happen is yielded at
/// once and ends the stream.
///
/// # Examples
/// ```
/// use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut out = otelconc::fan::fan_out_items(1..=3, 2, |x| async move { Ok::<_, String>(x * 2) }).unwrap();
/// assert_eq!(out.next().await, Some(Ok(2)));
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct FanOutItems<I, F, Fut>
where
    I: Iterator,
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    source: Source<I, F>,
    running: Running<Fut>,
    /// Results that completed ahead of an earlier item, smallest index on top.
    ahead: BinaryHeap<Ahead<Res<Fut>>>,
    /// The index the stream yields next.
    next_out: usize,
    fail_fast: bool,
}

/// A result waiting for the items before it, ordered so the heap pops the smallest index.
struct Ahead<T>(usize, T);

impl<T> PartialEq for Ahead<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<T> Eq for Ahead<T> {}
impl<T> PartialOrd for Ahead<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Ahead<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.cmp(&self.0)
    }
}

/// The results of [`fan_out_items_unordered`](super::fan_out_items_unordered), in the
/// order they complete.
///
/// Like [`FanOutItems`], without keeping input order: a slow item does not hold back
/// the results behind it.
///
/// # Examples
/// ```
/// use futures::TryStreamExt;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let out = otelconc::fan::fan_out_items_unordered(1..=3, 2, |x| async move { Ok::<_, String>(x) }).unwrap();
/// let mut all: Vec<i32> = out.try_collect().await.unwrap();
/// all.sort();
/// assert_eq!(all, [1, 2, 3]);
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct FanOutItemsUnordered<I, F, Fut>
where
    I: Iterator,
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    source: Source<I, F>,
    running: Running<Fut>,
}

impl<I, F, Fut> fmt::Debug for FanOutItems<I, F, Fut>
where
    I: Iterator,
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOutItems")
            .field("concurrency", &self.source.limit)
            .field("running", &self.running.len())
            .field("ahead", &self.ahead.len())
            .field("fail_fast", &self.fail_fast)
            .field("started", &self.source.next_index)
            .finish_non_exhaustive()
    }
}

impl<I, F, Fut> fmt::Debug for FanOutItemsUnordered<I, F, Fut>
where
    I: Iterator,
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOutItemsUnordered")
            .field("concurrency", &self.source.limit)
            .field("running", &self.running.len())
            .field("started", &self.source.next_index)
            .finish_non_exhaustive()
    }
}

impl<I, F, Fut, R, E> FanOutItems<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    pub(crate) fn new(items: I, limit: usize, f: F, fan: Arc<Shared>) -> Self {
        let source = Source::new(items, limit, f, fan);
        let traced = source.carried.is_some();
        Self {
            source,
            running: Running::new(traced),
            ahead: BinaryHeap::new(),
            next_out: 0,
            fail_fast: false,
        }
    }

    /// Cancel-on-error: drops what runs, starts nothing more, and hands `out` back.
    fn fail(&mut self, out: Result<R, ItemError<E>>) -> Result<R, ItemError<E>> {
        self.source.count(&out);
        self.source.items = None;
        self.running.clear();
        self.ahead.clear();
        out
    }

    /// Yields the first error as soon as it happens, ahead of earlier items still
    /// running, then ends: the items in flight are cancelled (dropped) and no new item
    /// starts. Without it, an error waits for its turn in input order like every result.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use futures::TryStreamExt;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let out: Result<Vec<u64>, _> = otelconc::fan::fan_out_items([3600, 0], 2, |secs| async move {
    ///     tokio::time::sleep(Duration::from_secs(secs)).await;
    ///     if secs == 0 { Err("fast failure") } else { Ok(secs) }
    /// })
    /// .unwrap()
    /// .fail_fast()
    /// .try_collect()
    /// .await; // returns at once, not after an hour
    /// assert_eq!(out.unwrap_err().index(), 1);
    /// # }
    /// ```
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }
}

impl<I, F, Fut, R, E> FanOutItemsUnordered<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    pub(crate) fn new(items: I, limit: usize, f: F, fan: Arc<Shared>) -> Self {
        let source = Source::new(items, limit, f, fan);
        let traced = source.carried.is_some();
        Self {
            source,
            running: Running::new(traced),
        }
    }
}

// Neither form pins its fields in place: the futures live in heap nodes of
// FuturesUnordered, and the heap holds only results; both are Unpin.
impl<I: Iterator, F, Fut: TryFuture<Error: fmt::Display>> Unpin for FanOutItems<I, F, Fut> {}
impl<I: Iterator, F, Fut: TryFuture<Error: fmt::Display>> Unpin
    for FanOutItemsUnordered<I, F, Fut>
{
}

impl<I, F, Fut, R, E> Stream for FanOutItems<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    type Item = Result<R, ItemError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_inner(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source
            .remaining_hint(self.running.len() + self.ahead.len())
    }
}

impl<I, F, Fut, R, E> FanOutItems<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    fn poll_inner(&mut self, cx: &mut TaskCx<'_>) -> Poll<Option<Result<R, ItemError<E>>>> {
        let this = self;
        // Results waiting for their turn count against the limit, as in `buffered`.
        while this.running.len() + this.ahead.len() < this.source.limit {
            match this.source.next_item(cx) {
                Next::Item(item) => this.running.push(item),
                Next::Panicked(index, message) => {
                    let out = Err(ItemError::Panicked { index, message });
                    if this.fail_fast {
                        return Poll::Ready(Some(this.fail(out)));
                    }
                    this.ahead.push(Ahead(index, out));
                }
                Next::Exhausted => break,
            }
        }
        loop {
            if this.ahead.peek().is_some_and(|a| a.0 == this.next_out)
                && let Some(Ahead(_, out)) = this.ahead.pop()
            {
                this.next_out += 1;
                this.source.count(&out);
                return Poll::Ready(Some(out));
            }
            match ready!(this.running.poll_next(cx)) {
                Some((index, out)) if index == this.next_out => {
                    this.next_out += 1;
                    this.source.count(&out);
                    return Poll::Ready(Some(out));
                }
                Some((_, out)) if this.fail_fast && out.is_err() => {
                    return Poll::Ready(Some(this.fail(out)));
                }
                Some((index, out)) => this.ahead.push(Ahead(index, out)),
                // Every started item was yielded in order, and the input is exhausted
                // (the fill above stops only at the limit or at the end).
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<I, F, Fut, R, E> Stream for FanOutItemsUnordered<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    type Item = Result<R, ItemError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_inner(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.remaining_hint(self.running.len())
    }
}

impl<I, F, Fut, R, E> FanOutItemsUnordered<I, F, Fut>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    fn poll_inner(&mut self, cx: &mut TaskCx<'_>) -> Poll<Option<Result<R, ItemError<E>>>> {
        let this = self;
        while this.running.len() < this.source.limit {
            match this.source.next_item(cx) {
                Next::Item(item) => this.running.push(item),
                Next::Panicked(index, message) => {
                    // `f` itself panicked: this item's result is ready now.
                    let out = Err(ItemError::Panicked { index, message });
                    this.source.count(&out);
                    return Poll::Ready(Some(out));
                }
                Next::Exhausted => break,
            }
        }
        match ready!(this.running.poll_next(cx)) {
            Some((_, out)) => {
                this.source.count(&out);
                Poll::Ready(Some(out))
            }
            None => Poll::Ready(None),
        }
    }
}
