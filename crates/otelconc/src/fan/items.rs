//! `fan_out_items`: many items through one async function at bounded concurrency, as a
//! stream adapter (no task per item).

use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, ready};

use futures_core::{Stream, TryFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;

use super::error::ItemError;
use super::metrics::ItemCounts;
use super::state::Shared;
use crate::telemetry::names::fan as names;
use crate::telemetry::{End, EndingSpan, record_error};
use crate::util::panic_payload;

/// Where an item keeps its span: nowhere ([`NoSpan`], a zero-sized type, outside a
/// sampled trace) or in an [`ItemSpan`]. A stream uses one or the other for all its
/// items, so an untraced item future carries no span field at all.
trait SpanSlot {
    fn context(&self) -> Option<&Context>;
    /// Ends the span with the item's outcome.
    fn end<R, E: fmt::Display>(&mut self, out: &Result<R, ItemError<E>>);
}

/// No span: the item runs outside a sampled trace.
struct NoSpan;

impl SpanSlot for NoSpan {
    #[inline(always)]
    fn context(&self) -> Option<&Context> {
        None
    }
    #[inline(always)]
    fn end<R, E: fmt::Display>(&mut self, _out: &Result<R, ItemError<E>>) {}
}

/// The span of one item, ended when the item ends or, if it is dropped unfinished,
/// ended as cancelled.
struct ItemSpan(EndingSpan);

impl ItemSpan {
    fn new(cx: Option<Context>) -> Self {
        Self(EndingSpan::new(cx, None))
    }
}

impl SpanSlot for ItemSpan {
    #[inline]
    fn context(&self) -> Option<&Context> {
        self.0.context()
    }

    #[cold]
    #[inline(never)]
    fn end<R, E: fmt::Display>(&mut self, out: &Result<R, ItemError<E>>) {
        self.0.finish(match out {
            Ok(_) => End::Ok,
            Err(ItemError::Failed { error, .. }) => End::error(error),
            Err(ItemError::Panicked { message, .. }) => End::panic(message.clone()),
        });
    }
}

pin_project! {
    /// One item's future: the user's future, polled under the item's span (when
    /// sampled), with panics caught. Kept small: it is allocated once per item.
    struct Item<Fut, S> {
        #[pin]
        fut: Fut,
        index: usize,
        span: S,
    }
}

impl<Fut, S> Future for Item<Fut, S>
where
    Fut: TryFuture,
    Fut::Error: fmt::Display,
    S: SpanSlot,
{
    type Output = (usize, Result<Fut::Ok, ItemError<Fut::Error>>);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let fut = this.fut;
        // After a panic the item is ready with the panic's message and its owner drops
        // it without polling again, so no broken invariant of `fut` can be observed.
        let polled = match this.span.context() {
            Some(otel) => {
                let _attached = otel.clone().attach();
                catch_unwind(AssertUnwindSafe(|| fut.try_poll(cx)))
            }
            None => catch_unwind(AssertUnwindSafe(|| fut.try_poll(cx))),
        };
        let index = *this.index;
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(v))) => Ok(v),
            Ok(Poll::Ready(Err(error))) => Err(ItemError::Failed { index, error }),
            Err(payload) => Err(ItemError::Panicked {
                index,
                message: panic_payload::message(&*payload),
            }),
        };
        this.span.end(&out);
        Poll::Ready((index, out))
    }
}

/// An item's result.
type Res<Fut> = Result<<Fut as TryFuture>::Ok, ItemError<<Fut as TryFuture>::Error>>;

/// An item's index and result.
type Out<Fut> = (usize, Res<Fut>);

/// The items in flight: untraced or traced, fixed for the stream's life.
enum Running<Fut> {
    Plain(FuturesUnordered<Item<Fut, NoSpan>>),
    Traced(FuturesUnordered<Item<Fut, ItemSpan>>),
}

impl<Fut> Running<Fut>
where
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
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
            // The source starts traced items exactly when the stream is traced.
            (Self::Plain(r), Started::Traced(i)) => r.push(Item {
                fut: i.fut,
                index: i.index,
                span: NoSpan,
            }),
            (Self::Traced(r), Started::Plain(i)) => r.push(Item {
                fut: i.fut,
                index: i.index,
                span: ItemSpan::new(None),
            }),
        }
    }

    #[inline]
    fn poll_next(&mut self, cx: &mut TaskCx<'_>) -> Poll<Option<Out<Fut>>> {
        match self {
            Self::Plain(r) => r.poll_next_unpin(cx),
            Self::Traced(r) => r.poll_next_unpin(cx),
        }
    }

    fn clear(&mut self) {
        match self {
            Self::Plain(r) => r.clear(),
            Self::Traced(r) => r.clear(),
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
    /// The caller's context, when the call was made inside a sampled trace.
    parent: Option<Context>,
    fan: Arc<Shared>,
    /// Outcomes yielded since they were last added to the fan-out's counters.
    counts: ItemCounts,
}

impl<I, F> Source<I, F> {
    fn flush(&mut self) {
        self.counts.flush(&self.fan.metrics);
    }

    /// Flushes the counts when the stream is about to wait or has ended.
    #[inline]
    fn flush_if<T>(&mut self, poll: Poll<Option<T>>) -> Poll<Option<T>> {
        if !matches!(poll, Poll::Ready(Some(_))) {
            self.flush();
        }
        poll
    }
}

impl<I, F> Drop for Source<I, F> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<I, F, Fut, R, E> Source<I, F>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    fn new(items: I, limit: usize, f: F, fan: Arc<Shared>) -> Self {
        Self {
            items: Some(items),
            f,
            limit,
            next_index: 0,
            parent: fan.telemetry.span_parent(),
            fan,
            counts: ItemCounts::default(),
        }
    }

    /// The next item's future.
    #[inline]
    fn next_item(&mut self) -> Next<Fut> {
        let Some(item) = self.items.as_mut().and_then(Iterator::next) else {
            self.items = None;
            return Next::Exhausted;
        };
        let index = self.next_index;
        self.next_index += 1;
        if let Some(parent) = &self.parent {
            let span = item_span(&self.fan, parent, index);
            return self.next_traced(item, index, span);
        }
        let f = &mut self.f;
        match catch_unwind(AssertUnwindSafe(|| f(item))) {
            Ok(fut) => Next::Item(Started::Plain(Item {
                fut,
                index,
                span: NoSpan,
            })),
            Err(payload) => Next::Panicked(index, panic_payload::message(&*payload)),
        }
    }

    /// [`Source::next_item`] inside a sampled trace: `f` runs under the item's `span`,
    /// which the item keeps.
    #[inline(never)]
    fn next_traced(&mut self, item: I::Item, index: usize, span: Context) -> Next<Fut> {
        let f = &mut self.f;
        let built = {
            let _attached = span.clone().attach();
            catch_unwind(AssertUnwindSafe(|| f(item)))
        };
        match built {
            Ok(fut) => Next::Item(Started::Traced(Item {
                fut,
                index,
                span: ItemSpan::new(Some(span)),
            })),
            Err(payload) => {
                let message = panic_payload::message(&*payload);
                record_error(&span, "panic", message.clone());
                span.span().end();
                Next::Panicked(index, message)
            }
        }
    }

    #[inline]
    fn count(&mut self, out: &Result<R, ItemError<E>>) {
        self.counts.count(out, &self.fan.metrics);
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
        let traced = source.parent.is_some();
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
        let traced = source.parent.is_some();
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
        let this = self.get_mut();
        let poll = this.poll_inner(cx);
        this.source.flush_if(poll)
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
            match this.source.next_item() {
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
        let this = self.get_mut();
        let poll = this.poll_inner(cx);
        this.source.flush_if(poll)
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
            match this.source.next_item() {
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
