//! Where "memory pressure" comes from, as the model cache sees it: the engine implements it with
//! free host memory or free GPU memory (NVML).

/// Reports the fraction of memory that is free, in `[0, 1]`; `None` when it cannot be read.
pub trait MemoryProbe: Send + Sync {
    fn name(&self) -> &'static str;
    fn free_fraction(&self) -> Option<f64>;
}
