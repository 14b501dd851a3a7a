//! Sightline core: the model-manager contract, its decorators, and the types every other crate shares.
//!
//! Dependencies point one way: `server` → `models` → `core`. Nothing here knows about ONNX Runtime or HTTP.

pub mod artifacts;
pub mod base_manager;
pub mod error;
pub mod fixed_size_cache;
pub mod gpu;
mod in_flight;
pub mod inference;
pub mod logger;
pub mod manager;
pub mod memory_probe;
pub mod metrics;
pub mod model;
pub mod model_id;
pub mod process_memory;
pub mod tensor;

pub use base_manager::BaseManager;
pub use error::CoreError;
pub use fixed_size_cache::WithFixedSizeCache;
pub use gpu::{DevicePlacer, GpuSnapshot, GpuSource, NvmlSource};
pub use inference::{
    ClassScore, ClassificationOutput, ClassificationParams, CocoRle, Detection, DetectionOutput, DetectionParams,
    ImageRequest, InferRequest, InferResponse, InstanceMask, Keypoint, MaskDecodeMode, MaskParams, OcrLine, OcrOutput,
    PreprocessingFlags, Task, TaskParams, VisualizeParams,
};
pub use logger::WithLogger;
pub use manager::{EvictionCause, ModelManager, RemovalReason};
pub use memory_probe::{GpuMemoryProbe, HostMemoryProbe, MemoryProbe};
pub use metrics::{ManagerMetrics, WithMetrics};
pub use model::{Model, ModelDescription, ModelLoader};
pub use model_id::ModelId;
pub use tensor::{DataType, Tensor, TensorSignature, TensorSpec};
