//! The service: what every protocol's handlers call, and the only way they reach models and the
//! model cache. It resolves the model (loading it within `MODEL_LOAD_WAIT_SECS`), fetches the
//! images, asks the model for the capability the request needs (refusing, in one place, a model
//! that lacks it), and times each answer. Handlers only parse, check and shape.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt, TryStreamExt};
use sightline_artifacts::{ArtifactCache, CacheListing, CachedEntry, NoProgress, VerifyLevel};
use sightline_core::{
    Admission, Asked, ClassificationOutput, ClassificationParams, CoreError, DetectOptions, DetectionOutput, Finite,
    ImageRequest, Model, ModelDescription, ModelId, ModelManager, OcrOutput, PreprocessingFlags, RemovalReason, Task,
    Tensor, TensorSignature, TensorSpec, Ticket, VisualizeParams,
};
use sightline_engine::{DevicePlacer, GpuSnapshot, PipelineMetrics};

use crate::config::Config;
use crate::error::ApiError;
use crate::image_input::ImageInput;
use crate::startup_error::StartupError;
use crate::types::protocol::{
    ConfigTensor, DynamicBatching, InstanceGroup, ModelConfig, ModelMetadata, TensorMetadata,
};
use crate::url_fetch::{UrlFetcher, UrlPolicy};

/// What the protocol calls the runtime every model is served by (Triton's platform name).
const PLATFORM: &str = "onnxruntime_onnx";

/// Images of one request in the model's queue at once: a long list must not flood it.
pub const IMAGES_IN_FLIGHT: usize = 4;

pub struct Service {
    manager: Arc<dyn ModelManager>,
    /// The verified disk cache behind every load.
    artifacts: Arc<ArtifactCache>,
    /// `MODEL_LOAD_WAIT_SECS`: how long an inference request waits for its model to load.
    load_wait: Duration,
    /// Fetches `url` image inputs under the destination policy.
    url_fetcher: UrlFetcher,
    /// The GPUs models may be placed on, where NVML sees any.
    gpus: Option<Arc<DevicePlacer>>,
    /// Serves the OCR routes without a `model_id`.
    default_ocr_model: String,
    /// `CLIP_VERSION_ID` and `CLIP_MAX_BATCH_SIZE`, for `/clip/*`.
    clip_version_id: String,
    clip_max_batch_size: usize,
    /// `MAX_IMAGES_PER_REQUEST`.
    max_images: usize,
    /// Where refusals before a model's queue are counted.
    pipeline: PipelineMetrics,
    /// How models are served, for their protocol configuration: instances per model file,
    /// `MAX_BATCH_SIZE`, `BATCH_MAX_DELAY_US`.
    serving: Serving,
}

/// How the deployment serves each model (the protocol's model configuration reports it).
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub instances: usize,
    pub max_batch: usize,
    pub batch_delay_us: u64,
}

/// Images of one request, and what the capability serving them is asked.
pub struct ImageJob<P> {
    pub images: Vec<ImageInput>,
    pub preprocessing: PreprocessingFlags,
    /// `Some` to get each image back with the predictions drawn.
    pub visualize: Option<VisualizeParams>,
    pub options: P,
}

/// What answering a request involved, for Roboflow's response headers.
pub struct Served {
    pub model_id: ModelId,
    /// Seconds spent loading the model when this request had to load it.
    pub cold_load: Option<f64>,
    pub started: Instant,
}

/// A request's images admitted to their model's queue as one unit: the first image to reach the
/// model admits them all, and each takes its ticket from that admission.
struct ListAdmission {
    count: usize,
    admitted: std::sync::Mutex<Option<Admission>>,
}

impl ListAdmission {
    fn new(count: usize) -> ListAdmission {
        ListAdmission { count, admitted: std::sync::Mutex::new(None) }
    }

    /// The image's ticket in `model`'s queue (`None` where the model admits images itself).
    fn ticket(&self, model: &dyn Model) -> Result<Option<Ticket>, CoreError> {
        let Some(queue) = model.image_queue() else { return Ok(None) };
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if admitted.is_none() {
            *admitted = Some(queue.admit(self.count)?);
        }
        Ok(admitted.as_mut().and_then(Admission::ticket))
    }
}

/// Each image's answer, with the seconds its pipeline took.
pub struct Answered<O> {
    pub outputs: Vec<(O, f64)>,
    pub served: Served,
}

impl Service {
    /// The service over `manager` and `artifacts`, with the deployment's limits from `config`.
    pub fn new(
        manager: Arc<dyn ModelManager>,
        artifacts: Arc<ArtifactCache>,
        gpus: Option<Arc<DevicePlacer>>,
        pipeline: PipelineMetrics,
        config: &Config,
    ) -> Result<Service, StartupError> {
        let url_fetcher = UrlFetcher::new(UrlPolicy {
            enabled: config.allow_url_input,
            allow_private: config.allow_private_urls,
            allowed_networks: config.allowed_url_networks.clone(),
            max_bytes: config.max_body_bytes,
            timeout: Duration::from_secs(config.url_input_timeout_secs),
        })
        .map_err(|e| StartupError::UrlClient(e.to_string()))?;
        Ok(Service {
            load_wait: Duration::from_secs(config.model_load_wait_secs),
            default_ocr_model: config.default_ocr_model.clone(),
            clip_version_id: config.clip_version_id.clone(),
            clip_max_batch_size: usize::try_from(config.clip_max_batch_size).unwrap_or(usize::MAX),
            max_images: usize::try_from(config.max_images_per_request).unwrap_or(usize::MAX),
            pipeline,
            serving: Serving {
                instances: 1,
                max_batch: config.max_batch_size as usize,
                batch_delay_us: config.batch_max_delay_us,
            },
            manager,
            artifacts,
            url_fetcher,
            gpus,
        })
    }

    /// Serves each model file with `instances` sessions (the engine's count), as reported.
    pub fn with_instances(mut self, instances: usize) -> Service {
        self.serving.instances = instances;
        self
    }

    pub fn default_ocr_model(&self) -> &str {
        &self.default_ocr_model
    }

    pub fn clip_version_id(&self) -> &str {
        &self.clip_version_id
    }

    /// `MAX_IMAGES_PER_REQUEST`.
    pub fn max_images(&self) -> usize {
        self.max_images
    }

    pub fn clip_max_batch_size(&self) -> usize {
        self.clip_max_batch_size
    }

    /// The model, loaded if needed within `MODEL_LOAD_WAIT_SECS`. Loads run on their own task,
    /// so giving up here does not cancel the load.
    pub async fn load(&self, id: &ModelId) -> Result<ModelDescription, ApiError> {
        match tokio::time::timeout(self.load_wait, self.manager.add(id)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(ApiError::ModelNotReady(id.to_string())),
        }
    }

    /// Boxes (and masks or keypoints, by `task`) for each image.
    pub async fn detect(
        &self,
        id: &ModelId,
        task: Task,
        job: ImageJob<DetectOptions>,
    ) -> Result<Answered<DetectionOutput>, ApiError> {
        let asked = Asked::task(task);
        self.run_images(id, asked, job, move |model, request| {
            async move { capability(&*model, asked, |m| m.detector())?.detect(request).await }.boxed()
        })
        .await
    }

    pub async fn classify(
        &self,
        id: &ModelId,
        job: ImageJob<ClassificationParams>,
    ) -> Result<Answered<ClassificationOutput>, ApiError> {
        let asked = Asked::task(Task::Classification);
        self.run_images(id, asked, job, move |model, request| {
            async move { capability(&*model, asked, |m| m.classifier())?.classify(request).await }.boxed()
        })
        .await
    }

    pub async fn read_text(&self, id: &ModelId, job: ImageJob<()>) -> Result<Answered<OcrOutput>, ApiError> {
        let asked = Asked::task(Task::Ocr);
        self.run_images(id, asked, job, move |model, request| {
            async move { capability(&*model, asked, |m| m.text_reader())?.read_text(request).await }.boxed()
        })
        .await
    }

    /// Each image's vector, as the model gives it (not normalised).
    pub async fn embed_images(&self, id: &ModelId, job: ImageJob<()>) -> Result<Answered<Vec<f32>>, ApiError> {
        let asked = Asked::EMBED_IMAGE;
        self.run_images(id, asked, job, move |model, request| {
            async move { capability(&*model, asked, |m| m.image_embedder())?.embed_image(request).await }.boxed()
        })
        .await
    }

    /// Each text's vector, in order, as the model gives it (not normalised).
    pub async fn embed_texts(&self, id: &ModelId, texts: Vec<String>) -> Result<(Vec<Vec<f32>>, Served), ApiError> {
        let served = self.ready_to_serve(id).await?;
        let asked = Asked::EMBED_TEXT;
        let vectors = self
            .use_model(id, asked, move |model| async move {
                capability(&*model, asked, |m| m.text_embedder())?.embed_texts(texts).await
            })
            .await?;
        let vectors = vectors.into_iter().map(|v| v.finite(id)).collect::<Result<_, _>>()?;
        Ok((vectors, served))
    }

    /// The Open Inference Protocol's model `name` at `version`: `name/version`, or without a
    /// version the highest one loaded or in the disk cache (every protocol resolves the same way).
    pub async fn protocol_model(&self, name: &str, version: Option<&str>) -> Result<ModelId, ApiError> {
        if let Some(version) = version.filter(|v| !v.is_empty()) {
            return Ok(ModelId::parse(&format!("{name}/{version}"))?);
        }
        ModelId::parse(&format!("{name}/0"))?;
        let version = self.newest_version(name).await.ok_or_else(|| {
            ApiError::NotFoundMessage(format!(
                "no version of model {name:?} is loaded or cached; name one: /v2/models/{name}/versions/{{version}}"
            ))
        })?;
        Ok(ModelId::parse(&format!("{name}/{version}"))?)
    }

    /// The model's tensor interface, loading it first; a pipeline of several sessions has none.
    pub async fn tensor_signature(&self, id: &ModelId) -> Result<TensorSignature, ApiError> {
        let description = self.load(id).await?;
        description.tensors.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{id} is a pipeline of several sessions ({}); it has no tensor interface",
                description.task
            ))
        })
    }

    /// The model's metadata in the protocol (name, version, platform, its tensors), for every
    /// protocol; loads the model.
    pub async fn protocol_metadata(&self, id: &ModelId) -> Result<ModelMetadata, ApiError> {
        let signature = self.tensor_signature(id).await?;
        let tensors = |specs: &[TensorSpec]| -> Vec<TensorMetadata> {
            specs
                .iter()
                .map(|s| TensorMetadata { name: s.name.clone(), datatype: s.datatype.as_str(), shape: s.shape.clone() })
                .collect()
        };
        Ok(ModelMetadata {
            name: id.dataset().to_owned(),
            versions: vec![id.version().to_owned()],
            platform: PLATFORM,
            inputs: tensors(&signature.inputs),
            outputs: tensors(&signature.outputs),
        })
    }

    /// The model's configuration as Triton reports it (its model configuration extension), for
    /// every protocol; loads the model.
    pub async fn protocol_config(&self, id: &ModelId) -> Result<ModelConfig, ApiError> {
        let signature = self.tensor_signature(id).await?;
        let description = self.load(id).await?;
        // A symbolic first axis on every input and output, the model's own batch axis unfixed:
        // the instances batch along it.
        let symbolic_first = |specs: &[TensorSpec]| specs.iter().all(|s| s.shape.first() == Some(&-1));
        let batched =
            description.batch_size.is_none() && symbolic_first(&signature.inputs) && symbolic_first(&signature.outputs);
        let tensors = |specs: &[TensorSpec]| -> Vec<ConfigTensor> {
            specs
                .iter()
                .map(|s| ConfigTensor {
                    name: s.name.clone(),
                    data_type: format!("TYPE_{}", s.datatype.as_str()),
                    dims: if batched { s.shape.iter().skip(1).copied().collect() } else { s.shape.clone() },
                })
                .collect()
        };
        let gpus: Vec<u32> =
            description.device.split('+').filter_map(|d| d.strip_prefix("cuda:")?.parse().ok()).collect();
        Ok(ModelConfig {
            name: id.dataset().to_owned(),
            platform: PLATFORM,
            backend: "onnxruntime",
            max_batch_size: if batched { self.serving.max_batch } else { 0 },
            input: tensors(&signature.inputs),
            output: tensors(&signature.outputs),
            dynamic_batching: batched
                .then_some(DynamicBatching { max_queue_delay_microseconds: self.serving.batch_delay_us }),
            instance_group: vec![InstanceGroup {
                name: id.dataset().to_owned(),
                kind: if gpus.is_empty() { "KIND_CPU" } else { "KIND_GPU" },
                count: self.serving.instances,
                gpus,
            }],
        })
    }

    /// The model's outputs for protocol tensors, after its own load (404 before the body is read).
    pub async fn run_tensors(&self, id: &ModelId, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
        let asked = Asked::TENSORS;
        let outputs = self
            .use_model(id, asked, move |model| async move {
                capability(&*model, asked, |m| m.tensor_runner())?.run_tensors(inputs).await
            })
            .await?;
        Ok(outputs)
    }

    /// Loads the model before the clock starts (`time` is the model pipeline, as in Roboflow's
    /// server), then fetches the images and runs a few of them at a time, the list admitted to
    /// the model's queue as one unit by whichever of its images reaches the model first.
    async fn run_images<P, O>(
        &self,
        id: &ModelId,
        asked: Asked,
        job: ImageJob<P>,
        run: impl Fn(Arc<dyn Model>, ImageRequest<P>) -> BoxFuture<'static, Result<O, CoreError>> + Send + Sync + Copy,
    ) -> Result<Answered<O>, ApiError>
    where
        P: Clone + Send + Sync + 'static,
        O: Finite + Send + 'static,
    {
        let count = job.images.len();
        if count > self.max_images {
            // Labelled by model only for a model that is loaded: a label per id any client
            // makes up would grow the metric without bound.
            let label = if self.manager.contains(id) { id.to_string() } else { "other".into() };
            self.pipeline.refused(&label, "too_many_images");
            return Err(ApiError::TooManyImages { got: count, limit: self.max_images });
        }
        let served = self.ready_to_serve(id).await?;
        let images: Vec<Vec<u8>> =
            stream::iter(job.images.into_iter().map(|image| image.into_bytes(&self.url_fetcher)))
                .buffered(IMAGES_IN_FLIGHT)
                .try_collect()
                .await?;
        let (preprocessing, visualize, options) = (job.preprocessing, job.visualize, job.options);
        let admission = ListAdmission::new(count);
        let admission = &admission;
        let runs = images.into_iter().map(|image| {
            let options = options.clone();
            async move {
                let started = Instant::now();
                let output = self
                    .use_model(id, asked, move |model| async move {
                        let ticket = admission.ticket(&*model)?;
                        run(model, ImageRequest { image, preprocessing, options, visualize, ticket }).await
                    })
                    .await?
                    .finite(id)?;
                Ok::<_, ApiError>((output, started.elapsed().as_secs_f64()))
            }
        });
        let outputs = stream::iter(runs).buffered(IMAGES_IN_FLIGHT).try_collect().await?;
        Ok(Answered { outputs, served })
    }

    /// Loads the model and starts the request's clock, saying whether this request had to load it.
    async fn ready_to_serve(&self, id: &ModelId) -> Result<Served, ApiError> {
        let started = Instant::now();
        let cold = !self.manager.contains(id);
        self.load(id).await?;
        Ok(Served { model_id: id.clone(), cold_load: cold.then(|| started.elapsed().as_secs_f64()), started })
    }

    /// One use of the model through the manager (its decorators count it under `asked`).
    async fn use_model<T, F, Fut>(&self, id: &ModelId, asked: Asked, run: F) -> Result<T, CoreError>
    where
        T: Send,
        F: FnOnce(Arc<dyn Model>) -> Fut + Send,
        Fut: Future<Output = Result<T, CoreError>> + Send,
    {
        sightline_core::infer(self.manager.as_ref(), id, asked.label, run).await
    }

    /// Loads the model, waiting as long as the load takes (`/model/add`, `/start`).
    pub async fn add(&self, id: &ModelId) -> Result<ModelDescription, CoreError> {
        self.manager.add(id).await
    }

    /// Unloads the model; whether it was loaded (or loading).
    pub async fn remove(&self, id: &ModelId) -> bool {
        self.manager.remove(id, RemovalReason::Requested).await
    }

    pub async fn clear(&self) {
        self.manager.clear().await
    }

    /// The loaded models, sorted by id.
    pub fn loaded(&self) -> Vec<ModelDescription> {
        self.manager.describe()
    }

    /// Models whose load is in progress, sorted.
    pub fn loading(&self) -> Vec<ModelId> {
        self.manager.loading()
    }

    pub fn is_loaded(&self, id: &ModelId) -> bool {
        self.manager.contains(id)
    }

    /// What NVML reads of each GPU now; `None` where it sees none.
    pub fn gpus(&self) -> Option<Vec<GpuSnapshot>> {
        self.gpus.as_ref().map(|g| g.snapshots()).filter(|s| !s.is_empty())
    }

    /// The newest version of `dataset` loaded or in the disk cache (numbers compare as numbers).
    pub async fn newest_version(&self, dataset: &str) -> Option<String> {
        let loaded: Vec<String> = self
            .manager
            .describe()
            .into_iter()
            .filter(|d| d.model_id.dataset() == dataset)
            .map(|d| d.model_id.version().to_owned())
            .collect();
        let cached = self.artifacts.versions(dataset).await;
        newest(loaded.iter().chain(&cached).map(String::as_str)).map(str::to_owned)
    }

    /// The model's files into the disk cache, without loading it.
    pub async fn pull(&self, id: &ModelId, source: Option<&str>) -> Result<CachedEntry, CoreError> {
        self.artifacts.pull(id, source, Arc::new(NoProgress)).await
    }

    /// The disk cache's entries, checked to `level`, and whether each is loaded.
    pub async fn cached(&self, level: VerifyLevel) -> Result<Vec<(CacheListing, bool)>, CoreError> {
        let listed = self.artifacts.list(level).await?;
        Ok(listed
            .into_iter()
            .map(|e| {
                let loaded = ModelId::parse(&e.model_id).is_ok_and(|id| self.manager.contains(&id));
                (e, loaded)
            })
            .collect())
    }

    /// Unloads the model and deletes its files: `(unloaded, deleted from disk)`.
    pub async fn delete(&self, id: &ModelId) -> Result<(bool, bool), CoreError> {
        let unloaded = self.remove(id).await;
        let deleted = self.artifacts.remove(id).await?;
        Ok((unloaded, deleted))
    }

    /// Keeps the model from eviction until unpinned (see [`ModelManager::set_pinned`]).
    pub fn pin(&self, id: &ModelId, pinned: bool) {
        self.manager.set_pinned(id, pinned)
    }

    /// The models each source that can list them holds, by source, in `MODEL_SOURCES` order.
    pub async fn listed_by_sources(&self) -> Vec<(&'static str, Result<Vec<ModelId>, CoreError>)> {
        self.artifacts.listed_by_sources().await
    }

    /// The names in `MODEL_SOURCES`, in order.
    pub fn source_names(&self) -> Vec<&'static str> {
        self.artifacts.source_names()
    }
}

/// The capability `get` finds on `model`, when the model's task is the one asked for; else the
/// request's 400, naming what the model is.
fn capability<'m, C: ?Sized>(
    model: &'m dyn Model,
    asked: Asked,
    get: impl FnOnce(&'m dyn Model) -> Option<&'m C>,
) -> Result<&'m C, CoreError> {
    let description = model.description();
    let task_fits = asked.task.is_none_or(|task| task == description.task);
    let found = if task_fits { get(model) } else { None };
    found.ok_or_else(|| CoreError::TaskMismatch {
        model_id: description.model_id.to_string(),
        actual: match description.task {
            Task::Tensor => "tensor (a plain ONNX model: use /v2/models/{name}/versions/{version}/infer)".into(),
            Task::Embedding => format!("{} (embedding)", description.architecture),
            task => task.to_string(),
        },
        requested: asked.label.into(),
    })
}

/// Numeric versions compare as numbers, others as text.
pub(crate) fn newest<'a>(versions: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    versions.max_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    })
}

#[cfg(test)]
mod tests {
    use super::newest;

    #[test]
    fn the_newest_version_is_the_highest_number() {
        assert_eq!(newest(["2", "10", "9"].into_iter()), Some("10"));
        assert_eq!(newest(["a", "b"].into_iter()), Some("b"));
        assert_eq!(newest(std::iter::empty()), None);
    }
}
