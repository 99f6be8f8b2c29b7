//! The state of one run that its tasks, sender and stream share ([`RunShared`]): how it
//! stops, its first error, its skip count, its admission window and its buffer probes.
//! Starting a run is in `launch.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_channel::Receiver;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::PipelineError;
use super::metrics::{Metrics, ProbeHandle, RunBuffer};
use crate::util::sync::lock;

/// The state of one run.
pub(crate) struct RunShared<E> {
    pub(crate) token: CancellationToken,
    pub(crate) parent: Option<CancellationToken>,
    aborts: Mutex<Vec<AbortHandle>>,
    pub(crate) failed: AtomicBool,
    pub(crate) error: Mutex<Option<PipelineError<E>>>,
    pub(crate) skipped: AtomicU64,
    pub(crate) window: Option<Arc<Semaphore>>,
    /// The probes of the run's stage buffers (only when an SDK reads their depth); the
    /// stages hold them weakly. The run lets go of them when it stops (in
    /// [`stop_all`](Self::stop_all), and when its stream ends), so once its tasks have
    /// stopped nothing is left holding a buffer or the items still in it, whoever
    /// still holds the `Pipeline`, the stream or this state.
    probes: Mutex<Vec<ProbeHandle>>,
}

impl<E> RunShared<E> {
    /// A run stopped by `token` (a child of the pipeline's token `parent`, if it has
    /// one); `window` is the admission semaphore of an ordered run.
    pub(crate) fn new(
        token: CancellationToken,
        parent: Option<CancellationToken>,
        window: Option<Arc<Semaphore>>,
    ) -> Self {
        Self {
            token,
            parent,
            aborts: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            skipped: AtomicU64::new(0),
            window,
            probes: Mutex::new(Vec::new()),
        }
    }

    /// Records the run's first failure and stops the run.
    pub(crate) fn fail(&self, error: PipelineError<E>) {
        {
            let mut slot = lock(&self.error);
            if slot.is_none() {
                *slot = Some(error);
                self.failed.store(true, Ordering::Release);
            }
        }
        self.token.cancel();
    }

    /// The stop watcher, the last task of a run: once the run's token is cancelled
    /// (the stream ended or was dropped, a fail-fast error, or the pipeline's token),
    /// it [stops every task](Self::stop_all).
    pub(crate) async fn watch(self: Arc<Self>) {
        self.token.cancelled().await;
        self.stop_all();
    }

    /// Aborts every task of the run, refuses new input and lets go of the run's
    /// buffers (so they go with the aborted tasks, even while the stream is kept).
    pub(crate) fn stop_all(&self) {
        let handles = std::mem::take(&mut *lock(&self.aborts));
        for h in handles {
            h.abort();
        }
        if let Some(w) = &self.window {
            w.close();
        }
        self.release_probes();
    }

    /// Registers a task of the run, to be aborted when the run stops.
    pub(crate) fn track(&self, h: AbortHandle) {
        lock(&self.aborts).push(h);
    }

    /// Has the stage of `metrics` report the buffer `rx` reads (of `capacity` items),
    /// while this run holds it; the stage's workers count what they put in it through
    /// the returned buffer.
    pub(crate) fn probe<T: Send + 'static>(
        &self,
        metrics: &Metrics,
        rx: &Receiver<T>,
        capacity: usize,
    ) -> Arc<RunBuffer<T>> {
        let buffer = metrics.probe(rx, capacity);
        lock(&self.probes).push(buffer.clone());
        buffer
    }

    /// Lets go of the run's buffers: they stop being reported, and each is freed (with
    /// the items still in it) as soon as the run's tasks have let go of it too.
    pub(crate) fn release_probes(&self) {
        let probes = std::mem::take(&mut *lock(&self.probes));
        drop(probes);
    }
}
