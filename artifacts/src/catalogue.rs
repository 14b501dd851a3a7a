//! The embedding models Sightline knows by name: fastembed's image models and its CLIP text model,
//! as fastembed's `list_supported_models()` describes them, with where the `hf` source finds each
//! and whether Sightline serves it. A catalogue name is also a model id (`Qdrant/resnet50-onnx`);
//! a name that is not a valid id (a dot in `v1.5`) has an id of its own.

use serde::Serialize;

/// What a catalogue model embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Image,
    Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogueEntry {
    /// fastembed's name.
    pub model: &'static str,
    /// The id Sightline loads it under (the name, where the name is a valid id).
    pub model_id: &'static str,
    pub modality: Modality,
    pub dim: usize,
    pub size_in_gb: f64,
    pub license: &'static str,
    pub description: &'static str,
    /// The Hugging Face repository and the ONNX file in it (placed at the top of the cache entry).
    pub repository: &'static str,
    pub model_file: &'static str,
    /// Whether Sightline runs its preprocessing and pooling as fastembed does; `note` says why not.
    pub served: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

macro_rules! entry {
    ($model:expr, $id:expr, $modality:ident, $dim:expr, $size:expr, $license:expr, $repo:expr, $file:expr, $desc:expr, $note:expr) => {
        CatalogueEntry {
            model: $model,
            model_id: $id,
            modality: Modality::$modality,
            dim: $dim,
            size_in_gb: $size,
            license: $license,
            description: $desc,
            repository: $repo,
            model_file: $file,
            served: Option::<&str>::is_none(&$note),
            note: $note,
        }
    };
}

const JINA: Option<&str> = Some("JinaCLIPImageProcessor (pad to square) is not implemented yet");
const TOKEN_OUTPUT: Option<&str> = Some("its output is not pooled the way Sightline pools image outputs yet");

/// fastembed 0.9's image models and its CLIP text model.
pub fn catalogue() -> Vec<CatalogueEntry> {
    vec![
        entry!(
            "Qdrant/clip-ViT-B-32-vision",
            "Qdrant/clip-ViT-B-32-vision",
            Image,
            512,
            0.34,
            "mit",
            "Qdrant/clip-ViT-B-32-vision",
            "model.onnx",
            "Image embeddings, Multimodal (text&image), 2021 year",
            None
        ),
        entry!(
            "Qdrant/resnet50-onnx",
            "Qdrant/resnet50-onnx",
            Image,
            2048,
            0.1,
            "apache-2.0",
            "Qdrant/resnet50-onnx",
            "model.onnx",
            "Image embeddings, Unimodal (image), 2016 year",
            None
        ),
        entry!(
            "Qdrant/Unicom-ViT-B-16",
            "Qdrant/Unicom-ViT-B-16",
            Image,
            768,
            0.82,
            "mit",
            "Qdrant/Unicom-ViT-B-16",
            "model.onnx",
            "Image embeddings (more detailed than Unicom-ViT-B-32), Multimodal (text&image), 2023 year",
            None
        ),
        entry!(
            "Qdrant/Unicom-ViT-B-32",
            "Qdrant/Unicom-ViT-B-32",
            Image,
            512,
            0.48,
            "mit",
            "Qdrant/Unicom-ViT-B-32",
            "model.onnx",
            "Image embeddings, Multimodal (text&image), 2023 year",
            None
        ),
        entry!(
            "jinaai/jina-clip-v1",
            "jinaai/jina-clip-v1",
            Image,
            768,
            0.34,
            "apache-2.0",
            "jinaai/jina-clip-v1",
            "onnx/vision_model.onnx",
            "Image embeddings, Multimodal (text&image), 2024 year",
            JINA
        ),
        entry!(
            "nomic-ai/nomic-embed-vision-v1.5",
            "nomic-ai/nomic-embed-vision-v1_5",
            Image,
            768,
            0.37,
            "apache-2.0",
            "nomic-ai/nomic-embed-vision-v1.5",
            "onnx/model.onnx",
            "Image embeddings, Multimodal (text&image), 2024 year",
            TOKEN_OUTPUT
        ),
        entry!(
            "nomic-ai/nomic-embed-vision-v1.5-Q",
            "nomic-ai/nomic-embed-vision-v1_5-Q",
            Image,
            768,
            0.1,
            "apache-2.0",
            "nomic-ai/nomic-embed-vision-v1.5",
            "onnx/model_quantized.onnx",
            "Image embeddings, Multimodal (text&image), 2024 year",
            TOKEN_OUTPUT
        ),
        entry!(
            "google/siglip2-base-patch16-224",
            "google/siglip2-base-patch16-224",
            Image,
            768,
            0.37,
            "apache-2.0",
            "onnx-community/siglip2-base-patch16-224-ONNX",
            "onnx/vision_model.onnx",
            "Image embeddings, Multimodal (text&image), 2025 year",
            TOKEN_OUTPUT
        ),
        entry!(
            "Qdrant/clip-ViT-B-32-text",
            "Qdrant/clip-ViT-B-32-text",
            Text,
            512,
            0.25,
            "mit",
            "Qdrant/clip-ViT-B-32-text",
            "model.onnx",
            "Text embeddings, Multimodal (text&image), English, 77 input tokens truncation, Prefixes for \
             queries/documents: not necessary, 2021 year",
            None
        ),
    ]
}

/// The entry whose name or id is `name`.
pub fn find(name: &str) -> Option<CatalogueEntry> {
    catalogue().into_iter().find(|e| e.model == name || e.model_id == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_valid_and_names_resolve_to_their_entry() {
        for entry in catalogue() {
            assert!(sightline_core::ModelId::parse(entry.model_id).is_ok(), "{}", entry.model_id);
            assert_eq!(find(entry.model).map(|e| e.model_id), Some(entry.model_id));
        }
        assert_eq!(find("nomic-ai/nomic-embed-vision-v1.5").unwrap().model_id, "nomic-ai/nomic-embed-vision-v1_5");
        assert!(find("shapes/1").is_none());
    }
}
