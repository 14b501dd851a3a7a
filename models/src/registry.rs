//! The registry: resolves a model id to its verified folder in the artifact cache, reads (task,
//! architecture) from the metadata there, and builds the matching task model. It is the
//! `ModelLoader` behind the manager.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sightline_artifacts::{ArtifactCache, CachedEntry, Manifest};
use sightline_core::{
    Classify, CoreError, Detect, EmbedImage, EmbedText, Model, ModelDescription, ModelId, ModelLoader, ReadText,
    RunTensors, Task,
};
use sightline_engine::{process_memory, LoadPool, ModelSessions, RunsOn};

use crate::load_options::LoadOptions;
use crate::model_config::{read_model_dir, read_task, Architecture, ModelConfig, MODEL_TYPE_FILE};
use crate::tasks::classifier::ClassificationModel;
use crate::tasks::embedding::{EmbeddingModel, Layout};
use crate::tasks::ocr::model::OcrModel;
use crate::tasks::rfdetr::model::RfDetrModel;
use crate::tasks::tensor::{TensorModel, TENSOR_MODEL_FILE};
use crate::tasks::yolo::model::YoloModel;
use crate::ModelError;

pub struct ModelRegistry {
    options: LoadOptions,
    artifacts: Arc<ArtifactCache>,
    loads: LoadPool,
    /// Entries verified by `prepare`, taken by the load that follows it.
    prepared: Mutex<HashMap<ModelId, CachedEntry>>,
}

impl ModelRegistry {
    /// Models are built on `loads`, away from the threads that serve requests.
    pub fn new(options: LoadOptions, artifacts: Arc<ArtifactCache>, loads: LoadPool) -> Self {
        ModelRegistry { options, artifacts, loads, prepared: Mutex::new(HashMap::new()) }
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
        match Kind::of(dir)? {
            Kind::Embedding(layout) => Ok(Arc::new(EmbeddingModel::load(id, dir, layout, options, sessions)?)),
            Kind::Tensor => Ok(Arc::new(TensorModel::load(id, dir, options, sessions)?)),
            Kind::Ocr(model_type) => Ok(Arc::new(OcrModel::load(id, dir, &model_type, options, sessions)?)),
            Kind::Yolo(config) => Ok(Arc::new(YoloModel::load(id, config, options, sessions)?)),
            Kind::RfDetr(config) => Ok(Arc::new(RfDetrModel::load(id, config, options, sessions)?)),
            Kind::Classifier(config) => Ok(Arc::new(ClassificationModel::load(id, config, options, sessions)?)),
        }
    }
}

/// Which task model a folder builds, read from its metadata alone (nothing is built): what a
/// load checks before the manager makes room for it.
enum Kind {
    Embedding(Layout),
    Tensor,
    Ocr(String),
    Yolo(ModelConfig),
    RfDetr(ModelConfig),
    Classifier(ModelConfig),
}

impl Kind {
    fn of(dir: &Path) -> Result<Kind, ModelError> {
        if let Some(layout) = Layout::of(dir) {
            return Ok(Kind::Embedding(layout));
        }
        if !dir.join(MODEL_TYPE_FILE).exists() && dir.join(TENSOR_MODEL_FILE).exists() {
            return Ok(Kind::Tensor);
        }
        let (task, model_type) = read_task(dir)?;
        if task == Task::Ocr {
            return Ok(Kind::Ocr(model_type));
        }
        let config = read_model_dir(dir)?;
        match (config.task, config.architecture) {
            (
                Task::ObjectDetection | Task::InstanceSegmentation | Task::KeypointDetection,
                Architecture::YoloV8 | Architecture::YoloV5 | Architecture::YoloEndToEnd,
            ) => Ok(Kind::Yolo(config)),
            (Task::ObjectDetection | Task::InstanceSegmentation, Architecture::RfDetr) => Ok(Kind::RfDetr(config)),
            (Task::Classification, Architecture::Classifier) => Ok(Kind::Classifier(config)),
            (task, architecture) => {
                Err(ModelError::Unsupported(format!("{architecture:?} models cannot serve {task}")))
            }
        }
    }
}

#[async_trait]
impl ModelLoader for ModelRegistry {
    /// Fetches and verifies the entry and reads what it is; the entry is kept for the load that
    /// follows, so its files are not hashed twice.
    async fn prepare(&self, id: &ModelId) -> Result<(), CoreError> {
        let entry = self.artifacts.ensure(id).await?;
        let dir = entry.dir.clone();
        self.loads.run(move || Kind::of(&dir).map(|_| ()).map_err(CoreError::from)).await??;
        self.prepared.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), entry);
        Ok(())
    }

    async fn load(&self, id: &ModelId) -> Result<Arc<dyn Model>, CoreError> {
        let prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        let entry = match prepared {
            Some(entry) => entry,
            None => self.artifacts.ensure(id).await?,
        };
        let onnx_bytes = onnx_bytes(&entry.manifest);
        let (downloaded, source) = (entry.downloaded, entry.manifest.source.clone());
        let options = self.options.clone();
        let id = id.clone();
        let ((model, runs_on), measured) = self
            .loads
            .run(move || measured_build(|| Self::build(&options, &id, &entry.dir).map_err(CoreError::from)))
            .await??;
        let mut description = model.description().clone();
        description.resident_bytes = Some(measured.unwrap_or(onnx_bytes));
        description.execution_provider = runs_on.execution_provider;
        description.device = runs_on.device;
        description.vram_bytes = runs_on.vram_bytes;
        description.artifact_source = if downloaded { source } else { "cache".into() };
        Ok(Arc::new(Registered { inner: model, description }))
    }

    /// From the cached manifest, when the model is in the cache (see [`estimate_from_onnx_bytes`]).
    fn estimate_bytes(&self, id: &ModelId) -> Option<u64> {
        let manifest = Manifest::read(&self.artifacts.root().join(id.to_string())).ok()?;
        Some(estimate_from_onnx_bytes(onnx_bytes(&manifest)))
    }
}

/// Runs `build` and measures what it left allocated: the model's sessions, weights and working
/// memory after its test inference. Requests served meanwhile add noise of the order of one
/// request's buffers; with `MODEL_LOAD_CONCURRENCY` above 1, loads running together count each
/// other's growth too. `None` where the allocator cannot be read.
fn measured_build<T>(build: impl FnOnce() -> Result<T, CoreError>) -> Result<(T, Option<u64>), CoreError> {
    let before = process_memory::heap_in_use();
    let built = build()?;
    let after = process_memory::heap_in_use();
    Ok((built, before.zip(after).map(|(b, a)| a.saturating_sub(b))))
}

fn onnx_bytes(manifest: &Manifest) -> u64 {
    manifest.files.iter().filter(|(name, _)| name.ends_with(".onnx")).map(|(_, f)| f.size).sum()
}

/// The expected size of a model never measured: its ONNX bytes plus a quarter (prepacked weights,
/// working memory) plus 6 MiB (a session's thread pool and plans). Measured on the shipped models:
/// 1.03× the ONNX bytes for a 44 MB detector, 1.5× for `ppocr/4`, 2.2–2.8× (4–10 MB) for the
/// small `shapes` models; this formula over-estimates each of them a little.
pub fn estimate_from_onnx_bytes(onnx_bytes: u64) -> u64 {
    onnx_bytes + onnx_bytes / 4 + (6 << 20)
}

/// A built model with the facts only the registry knows (the size of its artifacts, where its
/// sessions run).
struct Registered {
    inner: Arc<dyn Model>,
    description: ModelDescription,
}

impl Model for Registered {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn detector(&self) -> Option<&dyn Detect> {
        self.inner.detector()
    }

    fn classifier(&self) -> Option<&dyn Classify> {
        self.inner.classifier()
    }

    fn text_reader(&self) -> Option<&dyn ReadText> {
        self.inner.text_reader()
    }

    fn tensor_runner(&self) -> Option<&dyn RunTensors> {
        self.inner.tensor_runner()
    }

    fn image_embedder(&self) -> Option<&dyn EmbedImage> {
        self.inner.image_embedder()
    }

    fn text_embedder(&self) -> Option<&dyn EmbedText> {
        self.inner.text_embedder()
    }

    fn image_queue(&self) -> Option<Arc<sightline_core::ModelQueue>> {
        self.inner.image_queue()
    }
}
