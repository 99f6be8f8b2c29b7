//! Private helpers with no telemetry or primitive of their own, shared by the modules:
//! - [`sync`]: the one way the crate takes a `std::sync::Mutex` (poisoning is taken over);
//! - [`counts`]: the crate's two cheap-counter schemes, single-writer and striped;
//! - [`panic_payload`]: a caught panic's payload as a message.
//!
//! They are written by hand because no crate does these small things the way the hot
//! paths need them (`counts` is the only one of any size; its module docs say why).

pub(crate) mod counts;
pub(crate) mod panic_payload;
pub(crate) mod sync;
