//! Model ids are validated here, once, before they can touch the filesystem or a metrics label.

use std::fmt;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::CoreError;

const MAX_SEGMENT_LEN: usize = 128;

/// What [`ModelId::parse`] accepts in each segment, as a regular expression (for API documents).
pub const SEGMENT_PATTERN: &str = "[A-Za-z0-9_-]{1,128}";

/// A validated `dataset/version` id. Each segment is `[A-Za-z0-9_-]` (dots are refused so that no
/// segment can be `.` or `..`), which makes `dataset/version` a safe relative path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId {
    dataset: String,
    version: String,
}

impl ModelId {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        let invalid = |why: &str| CoreError::InvalidModelId(format!("{raw:?}: {why}"));
        let mut parts = raw.split('/');
        let (Some(dataset), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("expected \"dataset/version\""));
        };
        for segment in [dataset, version] {
            if segment.is_empty() || segment.len() > MAX_SEGMENT_LEN {
                return Err(invalid("each segment must be 1 to 128 characters"));
            }
            if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid("only letters, digits, '-' and '_' are allowed"));
            }
        }
        Ok(ModelId { dataset: dataset.to_owned(), version: version.to_owned() })
    }

    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The id as a relative path (`dataset/version`); safe to join onto a base directory.
    pub fn relative_path(&self) -> PathBuf {
        PathBuf::from(&self.dataset).join(&self.version)
    }
}

/// As its text, `dataset/version`.
impl Serialize for ModelId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dataset, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dataset_and_version() {
        let id = ModelId::parse("shapes-dyn/1").unwrap();
        assert_eq!(id.dataset(), "shapes-dyn");
        assert_eq!(id.version(), "1");
        assert_eq!(id.to_string(), "shapes-dyn/1");
        assert_eq!(id.relative_path(), PathBuf::from("shapes-dyn/1"));
    }

    #[test]
    fn refuses_anything_that_could_leave_the_model_directory() {
        for bad in [
            "",
            "shapes",
            "shapes/",
            "/1",
            "a/b/c",
            "../1",
            "shapes/..",
            "./1",
            "a\\b/1",
            "sha pes/1",
            "shapes/1\0",
            "/etc/passwd",
            "shapes/1/",
            "ünïcode/1",
        ] {
            assert!(matches!(ModelId::parse(bad), Err(CoreError::InvalidModelId(_))), "{bad:?} should be refused");
        }
        assert!(ModelId::parse(&format!("{}/1", "a".repeat(129))).is_err());
        assert!(ModelId::parse(&format!("{}/1", "a".repeat(128))).is_ok());
    }

    #[test]
    fn the_documented_pattern_says_what_parse_accepts() {
        assert_eq!(SEGMENT_PATTERN, format!("[A-Za-z0-9_-]{{1,{MAX_SEGMENT_LEN}}}"));
    }
}
