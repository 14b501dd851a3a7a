//! Sightline artifacts: a model's files, from where they live to a verified folder on disk.
//!
//! Model artifacts: sources (local folder, S3, model API) feeding a verified, file-locked disk cache.

pub mod api_source;
pub mod archive;
pub mod cache;
pub mod catalogue;
pub mod entry_lock;
pub mod entry_writer;
pub mod files;
pub mod hf_source;
pub mod local_source;
pub mod manifest;
pub mod metrics;
mod remote;
pub mod retry;
pub mod s3_source;
pub mod source;
pub mod url_source;

use std::path::PathBuf;
use std::sync::Arc;

pub use api_source::{ApiSettings, ApiSource};
pub use cache::{ArtifactCache, CacheListing, CacheOptions, CachedEntry};
pub use entry_writer::{EntryWriter, NoProgress, Progress};
pub use hf_source::{HfSettings, HfSource};
pub use local_source::LocalSource;
pub use manifest::{Manifest, VerifyLevel};
pub use metrics::ArtifactMetrics;
pub use retry::RetryPolicy;
pub use s3_source::{S3Settings, S3Source};
pub use source::ArtifactSource;
pub use url_source::{UrlSettings, UrlSource};

use sightline_core::CoreError;

/// Everything the sources need, from the server's configuration.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// Source names in the order they are tried (`MODEL_SOURCES`).
    pub order: Vec<String>,
    pub model_dir: PathBuf,
    /// `None` when `S3_BUCKET` is unset.
    pub s3: Option<S3Settings>,
    pub api: ApiSettings,
    pub hf: HfSettings,
    pub url: UrlSettings,
}

/// Builds the sources in `order`; an unknown name, a repeated one, or `s3` without a bucket is a
/// configuration error reported at start-up rather than on the first request.
pub async fn build_sources(settings: &SourceSettings) -> Result<Vec<Arc<dyn ArtifactSource>>, CoreError> {
    let mut sources: Vec<Arc<dyn ArtifactSource>> = Vec::new();
    for name in &settings.order {
        if sources.iter().any(|s| s.name() == name.as_str()) {
            return Err(CoreError::InvalidParameter(format!("MODEL_SOURCES names {name:?} twice")));
        }
        let source: Arc<dyn ArtifactSource> = match name.as_str() {
            "local" => Arc::new(LocalSource::new(settings.model_dir.clone())),
            "s3" => {
                let s3 = settings.s3.as_ref().ok_or_else(|| {
                    CoreError::InvalidParameter("MODEL_SOURCES includes s3 but S3_BUCKET is not set".into())
                })?;
                Arc::new(S3Source::new(s3).await)
            }
            "api" => Arc::new(ApiSource::new(&settings.api)?),
            "hf" => Arc::new(HfSource::new(&settings.hf)?),
            "url" => Arc::new(UrlSource::new(&settings.url)?),
            other => {
                return Err(CoreError::InvalidParameter(format!(
                    "unknown model source {other:?} in MODEL_SOURCES (known: local, s3, api, hf, url)"
                )))
            }
        };
        sources.push(source);
    }
    if sources.is_empty() {
        return Err(CoreError::InvalidParameter("MODEL_SOURCES names no source".into()));
    }
    Ok(sources)
}
