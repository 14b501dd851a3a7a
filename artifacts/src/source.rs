//! Where model files come from. A source writes a model's files into the cache through an
//! [`EntryWriter`]; it never touches the cache directory itself.

use async_trait::async_trait;

use crate::entry_writer::EntryWriter;
use sightline_core::{CoreError, ModelId};

/// Errors follow one convention so that the cache can act on them: `ModelNotFound` = try the next
/// source; `SourceUnavailable`/`SourceTimeout` = transient, retried with backoff; anything else is
/// permanent and reported at once.
#[async_trait]
pub trait ArtifactSource: Send + Sync {
    /// The name used in `MODEL_SOURCES`, the pull API and manifests.
    fn name(&self) -> &'static str;
    /// Where `id` is looked for, without credentials: recorded in the manifest and logged.
    fn origin(&self, id: &ModelId) -> String;
    async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError>;
    /// A cheap summary of the model's current state at the source, for sources that can tell
    /// without downloading (a folder: names, sizes, modification times). A cached copy whose
    /// recorded fingerprint differs is fetched again, so edits to `MODEL_DIR` take effect.
    fn fingerprint(&self, _id: &ModelId) -> Option<String> {
        None
    }

    /// Every model the source holds, for sources that can list them (a folder, a bucket), at most
    /// [`MAX_LISTED_MODELS`]; `None` for sources that can only be asked for one id (an API, a hub).
    async fn list_models(&self) -> Option<Result<Vec<ModelId>, CoreError>> {
        None
    }
}

/// The most models one source lists: a repository index is an answer, not a bucket dump.
pub const MAX_LISTED_MODELS: usize = 10_000;
