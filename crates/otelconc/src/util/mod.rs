//! Private helpers with no telemetry or primitive of their own, shared by the modules:
//! - [`sync`]: the one way the crate takes a `std::sync::Mutex` (poisoning is taken over);
//! - [`stripes`]: counters that many threads bump without a locked instruction (the rate
//!   limiter's and the semaphore's, the crate's "striped" counter scheme);
//! - [`panic_payload`]: a caught panic's payload as a message.
//!
//! They are written by hand because no crate does these small things the way the hot
//! paths need them (`stripes` is the only one of any size; its module docs say why).

pub(crate) mod panic_payload;
pub(crate) mod stripes;
pub(crate) mod sync;
