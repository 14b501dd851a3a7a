//! The embedding models' inputs against their references (`tests/data/reference/embeddings.json`,
//! made by `assets/tools/make_embedding_refs.py`): Pillow's resize, byte for byte; the token ids
//! of `clip.tokenize` and of fastembed's tokenizer for the whole text corpus.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sightline_core::{DataType, Tensor};
use sightline_models::image::decode::decode_image;
use sightline_models::image::pillow::{resize, Filter};
use sightline_models::tasks::embedding::clip_text;
use sightline_models::tasks::embedding::text_prep::TextPrep;
use sightline_models::DecodeLimits;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(p)
}

fn references() -> Value {
    serde_json::from_slice(&std::fs::read(data("reference/embeddings.json")).unwrap()).unwrap()
}

#[test]
fn pillow_resize_is_bit_exact_for_every_filter() {
    let refs = references();
    let mut wrong = Vec::new();
    for case in refs["pillow_resize"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let image =
            decode_image(&std::fs::read(data(&format!("images/{name}"))).unwrap(), false, DecodeLimits::default())
                .unwrap();
        let filter = Filter::from_pillow(case["resample"].as_i64().unwrap()).unwrap();
        let (w, h) = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
        let out = resize(&image, w, h, filter);
        let digest = format!("{:x}", Sha256::digest(out.as_raw()));
        if digest != case["sha256"].as_str().unwrap() {
            wrong.push(format!("{name} {filter:?} {w}x{h}"));
        }
    }
    assert!(wrong.is_empty(), "differs from Pillow: {wrong:?}");
}

#[test]
fn clip_tokens_equal_clip_tokenize_for_the_corpus() {
    let refs = references();
    let mut wrong = Vec::new();
    for (text, entry) in refs["roboflow"]["texts"].as_object().unwrap() {
        let want: Vec<i64> = entry["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
        let got: Vec<i64> = clip_text::tokenize(text).unwrap().into_iter().map(i64::from).collect();
        if got != want {
            wrong.push(format!("{text:?}: {got:?} != {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(refs["roboflow"]["over_long_refused"].as_bool().unwrap());
    assert!(clip_text::tokenize(refs["over_long"].as_str().unwrap()).is_err());
}

fn ids(tensors: &[Tensor], row: usize) -> Vec<i64> {
    let ids = tensors.iter().find(|t| t.name == "input_ids").unwrap();
    let mask = tensors.iter().find(|t| t.name == "attention_mask").unwrap();
    let width = ids.shape[1];
    let read = |t: &Tensor, i: usize| i64::from_le_bytes(t.data[i * 8..i * 8 + 8].try_into().unwrap());
    (0..width).filter(|&i| read(mask, row * width + i) == 1).map(|i| read(ids, row * width + i)).collect()
}

#[test]
fn hugging_face_tokens_equal_fastembeds_for_the_corpus() {
    let refs = references();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/embed/clip-tiny-text");
    let inputs = vec![("input_ids".to_owned(), DataType::Int64), ("attention_mask".to_owned(), DataType::Int64)];
    let prep = TextPrep::hugging_face(&dir, inputs).unwrap();
    let corpus = refs["fastembed"]["embed/clip-tiny-text"].as_object().unwrap();
    let texts: Vec<String> = corpus.keys().cloned().collect();
    let tensors = prep.tensors(&texts).unwrap();
    let mut wrong = Vec::new();
    for (row, text) in texts.iter().enumerate() {
        let want: Vec<i64> = corpus[text]["tokens"].as_array().unwrap().iter().map(|t| t.as_i64().unwrap()).collect();
        let got = ids(&tensors, row);
        if got != want {
            wrong.push(format!("{text:?}: {got:?} != {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Padded to the longest (the over-long text, truncated to 77) with config.json's pad id.
    let ids_tensor = tensors.iter().find(|t| t.name == "input_ids").unwrap();
    assert_eq!(ids_tensor.shape, vec![texts.len(), 77]);
}

/// Not a test of behaviour: prints what each preprocessing stage costs (run with --ignored --nocapture).
#[test]
#[ignore]
fn preprocessing_stage_costs() {
    use sightline_models::tasks::embedding::image_prep::ImagePrep;
    let png = std::fs::read(data("images/shapes_640x480.png")).unwrap();
    let image = decode_image(&png, false, DecodeLimits::default()).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&image).unwrap();
    let prep = ImagePrep::openai_clip(224);
    let time = |what: &str, f: &mut dyn FnMut()| {
        let t = std::time::Instant::now();
        for _ in 0..50 {
            f();
        }
        eprintln!("{what}: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 50.0);
    };
    time("decode jpeg", &mut || drop(decode_image(&jpeg, true, DecodeLimits::default()).unwrap()));
    time("resize 640x480 -> 298x224 bicubic", &mut || drop(resize(&image, 298, 224, Filter::Bicubic)));
    time("whole prep (resize, crop, tensor)", &mut || drop(prep.tensor(&image)));
}
