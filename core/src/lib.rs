//! Sightline core: the contracts every other crate shares. Model ids, tasks, requests and answers,
//! tensors, the `Model` and its capabilities, the `ModelManager` with its decorators, and the
//! errors. Nothing here knows about ONNX Runtime, the disk cache or HTTP.
//!
//! Dependencies point one way: `server` → `models` → `engine` → `core`, and `artifacts` → `core`.

pub mod admission;
pub mod base_manager;
pub mod capability;
pub mod decorators;
pub mod error;
pub mod finite;
pub mod inference;
pub mod manager;
pub mod memory_probe;
pub mod metric_families;
pub mod model;
pub mod model_id;
pub mod tensor;

pub use admission::{Admission, ModelQueue, QueuePolicy, Ticket};
pub use base_manager::BaseManager;
pub use capability::{Asked, Classify, Detect, EmbedImage, EmbedText, ReadText, RunTensors};
pub use decorators::{CacheConfig, Decorated, Hooks, ManagerMetrics, WithFixedSizeCache, WithLogger, WithMetrics};
pub use error::CoreError;
pub use finite::Finite;
pub use inference::{
    ClassScore, ClassificationOutput, ClassificationParams, CocoRle, DetectOptions, Detection, DetectionOutput,
    DetectionParams, ImageRequest, InstanceMask, Keypoint, MaskDecodeMode, MaskParams, OcrLine, OcrOutput,
    PreprocessingFlags, Task, VisualizeParams,
};
pub use manager::{infer, EvictionCause, Inference, Inventory, ModelManager, RemovalReason};
pub use memory_probe::MemoryProbe;
pub use metric_families::Families;
pub use model::{Model, ModelDescription, ModelLoader};
pub use model_id::ModelId;
pub use tensor::{DataType, Tensor, TensorSignature, TensorSpec};
