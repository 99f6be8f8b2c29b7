//! Private helpers with no telemetry or primitive of their own, shared by the modules:
//! - [`sync`]: the one way the crate takes a `std::sync::Mutex` (poisoning is taken over);
//! - [`counts`]: the crate's two cheap-counter schemes, single-writer and striped;
//! - [`panic_payload`]: a caught panic's payload as a message;
//! - [`busy`]: exact busy time of a set of workers, with no clock read per job;
//! - [`backlog`]: the age of the oldest item still in a FIFO queue, read at collection.
//!
//! They are written by hand because no crate does these small things the way the hot
//! paths need them (`counts` is the only one of any size; its module docs say why).

pub(crate) mod backlog;
pub(crate) mod busy;
pub(crate) mod counts;
pub(crate) mod panic_payload;
pub(crate) mod sync;

/// tokio's clock as read at collection time: [`Now::now`] reads the clock of the runtime
/// the instance was built in, also from a thread outside it (a metrics exporter's), so
/// that what a collection reports agrees with the instants the instance took on the
/// runtime's threads, also while a test has paused that runtime's clock (as
/// `rate::Clock::tokio` does).
#[derive(Debug, Clone)]
pub(crate) struct Now {
    runtime: Option<tokio::runtime::Handle>,
}

impl Default for Now {
    fn default() -> Self {
        Self {
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

impl Now {
    /// The current instant of the instance's runtime (of the calling thread's, or the
    /// system's, outside any).
    pub(crate) fn now(&self) -> tokio::time::Instant {
        let _entered = match &self.runtime {
            Some(rt) if tokio::runtime::Handle::try_current().is_err() => Some(rt.enter()),
            _ => None,
        };
        tokio::time::Instant::now()
    }
}
