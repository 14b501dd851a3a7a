//! What every part of the cache does with a file: the names an entry may hold, atomic writes,
//! and the hex digests the manifest records. Its own module so that the entry writer and the
//! manifest both take it without importing each other.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub const MANIFEST_FILE: &str = "manifest.json";

/// Names a source may give a file: one path segment, no hidden files (temporaries and lock files
/// are hidden), and not the manifest.
pub fn is_valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name != MANIFEST_FILE
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) fn temp_name(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(".{name}.{}-{}.part", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Makes a completed rename durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` through a fsynced temporary file and a rename.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(temp_name(name));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Lower-case hex, as sha256sum prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = std::env::temp_dir().join(format!("sightline-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_atomically(&dir, "manifest.json", b"one").unwrap();
        write_atomically(&dir, "manifest.json", b"two").unwrap();
        assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["manifest.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
