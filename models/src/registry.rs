//! The registry: resolves a model id to its verified folder in the artifact cache, reads (task,
//! architecture) from the metadata there, and builds the matching task model. It is the
//! `ModelLoader` behind the manager.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sightline_core::artifacts::ArtifactCache;
use sightline_core::{CoreError, InferRequest, InferResponse, Model, ModelDescription, ModelId, ModelLoader, Task};

use crate::classifier::ClassificationModel;
use crate::engine::{ModelSessions, RunsOn};
use crate::load_options::LoadOptions;
use crate::model_config::{read_model_dir, read_task, Architecture};
use crate::ocr::model::OcrModel;
use crate::yolo::model::YoloModel;
use crate::ModelError;

pub struct ModelRegistry {
    options: LoadOptions,
    artifacts: Arc<ArtifactCache>,
}

impl ModelRegistry {
    pub fn new(options: LoadOptions, artifacts: Arc<ArtifactCache>) -> Self {
        ModelRegistry { options, artifacts }
    }

    /// Blocking: reads the (verified) folder and builds the model, its sessions on the engine's
    /// first provider that works; the description says where they run.
    fn build(options: &LoadOptions, id: &ModelId, dir: &Path) -> Result<(Arc<dyn Model>, RunsOn), ModelError> {
        let mut sessions = options.engine.for_model(dir);
        let model = Self::build_task_model(options, id, dir, &mut sessions)?;
        Ok((model, sessions.runs_on()))
    }

    fn build_task_model(
        options: &LoadOptions,
        id: &ModelId,
        dir: &Path,
        sessions: &mut ModelSessions<'_>,
    ) -> Result<Arc<dyn Model>, ModelError> {
        let (task, model_type) = read_task(dir)?;
        if task == Task::Ocr {
            return Ok(Arc::new(OcrModel::load(id, dir, &model_type, options, sessions)?));
        }
        let config = read_model_dir(dir)?;
        match (config.task, config.architecture) {
            (
                Task::ObjectDetection | Task::InstanceSegmentation | Task::KeypointDetection,
                Architecture::YoloV8 | Architecture::YoloV5,
            ) => Ok(Arc::new(YoloModel::load(id, config, options, sessions)?)),
            (Task::Classification, Architecture::Classifier) => {
                Ok(Arc::new(ClassificationModel::load(id, config, options, sessions)?))
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
        let (model, runs_on) =
            tokio::task::spawn_blocking(move || Self::build(&options, &id, &entry.dir).map_err(CoreError::from))
                .await
                .map_err(|e| CoreError::Internal(format!("model load task failed: {e}")))??;
        let mut description = model.description().clone();
        description.resident_bytes = Some(onnx_bytes);
        description.execution_provider = runs_on.execution_provider;
        description.device = runs_on.device;
        description.vram_bytes = runs_on.vram_bytes;
        Ok(Arc::new(Registered { inner: model, description }))
    }
}

/// A built model with the facts only the registry knows (the size of its artifacts, where its
/// sessions run).
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
