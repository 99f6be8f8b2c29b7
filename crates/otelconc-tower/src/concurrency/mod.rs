//! [`ConcurrencyLimitLayer`]: an [`otelconc::semaphore::Semaphore`] in front of a tower
//! service, bounding the requests in flight (optionally weighted per request).
//!
//! The semaphore's semantics carry over unchanged (FIFO whatever the weight, impossible
//! requests fail at once, runtime resizing), and so does its telemetry: permits
//! admitted, refused and in use, wait durations, and an `otelconc.semaphore.wait` span
//! for a request that waits inside a sampled trace. See [`ConcurrencyLimit`] for where
//! the permits are taken in each mode and how they are given back.
//!
//! # Cost
//! Per request, over the inner service: one read of the free permits and one take of
//! an owned permit (a reference-count increment), as for tower's own
//! `ConcurrencyLimit`, in about 1.45x its time (20.5 ns against 14 ns per ready + call,
//! with or without SDK metrics; the `tower` suite of the bench). The extra 6 ns are the
//! layer's, not the semaphore's: the read before the take, and `BoxError` results.
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
