//! An embedding model: an image tower, a text tower, or both (CLIP), each its own session served
//! by its own instances, so images and texts batch with their kind across requests.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sightline_core::{
    CoreError, DataType, EmbedImage, EmbedText, ImageRequest, Model, ModelDescription, ModelId, RunTensors, Task,
    Tensor, TensorSignature,
};
use sightline_engine::{run_blocking, ModelSessions, Outputs};

use super::image_prep::ImagePrep;
use super::text_prep::TextPrep;
use super::{Layout, CLIP_TEXT_FILE, CLIP_VISUAL_FILE, HF_MODEL_FILE, PREPROCESSOR_CONFIG_FILE};
use crate::image::decode::{decode_image, DecodeLimits};
use crate::load_options::LoadOptions;
use crate::tasks::instances::Instances;
use crate::ModelError;
use sightline_artifacts::catalogue::{self, Pooling};

/// Texts one run of the text tower takes at most (fastembed's default `batch_size` is 256 for
/// text; smaller runs keep one long list from holding the tower).
const TEXT_RUN_LIMIT: usize = 32;

pub struct EmbeddingModel {
    description: ModelDescription,
    image: Option<ImageTower>,
    text: Option<TextTower>,
}

struct ImageTower {
    instances: Instances,
    output: ImageOutput,
    prep: Arc<ImagePrep>,
    decode_limits: DecodeLimits,
}

struct TextTower {
    instances: Instances,
    signature: TensorSignature,
    pooling: Pooling,
    prep: Arc<TextPrep>,
    batch_limit: usize,
}

impl EmbeddingModel {
    /// Blocking: builds the towers of `layout` in `dir`, each checked by a test inference.
    pub fn load(
        id: &ModelId,
        dir: &Path,
        layout: Layout,
        options: &LoadOptions,
        sessions: &mut ModelSessions<'_>,
    ) -> Result<Self, ModelError> {
        let name = id.to_string();
        let mut description = ModelDescription::unplaced(id.clone());
        description.task = Task::Embedding;
        let (image, text) = match layout {
            Layout::RoboflowClip => {
                let file = dir.join(CLIP_VISUAL_FILE);
                let (tower, size, batch) = ImageTower::load(&file, None, options, sessions, &name, &mut description)?;
                let text =
                    TextTower::load(&dir.join(CLIP_TEXT_FILE), true, options, sessions, &name, Pooling::Disabled)?;
                description.architecture = "clip".into();
                description.input_width = Some(size.0);
                description.input_height = Some(size.1);
                description.batch_size = batch;
                description.tensors = None;
                (Some(tower), Some(text))
            }
            Layout::HfImage => {
                let config = std::fs::read(dir.join(PREPROCESSOR_CONFIG_FILE))
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                    .and_then(|c| ImagePrep::from_preprocessor_config(&c))
                    .map_err(|reason| ModelError::BrokenModel { file: dir.join(PREPROCESSOR_CONFIG_FILE), reason })?;
                let file = dir.join(HF_MODEL_FILE);
                let (tower, size, batch) =
                    ImageTower::load(&file, Some(config), options, sessions, &name, &mut description)?;
                description.architecture = "image-embedding".into();
                description.input_width = Some(size.0);
                description.input_height = Some(size.1);
                description.batch_size = batch;
                (Some(tower), None)
            }
            Layout::HfText => {
                // A catalogue model's pooling (fastembed's `add_custom_model`); else the output is pooled.
                let pooling = catalogue::find(&name).map_or(Pooling::Disabled, |e| e.pooling);
                let text = TextTower::load(&dir.join(HF_MODEL_FILE), false, options, sessions, &name, pooling)?;
                description.architecture = "text-embedding".into();
                description.tensors = Some(text.signature.clone());
                (None, Some(text))
            }
        };
        Ok(EmbeddingModel { description, image, text })
    }
}

/// An image tower, its input `(width, height)` and its fixed batch size, if any.
type BuiltTower = (ImageTower, (u32, u32), Option<usize>);

impl ImageTower {
    /// The tower of `file`; `prep` from the model's config, or OpenAI CLIP's transform at the
    /// session's input size. Returns the input size and the fixed batch size, if any.
    fn load(
        file: &Path,
        prep: Option<ImagePrep>,
        options: &LoadOptions,
        sessions: &mut ModelSessions<'_>,
        name: &str,
        description: &mut ModelDescription,
    ) -> Result<BuiltTower, ModelError> {
        let fixed = sessions.fixed_size(file)?;
        let (width, height) = fixed.size;
        let broken = |reason: String| ModelError::BrokenModel { file: file.to_owned(), reason };
        let signature = fixed.session.signature().ok();
        let output = ImageOutput::of(name, signature.as_ref()).map_err(broken)?;
        output.vectors(&fixed.outputs, 1).map_err(|e| broken(e.to_string()))?;
        let prep = prep.unwrap_or_else(|| ImagePrep::openai_clip(height));
        // Any image size: what the preprocessing makes must be what the session takes.
        for (w, h) in [(640, 480), (37, 500)] {
            if prep.output_size(w, h) != (width, height) {
                return Err(broken(format!(
                    "the preprocessing makes {:?} inputs from a {w}x{h} image, the model takes {width}x{height}",
                    prep.output_size(w, h)
                )));
            }
        }
        description.tensors = signature;
        let batch = fixed.shape.batch_size();
        let instances = Instances::start(
            sessions,
            file,
            fixed.session,
            fixed.batch_limit,
            description.tensors.clone(),
            options,
            name,
        )?;
        Ok((
            ImageTower { instances, output, prep: Arc::new(prep), decode_limits: options.decode_limits },
            (width, height),
            batch,
        ))
    }
}

impl TextTower {
    /// The tower of `file`: CLIP's tokenizer for Roboflow's layout (`clip`), else the folder's own.
    fn load(
        file: &Path,
        clip: bool,
        options: &LoadOptions,
        sessions: &mut ModelSessions<'_>,
        name: &str,
        pooling: Pooling,
    ) -> Result<TextTower, ModelError> {
        let broken = |reason: String| ModelError::BrokenModel { file: file.to_owned(), reason };
        let dir = file.parent().unwrap_or(Path::new("."));
        // The tokenizer is built against each provider's session: its inputs decide its tensors.
        let (session, shape, prep) = sessions.checked(file, false, |session, _| {
            let signature = session.signature().map_err(|reason| broken_engine(file, reason))?;
            let built = text_prep(dir, clip, &signature).map_err(|reason| broken_engine(file, reason))?;
            let inputs =
                built.tensors(&["a photo".to_owned(), "".to_owned()]).map_err(|reason| broken_engine(file, reason))?;
            let outputs = session.run_tensors(&inputs)?;
            rows(&outputs, &inputs, 2, pooling).map_err(|e| broken_engine(file, e.to_string()))?;
            Ok(built)
        })?;
        let signature = session.signature().map_err(broken)?;
        let batch_limit = if shape.input_dims.first().is_some_and(|&d| d < 0) { TEXT_RUN_LIMIT } else { 1 };
        let instances = Instances::start(sessions, file, session, batch_limit, Some(signature.clone()), options, name)?;
        Ok(TextTower { instances, signature, pooling, prep: Arc::new(prep), batch_limit })
    }
}

fn broken_engine(file: &Path, reason: String) -> sightline_engine::EngineError {
    sightline_engine::EngineError::BrokenModel { file: file.to_owned(), reason }
}

/// The text preprocessing for a session with `signature`.
fn text_prep(dir: &Path, clip: bool, signature: &TensorSignature) -> Result<TextPrep, String> {
    let integer = |spec: &sightline_core::TensorSpec| matches!(spec.datatype, DataType::Int32 | DataType::Int64);
    if clip {
        let [input] = signature.inputs.as_slice() else {
            return Err(format!("expected one token input, found {}", signature.inputs.len()));
        };
        if !integer(input) {
            return Err(format!("the token input {:?} is {}, not an integer tensor", input.name, input.datatype));
        }
        return Ok(TextPrep::Clip { input: input.name.clone(), datatype: input.datatype });
    }
    let mut inputs = Vec::new();
    for spec in &signature.inputs {
        if !matches!(spec.name.as_str(), "input_ids" | "attention_mask" | "token_type_ids") || !integer(spec) {
            return Err(format!(
                "input {:?} ({}) is not one of the integer inputs input_ids, attention_mask, token_type_ids",
                spec.name, spec.datatype
            ));
        }
        inputs.push((spec.name.clone(), spec.datatype));
    }
    if !inputs.iter().any(|(n, _)| n == "input_ids") {
        return Err("the model has no input_ids input".into());
    }
    TextPrep::hugging_face(dir, inputs)
}

/// The output of an image tower that holds the embedding, and its pooling.
#[derive(Debug, Clone, Copy)]
struct ImageOutput {
    index: usize,
    pooling: Pooling,
}

impl ImageOutput {
    /// A catalogue model's output and pooling (fastembed's `ONNX_OUTPUT_NAMES` and
    /// `NormalizedEmbedding`), else the first output as it is.
    fn of(name: &str, signature: Option<&TensorSignature>) -> Result<ImageOutput, String> {
        let entry = catalogue::find(name);
        let pooling = entry.as_ref().map_or(Pooling::Disabled, |e| e.pooling);
        let Some(wanted) = entry.and_then(|e| e.output) else { return Ok(ImageOutput { index: 0, pooling }) };
        let index = signature
            .and_then(|s| s.outputs.iter().position(|o| o.name == wanted))
            .ok_or_else(|| format!("the model has no output {wanted:?}"))?;
        Ok(ImageOutput { index, pooling })
    }

    /// `count` embeddings from the tower's outputs.
    fn vectors(self, outputs: &Outputs, count: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let output = outputs
            .get(self.index)
            .ok_or_else(|| ModelError::Inference(format!("the model returned no output {}", self.index)))?;
        let values: Vec<f32> = output.iter().copied().collect();
        pool(&values, output.shape(), count, self.pooling, &vec![1.0; values.len()])
    }
}

/// The first output tensor as `count` vectors: `(count, dim)` as it is, or `(count, tokens, dim)`
/// pooled as fastembed pools it (the mean over the tokens `attention_mask` marks, or the first).
fn rows(outputs: &[Tensor], inputs: &[Tensor], count: usize, pooling: Pooling) -> Result<Vec<Vec<f32>>, ModelError> {
    let output = outputs.first().ok_or_else(|| ModelError::Inference("the model returned no output".into()))?;
    if output.datatype != DataType::Fp32 {
        return Err(ModelError::Inference(format!("the output is {}, not FP32", output.datatype)));
    }
    if output.shape.len() != 2 && pooling == Pooling::Disabled {
        return Err(ModelError::Inference(format!(
            "expected ({count}, dim) embeddings, got {:?}: a token-level output needs its pooling \
             (register the model with pooling mean or cls)",
            output.shape
        )));
    }
    let values: Vec<f32> = output.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let tokens = output.shape.get(1).copied().unwrap_or(1);
    pool(&values, &output.shape, count, pooling, &attention_mask(inputs, count * tokens))
}

/// `count` vectors from an output of `shape`: flattened per input (fastembed's
/// `reshape(len(inputs), -1)`), or, for a `(count, tokens, dim)` output, the first token's vector
/// or the mean over the tokens that `mask` (one weight per token) marks.
fn pool(
    values: &[f32],
    shape: &[usize],
    count: usize,
    pooling: Pooling,
    mask: &[f32],
) -> Result<Vec<Vec<f32>>, ModelError> {
    if shape.first() != Some(&count) || values.is_empty() || !values.len().is_multiple_of(count) {
        return Err(ModelError::Inference(format!("expected {count} embeddings, got an output of {shape:?}")));
    }
    let row = values.len() / count;
    match (pooling, shape) {
        // One vector per input already: nothing to pool.
        (Pooling::Disabled, _) | (_, [_, _]) => Ok(values.chunks_exact(row).map(<[f32]>::to_vec).collect()),
        (Pooling::Cls, [_, tokens, dim]) if *tokens > 0 && *dim > 0 => {
            Ok(values.chunks_exact(row).map(|input| input[..*dim].to_vec()).collect())
        }
        (Pooling::Mean, [_, tokens, dim]) if *tokens > 0 && *dim > 0 && mask.len() >= count * tokens => Ok(values
            .chunks_exact(row)
            .enumerate()
            .map(|(i, input)| {
                let weights = &mask[i * tokens..(i + 1) * tokens];
                let total = weights.iter().sum::<f32>().max(1e-9);
                (0..*dim).map(|d| (0..*tokens).map(|t| input[t * dim + d] * weights[t]).sum::<f32>() / total).collect()
            })
            .collect()),
        _ => Err(ModelError::Inference(format!(
            "{pooling:?} pooling needs a ({count}, tokens, dim) output, got {shape:?}"
        ))),
    }
}

/// The `attention_mask` input as weights (all ones where the model takes none).
fn attention_mask(inputs: &[Tensor], len: usize) -> Vec<f32> {
    let Some(mask) = inputs.iter().find(|t| t.name == "attention_mask") else { return vec![1.0; len] };
    let width = mask.datatype.size();
    mask.data
        .chunks_exact(width)
        .map(|b| if b.iter().any(|&x| x != 0) { 1.0 } else { 0.0 })
        .chain(std::iter::repeat(1.0))
        .take(len)
        .collect()
}

impl Model for EmbeddingModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn image_embedder(&self) -> Option<&dyn EmbedImage> {
        self.image.as_ref().map(|t| t as &dyn EmbedImage)
    }

    fn text_embedder(&self) -> Option<&dyn EmbedText> {
        self.text.as_ref().map(|t| t as &dyn EmbedText)
    }

    fn image_queue(&self) -> Option<std::sync::Arc<sightline_core::ModelQueue>> {
        self.image.as_ref().map(|t| t.instances.queue().clone())
    }

    /// The protocol drives a one-tower model's session; CLIP's two sessions have no one signature.
    fn tensor_runner(&self) -> Option<&dyn RunTensors> {
        match (&self.image, &self.text) {
            (Some(image), None) => image.instances.tensor_runner(),
            (None, Some(text)) => text.instances.tensor_runner(),
            _ => None,
        }
    }
}

#[async_trait]
impl EmbedImage for ImageTower {
    async fn embed_image(&self, request: ImageRequest) -> Result<Vec<f32>, CoreError> {
        let (prep, limits, auto_orient) = (self.prep.clone(), self.decode_limits, request.preprocessing.auto_orient);
        let bytes = request.image;
        let (outputs, _in_flight) = self
            .instances
            .run_prepared(request.ticket, move || {
                let image = decode_image(&bytes, auto_orient, limits)?;
                Ok(prep.tensor(&image))
            })
            .await?;
        let mut vectors = self.output.vectors(&outputs, 1)?;
        vectors.pop().ok_or_else(|| CoreError::Inference("no embedding".into()))
    }
}

#[async_trait]
impl EmbedText for TextTower {
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, CoreError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_limit.max(1)) {
            let (prep, chunk) = (self.prep.clone(), chunk.to_vec());
            let count = chunk.len();
            let inputs =
                run_blocking("tokenizing", move || prep.tensors(&chunk)).await?.map_err(ModelError::InvalidInput)?;
            let outputs = self.instances.run_tensors(inputs.clone()).await?;
            vectors.extend(rows(&outputs, &inputs, count, self.pooling)?);
        }
        Ok(vectors)
    }
}
