//! The crate's error: Redis, encoding, or configuration.

use std::fmt;

/// Why a queue operation failed.
///
/// # Examples
/// ```
/// let e = otelconc_redis::Error::Config("workers must be at least 1".into());
/// assert_eq!(e.to_string(), "invalid configuration: workers must be at least 1");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Redis refused the command, or could not be reached (a bad URL, a refused or lost
    /// connection, a response timeout).
    Redis(redis::RedisError),
    /// The job could not be serialized to JSON.
    Encode(serde_json::Error),
    /// A builder setting is out of range, or the queue name is empty.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(e) => write!(f, "redis: {e}"),
            Self::Encode(e) => write!(f, "could not encode the job: {e}"),
            Self::Config(m) => write!(f, "invalid configuration: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Redis(e) => Some(e),
            Self::Encode(e) => Some(e),
            Self::Config(_) => None,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}
