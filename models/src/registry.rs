//! The registry: resolves a model id to its verified folder in the artifact cache, reads (task,
//! architecture) from the metadata there, and builds the matching task model. It is the
//! `ModelLoader` behind the manager.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sightline_core::artifacts::ArtifactCache;
use sightline_core::{CoreError, InferRequest, InferResponse, Model, ModelDescription, ModelId, ModelLoader, Task};

use crate::classifier::ClassificationModel;
use crate::image_decode::DecodeLimits;
use crate::model_config::{read_model_dir, read_task, Architecture};
use crate::ocr::model::OcrModel;
use crate::yolo_model::YoloModel;
use crate::ModelError;

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Requests that may wait for one model's inference thread.
    pub queue_capacity: usize,
    /// ONNX Runtime intra-op threads per session; 0 = ONNX Runtime's default.
    pub intra_threads: usize,
    pub decode_limits: DecodeLimits,
}

pub struct ModelRegistry {
    options: RegistryOptions,
    artifacts: Arc<ArtifactCache>,
}

impl ModelRegistry {
    pub fn new(options: RegistryOptions, artifacts: Arc<ArtifactCache>) -> Self {
        ModelRegistry { options, artifacts }
    }

    /// Blocking: reads the (verified) folder and builds the model.
    fn build(options: &RegistryOptions, id: &ModelId, dir: &Path) -> Result<Arc<dyn Model>, ModelError> {
        let (task, model_type) = read_task(dir)?;
        if task == Task::Ocr {
            return Ok(Arc::new(OcrModel::load(id, dir, &model_type, options)?));
        }
        let config = read_model_dir(dir)?;
        match (config.task, config.architecture) {
            (
                Task::ObjectDetection | Task::InstanceSegmentation | Task::KeypointDetection,
                Architecture::YoloV8 | Architecture::YoloV5,
            ) => Ok(Arc::new(YoloModel::load(id, config, options)?)),
            (Task::Classification, Architecture::Classifier) => {
                Ok(Arc::new(ClassificationModel::load(id, config, options)?))
            }
            (task, architecture) => {
                Err(ModelError::Unsupported(format!("{architecture:?} models cannot serve {task} ({})", dir.display())))
            }
        }
    }
}

#[async_trait]
impl ModelLoader for ModelRegistry {
    async fn load(&self, id: &ModelId) -> Result<Arc<dyn Model>, CoreError> {
        let entry = self.artifacts.ensure(id).await?;
        let onnx_bytes =
            entry.manifest.files.iter().filter(|(name, _)| name.ends_with(".onnx")).map(|(_, f)| f.size).sum();
        let options = self.options.clone();
        let id = id.clone();
        let model =
            tokio::task::spawn_blocking(move || Self::build(&options, &id, &entry.dir).map_err(CoreError::from))
                .await
                .map_err(|e| CoreError::Internal(format!("model load task failed: {e}")))??;
        let mut description = model.description().clone();
        description.resident_bytes = Some(onnx_bytes);
        Ok(Arc::new(Registered { inner: model, description }))
    }
}

/// A built model with the facts only the registry knows (the size of its artifacts).
struct Registered {
    inner: Arc<dyn Model>,
    description: ModelDescription,
}

#[async_trait]
impl Model for Registered {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    async fn infer(&self, request: InferRequest) -> Result<InferResponse, CoreError> {
        self.inner.infer(request).await
    }
}
