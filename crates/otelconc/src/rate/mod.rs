//! A token-bucket rate limiter: [`RateLimiter`].
//!
//! COSTDOCS
mod clock;
mod error;
mod gcra;
mod limiter;
pub(crate) mod stripes;

pub use clock::Clock;
pub use error::{ConfigError, ExceedsBurst, RateLimited, TryAcquireError};
pub use limiter::{Builder, Rate, RateLimiter, Reservation};
