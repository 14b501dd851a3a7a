//! Texts into a text model's token tensors, with the model's own tokenizer: a Hugging Face folder's
//! `tokenizer.json`, set up as fastembed sets it up (truncation at the tokenizer config's limit,
//! padding to the longest text of the batch with the pad token it resolves), or CLIP's own
//! tokenizer for Roboflow's layout (`clip_text`).

use std::path::Path;

use serde_json::Value;
use sightline_core::{DataType, Tensor};
use tokenizers::{
    AddedToken, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection, TruncationParams,
};

use super::clip_text;

/// The tokenizer files of a Hugging Face text model.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_FILE: &str = "special_tokens_map.json";
const CONFIG_FILE: &str = "config.json";

/// Longest text accepted, in bytes, before tokenizing: far past any model's context, it only keeps
/// a single request from spending seconds in the tokenizer.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

pub enum TextPrep {
    /// `clip.tokenize`: 77 tokens into the model's one input (int32 as Roboflow feeds them, or
    /// int64 where the model declares that).
    Clip { input: String, datatype: DataType },
    /// A `tokenizer.json` with the inputs the model declares of `input_ids`, `attention_mask` and
    /// `token_type_ids` (int64).
    HuggingFace { tokenizer: Box<Tokenizer>, inputs: Vec<(String, DataType)> },
}

impl TextPrep {
    /// fastembed's `load_tokenizer` for `dir`; the error names the file and what is wrong.
    pub fn hugging_face(dir: &Path, inputs: Vec<(String, DataType)>) -> Result<TextPrep, String> {
        let read = |name: &str, required: bool| -> Result<Value, String> {
            match std::fs::read(dir.join(name)) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{name}: {e}")),
                Err(_) if !required => Ok(Value::Object(Default::default())),
                Err(e) => Err(format!("{name}: {e}")),
            }
        };
        let tokenizer_config = read(TOKENIZER_CONFIG_FILE, true)?;
        let config = read(CONFIG_FILE, false)?;
        let special_tokens = read(SPECIAL_TOKENS_FILE, false)?;
        let mut tokenizer =
            Tokenizer::from_file(dir.join(TOKENIZER_FILE)).map_err(|e| format!("{TOKENIZER_FILE}: {e}"))?;
        let max_length = [&tokenizer_config["model_max_length"], &tokenizer_config["max_length"]]
            .into_iter()
            .filter_map(|v| v.as_u64().filter(|&n| n > 0 && n <= i64::MAX as u64))
            .min()
            .ok_or_else(|| format!("{TOKENIZER_CONFIG_FILE}: no positive model_max_length or max_length"))?;
        let direction = match tokenizer_config["truncation_side"].as_str() {
            Some("left") => TruncationDirection::Left,
            Some(_) => TruncationDirection::Right,
            None => tokenizer.get_truncation().map_or(TruncationDirection::Right, |t| t.direction),
        };
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_length as usize,
                direction,
                ..Default::default()
            }))
            .map_err(|e| format!("{TOKENIZER_FILE}: {e}"))?;
        tokenizer
            .add_special_tokens(special_token_list(&special_tokens))
            .map_err(|e| format!("{SPECIAL_TOKENS_FILE}: {e}"))?;
        let padding = padding(&tokenizer, &tokenizer_config, &config)?;
        tokenizer.with_padding(Some(padding));
        Ok(TextPrep::HuggingFace { tokenizer: Box::new(tokenizer), inputs })
    }

    /// The tensors for `texts` (one batch), in the model's input order.
    pub fn tensors(&self, texts: &[String]) -> Result<Vec<Tensor>, String> {
        if let Some(long) = texts.iter().find(|t| t.len() > MAX_TEXT_BYTES) {
            return Err(format!("a text of {} bytes is over the limit of {MAX_TEXT_BYTES}", long.len()));
        }
        match self {
            TextPrep::Clip { input, datatype } => {
                let mut data = Vec::with_capacity(texts.len() * clip_text::CONTEXT_LENGTH * datatype.size());
                for text in texts {
                    for token in clip_text::tokenize(text)? {
                        match datatype {
                            DataType::Int64 => data.extend_from_slice(&i64::from(token).to_le_bytes()),
                            _ => data.extend_from_slice(&token.to_le_bytes()),
                        }
                    }
                }
                let shape = vec![texts.len(), clip_text::CONTEXT_LENGTH];
                Ok(vec![Tensor::new(input.clone(), *datatype, shape, data).map_err(|e| e.to_string())?])
            }
            TextPrep::HuggingFace { tokenizer, inputs } => {
                let encodings = tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| e.to_string())?;
                let length = encodings.first().map_or(0, |e| e.get_ids().len());
                inputs
                    .iter()
                    .map(|(name, datatype)| {
                        let values = |e: &tokenizers::Encoding| -> Vec<u32> {
                            match name.as_str() {
                                "input_ids" => e.get_ids().to_vec(),
                                "attention_mask" => e.get_attention_mask().to_vec(),
                                _ => vec![0; e.get_ids().len()],
                            }
                        };
                        let mut data = Vec::with_capacity(texts.len() * length * datatype.size());
                        for encoding in &encodings {
                            for v in values(encoding) {
                                match datatype {
                                    DataType::Int32 => data.extend_from_slice(&(v as i32).to_le_bytes()),
                                    _ => data.extend_from_slice(&i64::from(v).to_le_bytes()),
                                }
                            }
                        }
                        Tensor::new(name.clone(), *datatype, vec![texts.len(), length], data).map_err(|e| e.to_string())
                    })
                    .collect()
            }
        }
    }
}

/// The tokens of `special_tokens_map.json` (a value, or a list under `additional_special_tokens`).
fn special_token_list(map: &Value) -> Vec<AddedToken> {
    let mut tokens = Vec::new();
    let Some(map) = map.as_object() else { return tokens };
    for value in map.values() {
        let items = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match item {
                Value::String(content) => tokens.push(AddedToken::from(content.clone(), true)),
                Value::Object(fields) => {
                    let Some(content) = fields.get("content").and_then(Value::as_str) else { continue };
                    let flag = |key: &str, default: bool| fields.get(key).and_then(Value::as_bool).unwrap_or(default);
                    tokens.push(
                        AddedToken::from(content.to_owned(), flag("special", true))
                            .single_word(flag("single_word", false))
                            .lstrip(flag("lstrip", false))
                            .rstrip(flag("rstrip", false))
                            .normalized(flag("normalized", false)),
                    );
                }
                _ => {}
            }
        }
    }
    tokens
}

/// Padding to the batch's longest text with the pad token fastembed resolves: the tokenizer's own,
/// else the config's; its id from the tokenizer, `config.json`'s `pad_token_id`, or the vocabulary.
fn padding(tokenizer: &Tokenizer, tokenizer_config: &Value, config: &Value) -> Result<PaddingParams, String> {
    let own = tokenizer.get_padding();
    let configured = match &tokenizer_config["pad_token"] {
        Value::String(token) => Some(token.clone()),
        Value::Object(fields) => fields.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let pad_token = own
        .map(|p| p.pad_token.clone())
        .or(configured)
        .ok_or_else(|| format!("{TOKENIZER_CONFIG_FILE}: no pad_token"))?;
    let pad_id = match own {
        Some(p) => p.pad_id,
        None => match config["pad_token_id"].as_u64().and_then(|v| u32::try_from(v).ok()) {
            Some(id) => id,
            None => tokenizer
                .token_to_id(&pad_token)
                .ok_or_else(|| format!("{TOKENIZER_FILE}: the pad token {pad_token:?} has no id"))?,
        },
    };
    let direction = match tokenizer_config["padding_side"].as_str() {
        Some("left") => PaddingDirection::Left,
        Some(_) => PaddingDirection::Right,
        None => own.map_or(PaddingDirection::Right, |p| p.direction),
    };
    Ok(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        direction,
        pad_to_multiple_of: own.and_then(|p| p.pad_to_multiple_of),
        pad_id,
        pad_type_id: own.map_or(0, |p| p.pad_type_id),
        pad_token,
    })
}
