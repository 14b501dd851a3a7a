//! Roboflow image objects (`{"type": ..., "value": ...}`) to encoded image bytes.
//!
//! Only inputs that cannot reach the server's own files or run code are accepted: `numpy` (a
//! pickle) and `file` (a server-local path) are refused; `url` goes through [`UrlFetcher`]'s
//! destination checks.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde::Deserialize;
use sightline_core::CoreError;
use utoipa::ToSchema;

use crate::url_fetch::UrlFetcher;

/// Standard alphabet, padding optional, as Python's `b64decode` accepts it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The image `type`s served (documentation: read as text, case-insensitive).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ImageKind {
    Base64,
    Url,
}

/// Spec §1.4: `{"type": "base64" | "url", "value": ...}`; `numpy` and `file` are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ImageInput {
    /// `base64` (optionally a `data:` URL) or `url`, case-insensitive.
    #[serde(rename = "type")]
    #[schema(value_type = ImageKind)]
    pub kind: String,
    /// The base64 text or the URL.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub value: Option<serde_json::Value>,
    /// Already-raw image bytes (a multipart upload): never part of a JSON body.
    #[serde(skip)]
    raw: Option<Vec<u8>>,
}

/// `image` is one object or a list; the response mirrors the shape.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

fn bad(detail: &str) -> CoreError {
    CoreError::BadImage(detail.to_owned())
}

/// Base64 text (optionally a `data:` URL) to bytes; whitespace such as line wrapping is ignored.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, CoreError> {
    let payload = match text.split_once(";base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => text,
    };
    if payload.is_empty() {
        return Err(bad("Empty image payload."));
    }
    // Clients rarely wrap lines: the text is copied without whitespace only when it fails as it is.
    BASE64.decode(payload).or_else(|_| {
        let compact: Vec<u8> = payload.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if compact.is_empty() {
            return Err(bad("Empty image payload."));
        }
        BASE64.decode(&compact).map_err(|_| bad("Malformed base64 input image."))
    })
}

impl ImageInput {
    /// Base64 text, as a JSON body would carry it.
    pub fn base64(text: String) -> ImageInput {
        ImageInput { kind: "base64".into(), value: Some(text.into()), raw: None }
    }

    /// Raw encoded image bytes, as a multipart upload carries them.
    pub fn raw(bytes: Vec<u8>) -> ImageInput {
        ImageInput { kind: "raw".into(), value: None, raw: Some(bytes) }
    }

    /// A URL, as the legacy route's `image=` query parameter carries it.
    pub fn url(url: String) -> ImageInput {
        ImageInput { kind: "url".into(), value: Some(url.into()), raw: None }
    }

    pub async fn into_bytes(self, urls: &UrlFetcher) -> Result<Vec<u8>, CoreError> {
        if self.kind.eq_ignore_ascii_case("url") && self.raw.is_none() {
            return match self.value {
                Some(serde_json::Value::String(url)) => urls.fetch(&url).await,
                _ => Err(bad("Provided image URL is invalid")),
            };
        }
        self.into_local_bytes()
    }

    /// Every input that needs no network.
    pub(crate) fn into_local_bytes(self) -> Result<Vec<u8>, CoreError> {
        if let Some(bytes) = self.raw {
            return Ok(bytes);
        }
        match self.kind.to_ascii_lowercase().as_str() {
            "base64" => match self.value {
                Some(serde_json::Value::String(s)) => decode_base64(&s),
                Some(serde_json::Value::Null) | None => Err(bad("Empty image payload.")),
                Some(_) => Err(bad("Malformed base64 input image.")),
            },
            "numpy" | "numpy_object" => {
                Err(bad("NumPy image type is not supported in this configuration of `inference`."))
            }
            "file" => Err(bad("Loading images from the server's filesystem is disabled.")),
            _ => Err(bad("Image declaration contains not recognised image type.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_variants() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("data:image/png;base64,aGVs\nbG8=").unwrap(), b"hello");
        assert!(matches!(decode_base64("!!!"), Err(CoreError::BadImage(m)) if m.contains("Malformed")));
        assert!(matches!(decode_base64("  "), Err(CoreError::BadImage(m)) if m.contains("Empty")));
    }

    #[test]
    fn unsafe_types_are_refused() {
        for kind in ["numpy", "file", "FILE", "pil", "nonsense"] {
            let input = ImageInput { kind: kind.into(), value: Some("x".into()), raw: None };
            assert!(matches!(input.into_local_bytes(), Err(CoreError::BadImage(_))), "{kind}");
        }
        let ok = ImageInput { kind: "BASE64".into(), value: Some("aGVsbG8=".into()), raw: None };
        assert_eq!(ok.into_local_bytes().unwrap(), b"hello");
        // A JSON body cannot smuggle raw bytes in: the type alone is refused.
        let raw: ImageInput = serde_json::from_str(r#"{"type": "raw", "value": "x"}"#).unwrap();
        assert!(raw.into_local_bytes().is_err());
        assert_eq!(ImageInput::raw(b"png".to_vec()).into_local_bytes().unwrap(), b"png");
    }
}
