//! [`ConcurrencyLimitLayer`]: an [`otelconc::semaphore::Semaphore`] in front of a tower
//! service, bounding the requests in flight (optionally weighted per request).
//!
//! The semaphore's semantics carry over unchanged (FIFO whatever the weight, impossible
//! requests fail at once, runtime resizing), and so does its telemetry: calls and
//! permits by outcome, waits and wait durations, permits free and used, and an
//! `otelconc.semaphore.wait` span for a request that waits inside a sampled trace. The
//! layer exports no metric of its own. See [`ConcurrencyLimit`] for where
//! the permits are taken in each mode and how they are given back.
//!
//! # Cost
//! Per request, over the inner service: one take of an owned permit (a reference-count
//! increment), as for tower's own `ConcurrencyLimit`, preceded in a wait mode by one
//! read of the free permits; in about 1.12-1.16x its time (16.1-16.7 ns against
//! 14.3-14.4 ns per ready + call, with or without SDK metrics; the `tower` suite of the
//! bench, five runs). What remains over tower's is the semaphore's owned take, which
//! counts the grant on a per-thread stripe, and the read before it. The slow paths
//! (waits, refusals) are kept out of line, so the ready path is a few compares around
//! the take.
//!
//! # Examples
//! ```
//! use otelconc::semaphore::Semaphore;
//! use otelconc_tower::concurrency::ConcurrencyLimitLayer;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), otelconc_tower::BoxError> {
//! let connections = Semaphore::new("db-connections", 8)?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(ConcurrencyLimitLayer::new(connections.clone()))
//!     .service_fn(|q: &'static str| async move { Ok::<_, std::convert::Infallible>(q.len()) });
//! let ready = svc.ready().await?; // the permit is taken here
//! assert_eq!(connections.available_permits(), 7);
//! assert_eq!(ready.call("select 1").await?, 8); // and given back here
//! assert_eq!(connections.available_permits(), 8);
//! # Ok(())
//! # }
//! ```

mod error;
mod future;
mod layer;
mod service;

pub use error::ConcurrencyLimited;
pub use future::ResponseFuture;
pub use layer::{ConcurrencyLimitLayer, Unweighted, Weight};
pub use service::ConcurrencyLimit;
