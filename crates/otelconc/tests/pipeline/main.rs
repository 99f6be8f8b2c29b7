//! `otelconc::pipeline`: delivery, ordering, error policies, panics and backpressure
//! (`behaviour`), how runs stop and what they leave (`shutdown`), the telemetry an
//! in-memory exporter receives (`telemetry`), the context items carry through the
//! stages (`context`), and `Chain`/`Parallel` (`chain`).

mod behaviour;
mod chain;
mod context;
mod shutdown;
mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::{Stream, stream};
use opentelemetry::Value;
use otelconc_testkit::SpanData;

/// Counts live stage futures: +1 when one starts, -1 when it ends or is dropped.
#[derive(Clone, Default)]
pub(crate) struct Live(Arc<AtomicUsize>);

pub(crate) struct LiveGuard(Arc<AtomicUsize>);

impl Live {
    pub(crate) fn enter(&self) -> LiveGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.0.clone())
    }
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream of `0..` that counts what it yielded and flags when it is dropped.
pub(crate) fn counted_input(
    pulled: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
) -> impl Stream<Item = u64> + Send + 'static {
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    stream::unfold((0_u64, OnDrop(dropped)), move |(i, g)| {
        let pulled = pulled.clone();
        async move {
            pulled.fetch_add(1, Ordering::SeqCst);
            Some((i, (i + 1, g)))
        }
    })
}

/// The value of `span`'s attribute `key`.
pub(crate) fn attr_of<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}
