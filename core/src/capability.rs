//! What a model can do, one trait per capability. A model names the ones it has
//! ([`crate::Model::detector`] and its siblings); the service asks for the one a request needs, so
//! no model receives a request it cannot serve and no caller matches on answers it cannot get.

use async_trait::async_trait;

use crate::{
    ClassificationOutput, ClassificationParams, CoreError, DetectOptions, DetectionOutput, ImageRequest, OcrOutput,
    Task, Tensor,
};

/// Boxes, and with them masks (instance segmentation) or keypoints (keypoint detection): the
/// model's [`Task`] says which.
#[async_trait]
pub trait Detect: Send + Sync {
    async fn detect(&self, request: ImageRequest<DetectOptions>) -> Result<DetectionOutput, CoreError>;
}

#[async_trait]
pub trait Classify: Send + Sync {
    async fn classify(&self, request: ImageRequest<ClassificationParams>) -> Result<ClassificationOutput, CoreError>;
}

/// Lines of text with where they stand.
#[async_trait]
pub trait ReadText: Send + Sync {
    async fn read_text(&self, request: ImageRequest) -> Result<OcrOutput, CoreError>;
}

/// A vector for an image: the model's own output, pooled as the model defines, not normalised.
#[async_trait]
pub trait EmbedImage: Send + Sync {
    async fn embed_image(&self, request: ImageRequest) -> Result<Vec<f32>, CoreError>;
}

/// Vectors for texts, in their order: the model's own outputs, not normalised. Refuses a text its
/// tokenizer cannot take whole where the model's reference refuses it (CLIP's 77 tokens).
#[async_trait]
pub trait EmbedText: Send + Sync {
    async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, CoreError>;
}

/// Tensors straight into the model's session (the Open Inference Protocol): no pre- or
/// post-processing, but the model's queue, instances and batches.
#[async_trait]
pub trait RunTensors: Send + Sync {
    /// Inputs in any order: they are checked against the model's signature.
    async fn run_tensors(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, CoreError>;
}

/// What a request asks for: the label metrics and logs give it, and the task a model must have
/// to serve it (`None`: any model with the capability).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub label: &'static str,
    pub task: Option<Task>,
}

impl Asked {
    /// An image request for `task`.
    pub fn task(task: Task) -> Asked {
        Asked { label: task.as_str(), task: Some(task) }
    }

    /// Tensors, of any model that takes them.
    pub const TENSORS: Asked = Asked { label: "tensor", task: None };

    /// Image embeddings (an embedding model with an image tower).
    pub const EMBED_IMAGE: Asked = Asked { label: "embed-image", task: Some(Task::Embedding) };

    /// Text embeddings (an embedding model with a text tower).
    pub const EMBED_TEXT: Asked = Asked { label: "embed-text", task: Some(Task::Embedding) };
}
