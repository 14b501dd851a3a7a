//! What every task model is loaded with. Its own module so the task models take it without
//! importing the registry that builds them.

use std::sync::Arc;

use crate::engine::Engine;
use crate::DecodeLimits;

#[derive(Clone)]
pub struct LoadOptions {
    /// Requests that may wait for one model's inference thread.
    pub queue_capacity: usize,
    pub decode_limits: DecodeLimits,
    /// The execution providers sessions are built with.
    pub engine: Arc<Engine>,
}
