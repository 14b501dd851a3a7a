//! The contract between the manager (which keeps models) and the models crate (which builds them).

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::capability::{Classify, Detect, EmbedImage, EmbedText, ReadText, RunTensors};
use crate::{CoreError, ModelId, Task, TensorSignature};

/// What the registry endpoints report about a loaded model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDescription {
    pub model_id: ModelId,
    pub task: Task,
    pub architecture: String,
    /// `None` for a dynamic batch axis.
    pub batch_size: Option<usize>,
    pub input_width: Option<u32>,
    pub input_height: Option<u32>,
    pub class_names: Vec<String>,
    /// Bytes of the model's ONNX files, which ONNX Runtime keeps resident as initializers (working
    /// memory comes on top); set by the registry, which knows the artifacts.
    pub resident_bytes: Option<u64>,
    /// The ONNX Runtime provider the model's sessions really run on, e.g. `CPUExecutionProvider`
    /// (after any fallback; `+`-joined when a pipeline's sessions differ).
    pub execution_provider: String,
    /// Where they run: `cpu`, `cuda:0`, `openvino:CPU`, ...
    pub device: String,
    /// GPU memory the load took on its device (NVML, used memory before and after); `None` off GPU.
    pub vram_bytes: Option<u64>,
    /// The session's inputs and outputs, for models the Open Inference Protocol can drive (one
    /// session); `None` for pipelines of several (OCR).
    #[serde(skip)]
    pub tensors: Option<TensorSignature>,
    /// Where this load found the model: `cache` (already on disk), or the source that downloaded
    /// it (`local`, `s3`, `api`); set by the registry.
    #[serde(skip)]
    pub artifact_source: String,
}

impl ModelDescription {
    /// The placement fields before the registry fills them from the model's sessions.
    pub fn unplaced(model_id: ModelId) -> ModelDescription {
        ModelDescription {
            model_id,
            task: Task::ObjectDetection,
            architecture: String::new(),
            batch_size: None,
            input_width: None,
            input_height: None,
            class_names: Vec::new(),
            resident_bytes: None,
            execution_provider: String::new(),
            device: String::new(),
            vram_bytes: None,
            tensors: None,
            artifact_source: String::new(),
        }
    }
}

/// A loaded, validated model ready to serve requests: it says what it is and what it can do
/// (each capability `None` unless the model has it).
pub trait Model: Send + Sync + 'static {
    fn description(&self) -> &ModelDescription;

    fn detector(&self) -> Option<&dyn Detect> {
        None
    }

    fn classifier(&self) -> Option<&dyn Classify> {
        None
    }

    fn text_reader(&self) -> Option<&dyn ReadText> {
        None
    }

    fn tensor_runner(&self) -> Option<&dyn RunTensors> {
        None
    }

    fn image_embedder(&self) -> Option<&dyn EmbedImage> {
        None
    }

    fn text_embedder(&self) -> Option<&dyn EmbedText> {
        None
    }

    /// The queue its images wait in, so that a request's images are admitted as one unit.
    fn image_queue(&self) -> Option<std::sync::Arc<crate::ModelQueue>> {
        None
    }
}

/// Builds models from their artifacts; the registry in `models` implements it.
#[async_trait]
pub trait ModelLoader: Send + Sync + 'static {
    /// Fetches and checks what a load of `id` needs (its artifacts, its metadata), building
    /// nothing: a manager makes room for a model only once this passed, so an unknown id or a
    /// broken folder costs no loaded model.
    async fn prepare(&self, _id: &ModelId) -> Result<(), CoreError> {
        Ok(())
    }
    async fn load(&self, id: &ModelId) -> Result<Arc<dyn Model>, CoreError>;
    /// See [`crate::ModelManager::estimate_bytes`].
    fn estimate_bytes(&self, _id: &ModelId) -> Option<u64> {
        None
    }
}
