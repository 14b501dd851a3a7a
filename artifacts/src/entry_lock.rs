//! The per-model lock that lets one process fill a cache entry while other processes (and other
//! threads) wait for it. An `flock` on a hidden file beside the entry: the kernel releases it when
//! the holder exits or crashes, so a dead downloader never wedges the cache.
//!
//! Lock files of models that are not cached are deleted (so that requests for many unknown ids
//! leave nothing behind). That is safe because a holder deletes only while holding the lock, and
//! every acquirer checks, once it holds the lock, that the file it locked is still the one at the
//! path; if not, it starts again.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use sightline_core::{CoreError, ModelId};

/// Held while the entry is checked, filled or removed; dropping it unlocks.
pub struct EntryLock {
    file: File,
    path: PathBuf,
}

fn same_file(file: &File, path: &Path) -> std::io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The error of writing where nothing may be written: a read-only file system (EROFS), or a folder
/// this process has no write permission in.
fn read_only(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied)
}

fn lock_blocking(dataset_dir: &Path, path: &Path) -> std::io::Result<File> {
    loop {
        std::fs::create_dir_all(dataset_dir)?;
        let file = match OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path) {
            Ok(file) => file,
            // The dataset folder was removed between our create_dir_all and open: go again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        FileExt::lock_exclusive(&file)?;
        if same_file(&file, path)? {
            return Ok(file);
        }
    }
}

impl EntryLock {
    /// Waits as long as another holder works: a download takes as long as it takes, and the
    /// holder's death releases the lock, so there is no timeout to tune.
    pub async fn acquire(root: &Path, id: &ModelId) -> Result<EntryLock, CoreError> {
        match EntryLock::acquire_unless_read_only(root, id).await? {
            Ok(lock) => Ok(lock),
            Err(cause) => Err(CoreError::Cache(format!("cannot lock the cache entry of {id}: {cause}"))),
        }
    }

    /// As [`EntryLock::acquire`], or the cause when the cache cannot be written at all (a
    /// read-only file system or folder): its entries can still be read, without a lock, as nothing
    /// can change them from here.
    pub async fn acquire_unless_read_only(
        root: &Path,
        id: &ModelId,
    ) -> Result<Result<EntryLock, std::io::Error>, CoreError> {
        let dataset_dir = root.join(id.dataset());
        // Versions cannot start with '.', so this name never collides with an entry.
        let path = dataset_dir.join(format!(".{}.lock", id.version()));
        let task_path = path.clone();
        let locked = tokio::task::spawn_blocking(move || lock_blocking(&dataset_dir, &task_path))
            .await
            .map_err(|e| CoreError::Internal(format!("lock task failed: {e}")))?;
        match locked {
            Ok(file) => Ok(Ok(EntryLock { file, path })),
            Err(e) if read_only(&e) => Ok(Err(e)),
            Err(e) => Err(CoreError::Cache(format!("cannot lock the cache entry of {id}: {e}"))),
        }
    }

    /// Deletes the lock file (and the dataset folder if that leaves it empty), then unlocks. For
    /// entries that do not exist once we are done with them.
    pub fn release_and_delete(self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dataset_dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dataset_dir);
        }
        drop(self.file);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn holders_exclude_each_other_even_while_lock_files_are_deleted() {
        let root = std::env::temp_dir().join(format!("sightline-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let id = ModelId::parse("a/1").unwrap();
        let inside = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (root, id, inside) = (root.clone(), id.clone(), inside.clone());
                tokio::spawn(async move {
                    let lock = EntryLock::acquire(&root, &id).await.unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    if i % 2 == 0 {
                        lock.release_and_delete();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
