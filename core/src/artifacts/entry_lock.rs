//! The per-model lock that lets one process fill a cache entry while other processes (and other
//! threads) wait for it. An `flock` on a hidden file beside the entry: the kernel releases it when
//! the holder exits or crashes, so a dead downloader never wedges the cache.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fs4::fs_std::FileExt;

use crate::{CoreError, ModelId};

/// Held while the entry is checked, filled or removed; dropping it unlocks.
pub struct EntryLock {
    _file: File,
}

impl EntryLock {
    /// Waits as long as another holder works: a download takes as long as it takes, and the
    /// holder's death releases the lock, so there is no timeout to tune.
    pub async fn acquire(root: &Path, id: &ModelId) -> Result<EntryLock, CoreError> {
        let dataset_dir = root.join(id.dataset());
        // Versions cannot start with '.', so this name never collides with an entry.
        let path = dataset_dir.join(format!(".{}.lock", id.version()));
        let task = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            std::fs::create_dir_all(&dataset_dir)?;
            let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
            FileExt::lock_exclusive(&file)?;
            Ok(file)
        });
        let file = task
            .await
            .map_err(|e| CoreError::Internal(format!("lock task failed: {e}")))?
            .map_err(|e| CoreError::Cache(format!("cannot lock the cache entry of {id}: {e}")))?;
        Ok(EntryLock { _file: file })
    }
}
