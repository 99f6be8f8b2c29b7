//! The weighted semaphore, one file per concern: `behaviour` (FIFO fairness, guards,
//! cancellation, resizing, bad input) and `telemetry` (its metrics and wait spans).

mod behaviour;
mod telemetry;

use tokio::task::yield_now;

/// A multi-thread runtime with `workers` workers and the time driver.
pub(crate) fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_time()
        .build()
        .expect("runtime")
}

/// Lets spawned tasks run until they wait.
pub(crate) async fn settle() {
    for _ in 0..10 {
        yield_now().await;
    }
}
