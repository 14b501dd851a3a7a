//! Writes a model's files into its cache entry so that no reader ever sees a partial file: each
//! file goes to a hidden temporary file in the same directory, is fsynced, and only then renamed
//! into place. A temporary file that is not committed (a failed or cancelled download) is deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::files::{hex, is_valid_file_name, sync_dir, temp_name};
use crate::manifest::FileRecord;
use sightline_core::CoreError;

/// Told about download progress; the CLI draws progress bars from it.
pub trait Progress: Send + Sync {
    fn file_started(&self, _name: &str, _total: Option<u64>) {}
    fn advanced(&self, _bytes: u64) {}
    fn file_finished(&self, _name: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

fn cache_error(what: &str, path: &Path, e: std::io::Error) -> CoreError {
    CoreError::Cache(format!("{what} {}: {e}", path.display()))
}

/// Collects one model's files into its entry directory; sources write through it.
pub struct EntryWriter {
    dir: PathBuf,
    /// The exact revision the files were taken at, where the source has revisions (a hub commit).
    revision: Option<String>,
    files: BTreeMap<String, FileRecord>,
    /// Bytes the whole model may still take (`MAX_MODEL_BYTES`): a runaway source cannot fill the disk.
    budget: u64,
    progress: Arc<dyn Progress>,
}

impl EntryWriter {
    pub fn new(dir: PathBuf, max_bytes: u64, progress: Arc<dyn Progress>) -> Self {
        EntryWriter { dir, revision: None, files: BTreeMap::new(), budget: max_bytes, progress }
    }

    /// Starts a file; `expected` is the length the source announced, checked at commit.
    pub async fn create(&mut self, name: &str, expected: Option<u64>) -> Result<PartFile, CoreError> {
        if !is_valid_file_name(name) {
            return Err(CoreError::SourceBadResponse(format!("refusing artifact file name {name:?}")));
        }
        if let Some(len) = expected.filter(|len| *len > self.budget) {
            return Err(too_large(name, len, self.budget));
        }
        let temp = self.dir.join(temp_name(name));
        let file = tokio::fs::File::create(&temp).await.map_err(|e| cache_error("cannot create", &temp, e))?;
        self.progress.file_started(name, expected);
        Ok(PartFile {
            file: Some(file),
            temp,
            name: name.to_owned(),
            hasher: Sha256::new(),
            size: 0,
            expected,
            budget: self.budget,
            progress: self.progress.clone(),
        })
    }

    /// A whole file at once (metadata the source generated).
    pub async fn write_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<(), CoreError> {
        let mut part = self.create(name, Some(bytes.len() as u64)).await?;
        part.write(bytes).await?;
        self.commit(part).await
    }

    /// Checks the length, fsyncs, and renames the file into place.
    pub async fn commit(&mut self, mut part: PartFile) -> Result<(), CoreError> {
        if let Some(expected) = part.expected.filter(|e| *e != part.size) {
            return Err(CoreError::SourceUnavailable(format!(
                "download of {} ended after {} of {expected} bytes",
                part.name, part.size
            )));
        }
        let Some(mut file) = part.file.take() else {
            return Err(CoreError::Internal(format!("{} committed twice", part.name)));
        };
        let final_path = self.dir.join(&part.name);
        file.flush().await.map_err(|e| cache_error("cannot write", &part.temp, e))?;
        file.sync_all().await.map_err(|e| cache_error("cannot sync", &part.temp, e))?;
        drop(file);
        tokio::fs::rename(&part.temp, &final_path).await.map_err(|e| cache_error("cannot rename", &final_path, e))?;
        let record = FileRecord { size: part.size, sha256: hex(&part.hasher.clone().finalize()) };
        self.budget -= part.size.min(self.budget);
        self.progress.file_finished(&part.name);
        self.files.insert(part.name.clone(), record);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records the revision every file was taken at, for the manifest.
    pub fn pin_revision(&mut self, revision: &str) {
        self.revision = Some(revision.to_owned());
    }

    pub fn revision(&self) -> Option<String> {
        self.revision.clone()
    }

    /// The committed files; fsyncs the directory so that their renames survive a crash.
    pub fn finish(self) -> Result<BTreeMap<String, FileRecord>, CoreError> {
        sync_dir(&self.dir).map_err(|e| cache_error("cannot sync", &self.dir, e))?;
        Ok(self.files)
    }
}

fn too_large(name: &str, size: u64, budget: u64) -> CoreError {
    CoreError::SourceBadResponse(format!(
        "{name} needs {size} bytes, more than the {budget} bytes left under MAX_MODEL_BYTES"
    ))
}

/// A file being downloaded; deleted on drop unless committed.
pub struct PartFile {
    file: Option<tokio::fs::File>,
    temp: PathBuf,
    name: String,
    hasher: Sha256,
    size: u64,
    expected: Option<u64>,
    budget: u64,
    progress: Arc<dyn Progress>,
}

impl PartFile {
    /// Bytes written so far (where a resumed download starts).
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The sha256 of the bytes written so far, lower-case hex.
    pub fn sha256(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), CoreError> {
        let size = self.size + chunk.len() as u64;
        if size > self.budget || self.expected.is_some_and(|e| size > e) {
            return Err(too_large(&self.name, size, self.expected.unwrap_or(self.budget).min(self.budget)));
        }
        let Some(file) = self.file.as_mut() else {
            return Err(CoreError::Internal(format!("{} written after commit", self.name)));
        };
        file.write_all(chunk).await.map_err(|e| cache_error("cannot write", &self.temp, e))?;
        self.hasher.update(chunk);
        self.size = size;
        self.progress.advanced(chunk.len() as u64);
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sightline-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn file_names() {
        for ok in ["weights.onnx", "class_names.txt", "keys-v4_1.txt"] {
            assert!(is_valid_file_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "manifest.json", "sp ace", "ü"] {
            assert!(!is_valid_file_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn committed_files_appear_and_abandoned_ones_leave_nothing() {
        let dir = dir("commit");
        let mut writer = EntryWriter::new(dir.clone(), 100, Arc::new(NoProgress));
        let mut part = writer.create("weights.onnx", Some(6)).await.unwrap();
        part.write(b"abc").await.unwrap();
        assert_eq!(listing(&dir).len(), 1, "only the hidden temporary exists");
        assert!(listing(&dir)[0].starts_with(".weights.onnx."));
        part.write(b"def").await.unwrap();
        writer.commit(part).await.unwrap();
        assert_eq!(listing(&dir), ["weights.onnx"]);

        let mut abandoned = writer.create("environment.json", None).await.unwrap();
        abandoned.write(b"{").await.unwrap();
        drop(abandoned);
        assert_eq!(listing(&dir), ["weights.onnx"]);

        let files = writer.finish().unwrap();
        assert_eq!(files["weights.onnx"].size, 6);
        assert_eq!(files["weights.onnx"].sha256, hex(&Sha256::digest(b"abcdef")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn short_downloads_and_oversized_files_are_refused() {
        let dir = dir("short");
        let mut writer = EntryWriter::new(dir.clone(), 10, Arc::new(NoProgress));
        let mut part = writer.create("weights.onnx", Some(8)).await.unwrap();
        part.write(b"abcd").await.unwrap();
        let err = writer.commit(part).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("4 of 8 bytes"), "{err}");
        assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

        assert!(writer.create("big.onnx", Some(11)).await.is_err());
        let mut part = writer.create("big.onnx", None).await.unwrap();
        part.write(b"0123456789").await.unwrap();
        assert!(part.write(b"x").await.is_err());
        drop(part);
        assert!(listing(&dir).is_empty());
        assert!(writer.create("../escape", None).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
