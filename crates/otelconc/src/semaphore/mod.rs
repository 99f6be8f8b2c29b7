//! A weighted semaphore: [`Semaphore`].
//!
//! SEMDOCS
mod error;
mod sem;

pub use error::{ConfigError, ExceedsTotal, TryAcquireError};
pub use sem::{Builder, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
