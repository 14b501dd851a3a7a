//! The decorators over a [`ModelManager`]: the LRU cache (`cache`), which decides what is loaded,
//! and the observers (`metrics`, `logger`), which only watch. An observer is a set of [`Hooks`]
//! inside [`Decorated`], which forwards every call and decides, in one place, which caller owns a
//! load, so that an observer writes only what it reports.

mod cache;
mod decorated;
mod in_flight;
mod logger;
mod metrics;

pub use cache::{CacheConfig, WithFixedSizeCache};
pub use decorated::{Decorated, Hooks};
pub use logger::{Logging, WithLogger};
pub use metrics::{ManagerMetrics, WithMetrics};
