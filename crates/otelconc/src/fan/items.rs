//! `fan_out_items`: many items through one async function at bounded concurrency, as a
//! stream adapter (no task per item).

use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskCx, Poll, ready};

use futures_core::{Stream, TryFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;

use super::error::ItemError;
use super::out::Inner;
use crate::group::Guarded;
use crate::telemetry::names::fan as names;
use crate::telemetry::record_error;

/// The span of one item, ended when the item ends or, if it is dropped unfinished,
/// ended as cancelled.
struct ItemSpan(Option<Context>);

impl Drop for ItemSpan {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            record_error(&cx, "cancelled", "item dropped before it finished");
            cx.span().end();
        }
    }
}

pin_project! {
    /// One item's future: the user's future, polled under the item's span (when
    /// sampled), with panics caught.
    struct Item<Fut> {
        #[pin]
        fut: Guarded<MaybePanicked<Fut>>,
        index: usize,
        span: ItemSpan,
    }
}

impl<Fut> Future for Item<Fut>
where
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    type Output = (usize, Result<Fut::Ok, ItemError<Fut::Error>>);

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.fut.poll(cx));
        let index = *this.index;
        let out = match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(ItemError::Failed { index, error }),
            Err(message) => Err(ItemError::Panicked { index, message }),
        };
        if let Some(span) = this.span.0.take() {
            match &out {
                Ok(_) => {}
                Err(ItemError::Failed { error, .. }) => {
                    record_error(&span, "error", error.to_string());
                }
                Err(ItemError::Panicked { message, .. }) => {
                    record_error(&span, "panic", message.clone());
                }
            }
            span.span().end();
        }
        Poll::Ready((index, out))
    }
}

/// What both stream forms share: the input, the function, the limit and telemetry.
struct Source<I, F> {
    items: Option<I>,
    f: F,
    limit: usize,
    next_index: usize,
    /// The caller's context, when the call was made inside a sampled trace.
    parent: Option<Context>,
    fan: Arc<Inner>,
}

impl<I, F, Fut, R, E> Source<I, F>
where
    I: Iterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    fn new(items: I, limit: usize, f: F, fan: Arc<Inner>) -> Self {
        Self {
            items: Some(items),
            f,
            limit,
            next_index: 0,
            parent: fan.telemetry.span_parent(),
            fan,
        }
    }

    /// The next item's future, or `None` when the input is exhausted.
    #[inline]
    fn next_item(&mut self) -> Option<Item<Fut>> {
        let item = self.items.as_mut()?.next();
        let Some(item) = item else {
            self.items = None;
            return None;
        };
        let index = self.next_index;
        self.next_index += 1;
        let Some(parent) = &self.parent else {
            return Some(Item {
                fut: Guarded::new(self.build(item), None),
                index,
                span: ItemSpan(None),
            });
        };
        let cx = self.fan.telemetry.start_span(
            &names::ITEM,
            parent,
            vec![
                self.fan.name.clone(),
                KeyValue::new(names::ATTR_INDEX, i64::try_from(index).unwrap_or(i64::MAX)),
            ],
        );
        let fut = {
            let _attached = cx.clone().attach();
            self.build(item)
        };
        Some(Item {
            fut: Guarded::new(fut, Some(cx.clone())),
            index,
            span: ItemSpan(Some(cx)),
        })
    }

    /// Calls `f`; a panic in `f` itself becomes the item's failure.
    #[inline]
    fn build(&mut self, item: I::Item) -> MaybePanicked<Fut> {
        let f = &mut self.f;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(item))) {
            Ok(fut) => MaybePanicked::Fut { fut },
            Err(payload) => MaybePanicked::Panicked {
                message: Some(crate::panic_payload::message(&*payload)),
            },
        }
    }

    #[inline]
    fn count(&self, out: &Result<R, ItemError<E>>) {
        match out {
            Ok(_) => self.fan.ok.add(1),
            Err(ItemError::Failed { .. }) => self.fan.error.add(1),
            Err(ItemError::Panicked { .. }) => self.fan.panic.add(1),
        }
    }

    fn remaining_hint(&self, running: usize) -> (usize, Option<usize>) {
        let (lo, hi) = self
            .items
            .as_ref()
            .map_or((0, Some(0)), |i| i.size_hint());
        (
            lo.saturating_add(running),
            hi.and_then(|h| h.checked_add(running)),
        )
    }
}

pin_project! {
    /// The future `f` returned, or the panic of `f` itself (re-raised on first poll,
    /// where [`Guarded`] catches it as the item's failure).
    #[project = MaybePanickedProj]
    enum MaybePanicked<Fut> {
        Fut { #[pin] fut: Fut },
        Panicked { message: Option<String> },
    }
}

impl<Fut: TryFuture> Future for MaybePanicked<Fut> {
    type Output = Result<Fut::Ok, Fut::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Self::Output> {
        match self.project() {
            MaybePanickedProj::Fut { fut } => fut.try_poll(cx),
            MaybePanickedProj::Panicked { message } => {
                // Re-raise inside Guarded, which turns it into this item's failure
                // without running the panic hook a second time.
                std::panic::resume_unwind(Box::new(message.take().unwrap_or_default()))
            }
        }
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
pub struct FanOutItems<I, F, Fut>
where
    I: Iterator,
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    source: Source<I, F>,
    running: FuturesUnordered<Item<Fut>>,
    /// Results that completed ahead of an earlier item, smallest index on top.
    ahead: BinaryHeap<Ahead<Result<Fut::Ok, ItemError<Fut::Error>>>>,
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
pub struct FanOutItemsUnordered<I, F, Fut>
where
    I: Iterator,
    Fut: TryFuture,
    Fut::Error: fmt::Display,
{
    source: Source<I, F>,
    running: FuturesUnordered<Item<Fut>>,
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
    pub(crate) fn new(items: I, limit: usize, f: F, fan: Arc<Inner>) -> Self {
        Self {
            source: Source::new(items, limit, f, fan),
            running: FuturesUnordered::new(),
            ahead: BinaryHeap::new(),
            next_out: 0,
            fail_fast: false,
        }
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
    #[must_use]
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
    pub(crate) fn new(items: I, limit: usize, f: F, fan: Arc<Inner>) -> Self {
        Self {
            source: Source::new(items, limit, f, fan),
            running: FuturesUnordered::new(),
        }
    }
}

// Neither form pins its fields in place: the futures live in heap nodes of
// FuturesUnordered, and the heap holds only results; both are Unpin.
impl<I: Iterator, F, Fut: TryFuture<Error: fmt::Display>> Unpin for FanOutItems<I, F, Fut> {}
impl<I: Iterator, F, Fut: TryFuture<Error: fmt::Display>> Unpin for FanOutItemsUnordered<I, F, Fut> {}

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
        // Results waiting for their turn count against the limit, as in `buffered`.
        while this.running.len() + this.ahead.len() < this.source.limit {
            match this.source.next_item() {
                Some(item) => this.running.push(item),
                None => break,
            }
        }
        loop {
            if this.ahead.peek().is_some_and(|a| a.0 == this.next_out) {
                if let Some(Ahead(_, out)) = this.ahead.pop() {
                    this.next_out += 1;
                    this.source.count(&out);
                    return Poll::Ready(Some(out));
                }
            }
            match ready!(this.running.poll_next_unpin(cx)) {
                Some((index, out)) if index == this.next_out => {
                    this.next_out += 1;
                    this.source.count(&out);
                    return Poll::Ready(Some(out));
                }
                Some((_, out)) if this.fail_fast && out.is_err() => {
                    this.source.count(&out);
                    // Cancel-on-error: drop what runs, start nothing more.
                    this.source.items = None;
                    this.running.clear();
                    this.ahead.clear();
                    return Poll::Ready(Some(out));
                }
                Some((index, out)) => this.ahead.push(Ahead(index, out)),
                // Every started item was yielded in order, and the input is exhausted
                // (the fill above stops only at the limit or at the end).
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source
            .remaining_hint(self.running.len() + self.ahead.len())
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
        while this.running.len() < this.source.limit {
            match this.source.next_item() {
                Some(item) => this.running.push(item),
                None => break,
            }
        }
        match ready!(this.running.poll_next_unpin(cx)) {
            Some((_, out)) => {
                this.source.count(&out);
                Poll::Ready(Some(out))
            }
            None => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.source.remaining_hint(self.running.len())
    }
}
