//! The embedding models Sightline knows by name: fastembed's image models and its CLIP text model,
//! as fastembed's `list_supported_models()` describes them, with where the `hf` source finds each
//! and whether Sightline serves it, and the custom models registered at run time (fastembed's
//! `add_custom_model`, `POST /embed/models`, `EMBEDDING_MODELS_FILE`), which may also come from an
//! archive URL (the `url` source). A catalogue name is also a model id (`Qdrant/resnet50-onnx`);
//! a name that is not a valid id (a dot in `v1.5`) has an id of its own, the dots made `_`.
//!
//! Like fastembed's, the catalogue is one per process: every source and route sees the same.

use std::sync::RwLock;

use serde::Serialize;
use serde_json::Value;

/// What a catalogue model embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Image,
    Text,
}

/// How a model's token-level output becomes one vector per input (fastembed's `PoolingType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The output is one vector per input already.
    Disabled,
    /// The mean over the attended tokens.
    Mean,
    /// The first token's vector.
    Cls,
}

/// A model published as a `.tar.gz` (fastembed's fallback to a bucket), and its sha256 when known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveRef {
    pub url: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogueEntry {
    /// fastembed's name.
    pub model: String,
    /// The id Sightline loads it under (the name, where the name is a valid id).
    pub model_id: String,
    pub modality: Modality,
    pub dim: usize,
    pub size_in_gb: f64,
    pub license: String,
    pub description: String,
    /// The Hugging Face repository (empty for an archive) and the ONNX file in it or in the
    /// archive (placed at the top of the cache entry as `model.onnx`).
    pub repository: String,
    pub model_file: String,
    pub archive: Option<ArchiveRef>,
    pub pooling: Pooling,
    /// The output that holds the embedding, where it is not the first (fastembed's
    /// `ONNX_OUTPUT_NAMES`: SigLIP's `pooler_output` rather than its `last_hidden_state`).
    pub output: Option<String>,
    /// Whether Sightline runs its preprocessing and pooling as fastembed does; `note` says why not.
    pub served: bool,
    pub note: Option<String>,
    /// Registered at run time rather than built in.
    pub custom: bool,
}

macro_rules! entry {
    ($model:expr, $id:expr, $modality:ident, $dim:expr, $size:expr, $license:expr, $repo:expr, $file:expr, $desc:expr, $note:expr) => {
        CatalogueEntry {
            model: $model.into(),
            model_id: $id.into(),
            modality: Modality::$modality,
            dim: $dim,
            size_in_gb: $size,
            license: $license.into(),
            description: $desc.into(),
            repository: $repo.into(),
            model_file: $file.into(),
            archive: None,
            pooling: Pooling::Disabled,
            output: None,
            served: Option::<&str>::is_none(&$note),
            note: $note.map(str::to_owned),
            custom: false,
        }
    };
}

/// The models registered at run time.
static CUSTOM: RwLock<Vec<CatalogueEntry>> = RwLock::new(Vec::new());

/// The built-in models and the custom ones.
pub fn catalogue() -> Vec<CatalogueEntry> {
    let mut all = built_in().to_vec();
    all.extend(CUSTOM.read().unwrap_or_else(|p| p.into_inner()).iter().cloned());
    all
}

/// fastembed 0.9's image models and its CLIP text model, built once.
fn built_in() -> &'static [CatalogueEntry] {
    static BUILT_IN: std::sync::OnceLock<Vec<CatalogueEntry>> = std::sync::OnceLock::new();
    BUILT_IN.get_or_init(built_in_entries)
}

fn built_in_entries() -> Vec<CatalogueEntry> {
    let mut entries = vec![
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
            None
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
            None
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
            None
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
            None
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
    ];
    for entry in &mut entries {
        match entry.model.as_str() {
            // fastembed's NormalizedEmbedding: the first token of `last_hidden_state`.
            "nomic-ai/nomic-embed-vision-v1.5" | "nomic-ai/nomic-embed-vision-v1.5-Q" => entry.pooling = Pooling::Cls,
            // fastembed's SiglipOnnxImageEmbedding.
            "google/siglip2-base-patch16-224" => entry.output = Some("pooler_output".into()),
            _ => {}
        }
    }
    entries
}

/// The entry whose name or id is `name`.
pub fn find(name: &str) -> Option<CatalogueEntry> {
    let named = |e: &&CatalogueEntry| e.model == name || e.model_id == name;
    if let Some(entry) = built_in().iter().find(named) {
        return Some(entry.clone());
    }
    CUSTOM.read().unwrap_or_else(|p| p.into_inner()).iter().find(named).cloned()
}

/// A custom model from its description (fastembed's `add_custom_model` arguments, with `task`:
/// `image` or `text`); the error names the field that is wrong.
pub fn describe(description: &Value) -> Result<CatalogueEntry, String> {
    let object = description.as_object().ok_or("the description must be a JSON object")?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key}: must be a string")),
        }
    };
    let model = text("model")?.ok_or("model: required")?;
    if !is_model_name(&model) {
        return Err(format!("model: {model:?} is not owner/name ({NAME_RULE})"));
    }
    let model_id = model.replace('.', "_");
    let modality = match text("task")?.as_deref() {
        Some("image") => Modality::Image,
        Some("text") => Modality::Text,
        _ => return Err("task: must be \"image\" or \"text\"".into()),
    };
    // A whole number, also when written `64.0` (JSON Schema's `integer` admits it).
    let dim = object
        .get("dim")
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)))
        .filter(|&d| (1..=65_536).contains(&d))
        .ok_or("dim: must be a whole number from 1 to 65536")? as usize;
    let pooling = match text("pooling")?.map(|p| p.to_ascii_lowercase()).as_deref() {
        None | Some("disabled") => Pooling::Disabled,
        Some("mean") => Pooling::Mean,
        Some("cls") => Pooling::Cls,
        Some(other) => return Err(format!("pooling: {other:?} is not one of disabled, mean, cls")),
    };
    if object.get("normalization").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
        return Err("normalization: must be true or false".into());
    }
    let size_in_gb = match object.get("size_in_GB") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v.as_f64().filter(|s| *s >= 0.0).ok_or("size_in_GB: must be a number ≥ 0")?,
    };
    let sources = object.get("sources").and_then(Value::as_object).ok_or("sources: required, an object")?;
    let (repository, archive) = match (sources.get("hf"), sources.get("url")) {
        (Some(Value::String(repo)), None) => {
            if !is_model_name(repo) {
                return Err(format!("sources.hf: {repo:?} is not owner/name ({NAME_RULE})"));
            }
            (repo.clone(), None)
        }
        (None, Some(Value::String(url))) => {
            let parsed = url::Url::parse(url).map_err(|e| format!("sources.url: {e}"))?;
            if !matches!(parsed.scheme(), "https" | "http") || !(url.ends_with(".tar.gz") || url.ends_with(".tgz")) {
                return Err("sources.url: must be an https URL of a .tar.gz".into());
            }
            let sha256 = match sources.get("sha256") {
                None | Some(Value::Null) => None,
                Some(Value::String(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(h.to_ascii_lowercase())
                }
                Some(_) => return Err("sources.sha256: must be 64 hex digits".into()),
            };
            (String::new(), Some(ArchiveRef { url: url.clone(), sha256 }))
        }
        _ => return Err("sources: must have exactly one of hf (a repository) or url (an archive)".into()),
    };
    let model_file = text("model_file")?.unwrap_or_else(|| "model.onnx".into());
    if !model_file.split('/').all(is_path_segment) {
        return Err(format!("model_file: must be a relative path inside the repository or archive ({NAME_RULE})"));
    }
    Ok(CatalogueEntry {
        model,
        model_id,
        modality,
        dim,
        size_in_gb,
        license: text("license")?.unwrap_or_default(),
        description: text("description")?.unwrap_or_default(),
        repository,
        model_file,
        archive,
        pooling,
        output: None,
        served: true,
        note: None,
        custom: true,
    })
}

const NAME_RULE: &str = "letters, digits, '_', '-' and '.', each part starting with a letter, digit, '_' or '-'";

/// One part of a name or path: at most 96 characters, none of them a separator, and no leading
/// dot (so never `.` or `..`).
fn is_path_segment(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 96
        && !part.starts_with('.')
        && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `owner/name`, as Hugging Face repositories and fastembed's model names are written.
fn is_model_name(name: &str) -> bool {
    let mut parts = name.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if is_path_segment(a) && is_path_segment(b))
}

/// Adds a custom model; refused when its name or id is taken.
pub fn register(entry: CatalogueEntry) -> Result<(), String> {
    let mut custom = CUSTOM.write().unwrap_or_else(|p| p.into_inner());
    let taken = built_in().iter().chain(custom.iter()).any(|e| e.model_id == entry.model_id || e.model == entry.model);
    if taken {
        return Err(format!("model: {} is already in the catalogue", entry.model));
    }
    custom.push(entry);
    Ok(())
}

/// Registers every description in `path` (a JSON list, `EMBEDDING_MODELS_FILE`).
pub fn register_file(path: &std::path::Path) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let list: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    for (i, description) in list.iter().enumerate() {
        let entry = describe(description).map_err(|e| format!("{} [{i}]: {e}", path.display()))?;
        register(entry).map_err(|e| format!("{} [{i}]: {e}", path.display()))?;
    }
    Ok(list.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_is_valid_and_names_resolve_to_their_entry() {
        for entry in catalogue() {
            assert!(sightline_core::ModelId::parse(&entry.model_id).is_ok(), "{}", entry.model_id);
            assert_eq!(find(&entry.model).map(|e| e.model_id), Some(entry.model_id.clone()));
        }
        assert_eq!(find("nomic-ai/nomic-embed-vision-v1.5").unwrap().model_id, "nomic-ai/nomic-embed-vision-v1_5");
        assert!(find("shapes/1").is_none());
    }

    #[test]
    fn descriptions_are_checked_field_by_field() {
        let ok = serde_json::json!({"model": "acme/tiny-v1.0", "task": "image", "dim": 64,
            "sources": {"url": "https://example.com/m.tar.gz", "sha256": "ab".repeat(32)}, "license": "mit"});
        let entry = describe(&ok).unwrap();
        assert_eq!(entry.model_id, "acme/tiny-v1_0");
        assert_eq!(entry.archive.unwrap().sha256.unwrap(), "ab".repeat(32));
        for (field, value, says) in [
            ("model", serde_json::json!("../x"), "model:"),
            ("task", serde_json::json!("audio"), "task:"),
            ("dim", serde_json::json!(0), "dim:"),
            ("pooling", serde_json::json!("max"), "pooling:"),
            ("sources", serde_json::json!({"url": "ftp://x/m.tar.gz"}), "sources.url:"),
            ("sources", serde_json::json!({"hf": "a/b", "url": "https://x/m.tar.gz"}), "sources:"),
            ("model_file", serde_json::json!("../../etc/passwd"), "model_file:"),
        ] {
            let mut bad = ok.clone();
            bad[field] = value;
            let e = describe(&bad).unwrap_err();
            assert!(e.starts_with(says), "{field}: {e}");
        }
    }
}
