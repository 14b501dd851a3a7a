//! Embedding models: vectors for images and texts, as the model's reference pipeline makes them.
//!
//! Three folder layouts are served, recognised by their files:
//! - Roboflow's CLIP (`visual.onnx`, `textual.onnx`): OpenAI CLIP's image transform and
//!   `clip.tokenize`, the raw projections out;
//! - a Hugging Face image model laid out as fastembed reads it (`model.onnx`,
//!   `preprocessor_config.json`): the transforms the config names, the first output flattened;
//! - a Hugging Face text model (`model.onnx`, `tokenizer.json` and its configs): the tokenizer set
//!   up as fastembed sets it up, the first output as pooled vectors.
//!
//! Vectors leave here as the model gives them; normalising is the caller's choice (Roboflow's
//! routes answer them raw, the general routes normalised).

pub mod clip_text;
pub mod image_prep;
pub mod model;
pub mod text_prep;

use std::path::Path;

pub use model::EmbeddingModel;

pub const CLIP_VISUAL_FILE: &str = "visual.onnx";
pub const CLIP_TEXT_FILE: &str = "textual.onnx";
pub const HF_MODEL_FILE: &str = "model.onnx";
pub const PREPROCESSOR_CONFIG_FILE: &str = "preprocessor_config.json";

/// Which embedding layout a model folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    RoboflowClip,
    HfImage,
    HfText,
}

impl Layout {
    /// The layout of `dir`, if it holds an embedding model.
    pub fn of(dir: &Path) -> Option<Layout> {
        let has = |name: &str| dir.join(name).is_file();
        if has(CLIP_VISUAL_FILE) && has(CLIP_TEXT_FILE) {
            Some(Layout::RoboflowClip)
        } else if has(HF_MODEL_FILE) && has(PREPROCESSOR_CONFIG_FILE) {
            Some(Layout::HfImage)
        } else if has(HF_MODEL_FILE) && has(text_prep::TOKENIZER_FILE) {
            Some(Layout::HfText)
        } else {
            None
        }
    }
}
