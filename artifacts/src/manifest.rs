//! The manifest: written last into a cache entry, it is what makes the entry loadable. It records
//! each file's size and sha256 and where the model came from, so every load can check the files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::files::{hex, write_atomically, MANIFEST_FILE};

const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub model_id: String,
    /// The source's name (`local`, `s3`, `api`).
    pub source: String,
    /// Where exactly, without credentials (`s3://bucket/prefix/d/v`, a folder, an API URL without its query).
    pub origin: String,
    /// Seconds since the Unix epoch.
    pub fetched_at: u64,
    pub files: BTreeMap<String, FileRecord>,
    /// The source's fingerprint when fetched (see `ArtifactSource::fingerprint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_fingerprint: Option<String>,
    /// The exact revision the files were taken at (a Hugging Face commit), where the source has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// How much of each file a load checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyLevel {
    /// Size only: for models too large to hash on every load.
    Size,
    /// Size and sha256.
    Sha256,
}

/// Why an entry cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// No manifest (never fetched, or a fetch that did not finish): fetch it.
    Incomplete,
    /// A file differs from its manifest record (or the manifest itself is unreadable).
    Corrupt { file: PathBuf, reason: String },
}

impl Manifest {
    pub fn new(model_id: String, source: String, origin: String, files: BTreeMap<String, FileRecord>) -> Self {
        let fetched_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Manifest {
            version: MANIFEST_VERSION,
            model_id,
            source,
            origin,
            fetched_at,
            files,
            source_fingerprint: None,
            revision: None,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// The entry's manifest, or why there is none that can be trusted.
    pub fn read(dir: &Path) -> Result<Manifest, EntryProblem> {
        let path = dir.join(MANIFEST_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(EntryProblem::Incomplete),
            Err(e) => return Err(EntryProblem::Corrupt { file: path, reason: format!("cannot read: {e}") }),
        };
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| EntryProblem::Corrupt { file: path.clone(), reason: format!("invalid manifest: {e}") })?;
        if manifest.version != MANIFEST_VERSION {
            return Err(EntryProblem::Corrupt {
                file: path,
                reason: format!("manifest version {} (expected {MANIFEST_VERSION})", manifest.version),
            });
        }
        // Only names the entry writer could have written: a tampered manifest must not make
        // `verify` read outside the entry.
        if let Some(bad) = manifest.files.keys().find(|name| !crate::files::is_valid_file_name(name)) {
            return Err(EntryProblem::Corrupt { file: path, reason: format!("file name {bad:?} in the manifest") });
        }
        Ok(manifest)
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomically(dir, MANIFEST_FILE, &json)
    }

    /// Checks every recorded file; the first difference found is the answer.
    pub fn verify(&self, dir: &Path, level: VerifyLevel) -> Result<(), EntryProblem> {
        for (name, record) in &self.files {
            let path = dir.join(name);
            let corrupt = |reason: String| EntryProblem::Corrupt { file: path.clone(), reason };
            let size = std::fs::metadata(&path).map_err(|e| corrupt(format!("cannot stat: {e}")))?.len();
            if size != record.size {
                return Err(corrupt(format!("size {size} bytes, manifest says {}", record.size)));
            }
            if level == VerifyLevel::Sha256 {
                let digest = sha256_file(&path).map_err(|e| corrupt(format!("cannot read: {e}")))?;
                if digest != record.sha256 {
                    return Err(corrupt(format!("sha256 {digest}, manifest says {}", record.sha256)));
                }
            }
        }
        Ok(())
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sightline-manifest-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn manifest_for(dir: &Path, files: &[(&str, &[u8])]) -> Manifest {
        let mut records = BTreeMap::new();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
            records
                .insert(name.to_string(), FileRecord { size: bytes.len() as u64, sha256: hex(&Sha256::digest(bytes)) });
        }
        Manifest::new("a/1".into(), "local".into(), "/models/a/1".into(), records)
    }

    #[test]
    fn sha256_of_a_known_string() {
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn round_trips_and_verifies() {
        let dir = entry("ok");
        let m = manifest_for(&dir, &[("weights.onnx", b"0123456789"), ("environment.json", b"{}")]);
        assert_eq!(Manifest::read(&dir), Err(EntryProblem::Incomplete));
        m.write(&dir).unwrap();
        let back = Manifest::read(&dir).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.total_bytes(), 12);
        back.verify(&dir, VerifyLevel::Sha256).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_a_flipped_byte_only_when_hashing_and_a_truncation_always() {
        let dir = entry("bad");
        let m = manifest_for(&dir, &[("weights.onnx", b"0123456789")]);
        std::fs::write(dir.join("weights.onnx"), b"0123456780").unwrap();
        m.verify(&dir, VerifyLevel::Size).unwrap();
        let Err(EntryProblem::Corrupt { file, reason }) = m.verify(&dir, VerifyLevel::Sha256) else { panic!() };
        assert_eq!(file, dir.join("weights.onnx"));
        assert!(reason.contains("sha256"), "{reason}");
        std::fs::write(dir.join("weights.onnx"), b"01234").unwrap();
        let Err(EntryProblem::Corrupt { reason, .. }) = m.verify(&dir, VerifyLevel::Size) else { panic!() };
        assert!(reason.contains("size 5 bytes"), "{reason}");
        std::fs::remove_file(dir.join("weights.onnx")).unwrap();
        assert!(matches!(m.verify(&dir, VerifyLevel::Size), Err(EntryProblem::Corrupt { .. })));
        std::fs::write(dir.join(MANIFEST_FILE), b"{not json").unwrap();
        assert!(matches!(Manifest::read(&dir), Err(EntryProblem::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_manifest_naming_files_outside_its_entry_is_corrupt() {
        let dir = entry("names");
        let record = FileRecord { size: 1, sha256: String::new() };
        for bad in ["../../etc/passwd", "/etc/passwd", "sub/weights.onnx", ".hidden", "manifest.json"] {
            let m = Manifest::new(
                "a/1".into(),
                "local".into(),
                "o".into(),
                BTreeMap::from([(bad.to_owned(), record.clone())]),
            );
            m.write(&dir).unwrap();
            let Err(EntryProblem::Corrupt { reason, .. }) = Manifest::read(&dir) else { panic!("{bad} accepted") };
            assert!(reason.contains("file name"), "{reason}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
