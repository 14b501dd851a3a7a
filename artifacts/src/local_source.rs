//! `MODEL_DIR`: model folders on a local or mounted file system, copied into the cache like any
//! other source so that every load reads verified files.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;

use crate::entry_writer::EntryWriter;
use crate::files::is_valid_file_name;
use crate::source::ArtifactSource;
use sightline_core::{CoreError, ModelId};

pub struct LocalSource {
    root: PathBuf,
}

impl LocalSource {
    pub fn new(root: PathBuf) -> Self {
        LocalSource { root }
    }

    /// The folder's regular files with names a model may use, sorted.
    fn files(&self, dir: &std::path::Path) -> Result<Vec<(String, PathBuf)>, CoreError> {
        let unreadable =
            |e: std::io::Error| CoreError::SourceUnavailable(format!("cannot list {}: {e}", dir.display()));
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_valid_file_name(&name) && entry.path().is_file() {
                files.push((name, entry.path()));
            }
        }
        files.sort();
        Ok(files)
    }
}

#[async_trait]
impl ArtifactSource for LocalSource {
    fn name(&self) -> &'static str {
        "local"
    }

    fn origin(&self, id: &ModelId) -> String {
        self.root.join(id.relative_path()).display().to_string()
    }

    fn fingerprint(&self, id: &ModelId) -> Option<String> {
        use sha2::{Digest, Sha256};
        let dir = self.root.join(id.relative_path());
        let files = self.files(&dir).ok()?;
        let mut hasher = Sha256::new();
        for (name, path) in files {
            let meta = std::fs::metadata(&path).ok()?;
            let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
            hasher.update(format!("{name}\0{}\0{modified}\n", meta.len()));
        }
        Some(crate::files::hex(&hasher.finalize()))
    }

    /// The `dataset/version` folders under the root that hold at least one file a model may use.
    async fn list_models(&self) -> Option<Result<Vec<ModelId>, CoreError>> {
        let root = self.root.clone();
        let listed = tokio::task::spawn_blocking(move || list_folders(&root))
            .await
            .map_err(|e| CoreError::Internal(format!("listing MODEL_DIR: {e}")));
        Some(listed.and_then(|l| l))
    }

    async fn fetch(&self, id: &ModelId, writer: &mut EntryWriter) -> Result<(), CoreError> {
        // `ModelId` admits only `[A-Za-z0-9_-]` segments, so this path stays inside the root.
        let dir = self.root.join(id.relative_path());
        let files = if dir.is_dir() { self.files(&dir)? } else { Vec::new() };
        if files.is_empty() {
            return Err(CoreError::ModelNotFound(format!("{id}: no model folder at {}", dir.display())));
        }
        for (name, path) in files {
            let failed =
                |e: std::io::Error| CoreError::SourceUnavailable(format!("cannot read {}: {e}", path.display()));
            let mut file = tokio::fs::File::open(&path).await.map_err(failed)?;
            let len = file.metadata().await.map_err(failed)?.len();
            let mut part = writer.create(&name, Some(len)).await?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).await.map_err(failed)?;
                if n == 0 {
                    break;
                }
                part.write(&buf[..n]).await?;
            }
            writer.commit(part).await?;
        }
        Ok(())
    }
}

/// `dataset/version` folders under `root` with a model file in them, sorted; a root that does not
/// exist holds none.
fn list_folders(root: &std::path::Path) -> Result<Vec<ModelId>, CoreError> {
    let unreadable = |e: std::io::Error| CoreError::SourceUnavailable(format!("cannot list MODEL_DIR: {e}"));
    let Ok(datasets) = std::fs::read_dir(root) else { return Ok(Vec::new()) };
    let mut ids = Vec::new();
    for dataset in datasets {
        let dataset = dataset.map_err(unreadable)?;
        let Ok(versions) = std::fs::read_dir(dataset.path()) else { continue };
        for version in versions.flatten() {
            let raw = format!("{}/{}", dataset.file_name().to_string_lossy(), version.file_name().to_string_lossy());
            let Ok(id) = ModelId::parse(&raw) else { continue };
            let has_file = std::fs::read_dir(version.path()).is_ok_and(|files| {
                files.flatten().any(|f| is_valid_file_name(&f.file_name().to_string_lossy()) && f.path().is_file())
            });
            if has_file {
                ids.push(id);
            }
            if ids.len() >= crate::source::MAX_LISTED_MODELS {
                ids.sort();
                return Ok(ids);
            }
        }
    }
    ids.sort();
    Ok(ids)
}
