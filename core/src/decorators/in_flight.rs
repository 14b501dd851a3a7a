//! Which caller "owns" a model load, so that decorators report a load once even when many
//! concurrent requests wait on the same single-flight load.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::ModelId;

#[derive(Default)]
pub struct InFlight(Mutex<HashSet<ModelId>>);

/// Held by the first caller of a load; releases the id when dropped (also on cancellation).
pub struct LoadClaim<'a> {
    set: &'a InFlight,
    id: ModelId,
}

impl InFlight {
    /// `Some` for exactly one caller at a time per id.
    pub fn claim(&self, id: &ModelId) -> Option<LoadClaim<'_>> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(id.clone()).then(|| LoadClaim { set: self, id: id.clone() })
    }
}

impl Drop for LoadClaim<'_> {
    fn drop(&mut self) {
        self.set.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}
