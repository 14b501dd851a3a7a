//! The model's `PREPROCESSING` steps over real HTTP: a static crop maps results back to the full
//! frame, grayscale and contrast are applied (and skipped when the request disables them).

mod common;

use std::io::Cursor;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

const IMAGE: &str = "shapes_640x480.png";

fn env_with(extra: &str) -> String {
    format!(
        r#"{{"PREPROCESSING": {{"resize": {{"enabled": true, "format": "Fit (grey edges) in", "width": 256, "height": 256}}, {extra}}}}}"#
    )
}

fn png_b64(img: &image::RgbImage) -> String {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    base64::engine::general_purpose::STANDARD.encode(out)
}

fn fixture() -> image::RgbImage {
    image::open(data(&format!("images/{IMAGE}"))).unwrap().to_rgb8()
}

fn body(model: &str, b64: &str, extra: Value) -> Value {
    let mut b = json!({"model_id": model, "confidence": 0.25, "iou_threshold": 0.45, "image": {"type": "base64", "value": b64}});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

fn dets(v: &Value) -> Vec<Det> {
    v["predictions"].as_array().unwrap().iter().map(from_response).collect()
}

/// Same detections (class, confidence to 1e-4, box corners to 1e-3 px) after shifting `b` by `(dx, dy)`.
fn assert_same(a: &[Det], b: &[Det], dx: f64, dy: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (p, q) in a.iter().zip(b) {
        assert_eq!(p.class_id, q.class_id, "{what}");
        assert!((p.confidence - q.confidence).abs() < 1e-4, "{what}: {p:?} vs {q:?}");
        let shifted = [q.bbox[0] + dx, q.bbox[1] + dy, q.bbox[2] + dx, q.bbox[3] + dy];
        assert!(p.bbox.iter().zip(&shifted).all(|(x, y)| (x - y).abs() < 1e-3), "{what}: {:?} vs {shifted:?}", p.bbox);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preprocessing_steps_and_their_request_switches() {
    let models = TempDir::new("pre");
    copy_model(models.path(), "shapes/1", "plain/1", |_| {});
    // Right half of the image: x from 50 % (320 px), full height.
    let crop = r#""static-crop": {"enabled": true, "x_min": 50, "y_min": 0, "x_max": 100, "y_max": 100}"#;
    copy_model(models.path(), "shapes/1", "cropped/1", |d| {
        std::fs::write(d.join("environment.json"), env_with(crop)).unwrap()
    });
    let gray = r#""grayscale": {"enabled": true}"#;
    copy_model(models.path(), "shapes/1", "gray/1", |d| {
        std::fs::write(d.join("environment.json"), env_with(gray)).unwrap()
    });
    let contrast = r#""contrast": {"enabled": true, "type": "Histogram Equalization"}"#;
    copy_model(models.path(), "shapes/1", "contrast/1", |d| {
        std::fs::write(d.join("environment.json"), env_with(contrast)).unwrap()
    });
    let server = Server::start(models.path(), &[]).await;
    let post = |b: Value| {
        let server = &server;
        async move {
            let (status, v) = server.post_json("/infer/object_detection", &b).await;
            assert_eq!(status, 200, "{v}");
            v
        }
    };
    let original = fixture();
    let whole = image_b64(IMAGE);

    // Static crop: the same as posting the cropped image, shifted back into the full frame.
    let cropped_image = image::imageops::crop_imm(&original, 320, 0, 320, 480).to_image();
    let via_crop = post(body("cropped/1", &whole, json!({}))).await;
    let by_hand = post(body("plain/1", &png_b64(&cropped_image), json!({}))).await;
    assert_eq!(via_crop["image"], json!({"width": 640, "height": 480}), "the frame size, not the crop's");
    assert!(!dets(&via_crop).is_empty());
    assert_same(&dets(&via_crop), &dets(&by_hand), 320.0, 0.0, "static crop");
    assert!(dets(&via_crop).iter().all(|d| d.bbox[0] >= 320.0 - 1e-3), "boxes stay inside the crop");
    let uncropped = post(body("cropped/1", &whole, json!({"disable_preproc_static_crop": true}))).await;
    let plain = post(body("plain/1", &whole, json!({}))).await;
    assert_same(&dets(&uncropped), &dets(&plain), 0.0, 0.0, "crop disabled");

    // Grayscale: the same as posting an image converted with OpenCV's BGR2GRAY weights.
    let mut gray_image = original.clone();
    for p in gray_image.pixels_mut() {
        let [r, g, b] = p.0.map(u32::from);
        let v = ((4899 * r + 9617 * g + 1868 * b + 8192) >> 14) as u8;
        p.0 = [v, v, v];
    }
    let via_gray = post(body("gray/1", &whole, json!({}))).await;
    let gray_by_hand = post(body("plain/1", &png_b64(&gray_image), json!({}))).await;
    assert_same(&dets(&via_gray), &dets(&gray_by_hand), 0.0, 0.0, "grayscale");
    assert_ne!(via_gray["predictions"].to_string().len(), 0);
    let gray_off = post(body("gray/1", &whole, json!({"disable_preproc_grayscale": true}))).await;
    assert_same(&dets(&gray_off), &dets(&plain), 0.0, 0.0, "grayscale disabled");

    // Contrast: applied (answers change) unless disabled.
    let via_contrast = post(body("contrast/1", &whole, json!({}))).await;
    let contrast_off = post(body("contrast/1", &whole, json!({"disable_preproc_contrast": true}))).await;
    assert_same(&dets(&contrast_off), &dets(&plain), 0.0, 0.0, "contrast disabled");
    let confidences = |v: &Value| dets(v).iter().map(|d| d.confidence).collect::<Vec<_>>();
    assert_ne!(confidences(&via_contrast), confidences(&plain), "equalisation changes the input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_orient_follows_the_environment_and_the_request() {
    let models = TempDir::new("orient");
    copy_model(models.path(), "shapes/1", "plain/1", |_| {});
    let off = r#""auto-orient": {"enabled": false}"#;
    copy_model(models.path(), "shapes/1", "no-orient/1", |d| {
        std::fs::write(d.join("environment.json"), env_with(off)).unwrap()
    });
    let server = Server::start(models.path(), &[]).await;
    let exif = image_b64("shapes_exif6_480x640.jpg");
    let size = |v: &Value| (v["image"]["width"].as_u64(), v["image"]["height"].as_u64());
    let (_, v) = server.post_json("/infer/object_detection", &body("plain/1", &exif, json!({}))).await;
    assert_eq!(size(&v), (Some(480), Some(640)), "EXIF rotation applied");
    let (_, v) = server
        .post_json("/infer/object_detection", &body("plain/1", &exif, json!({"disable_preproc_auto_orient": true})))
        .await;
    assert_eq!(size(&v), (Some(640), Some(480)), "the request turned it off");
    let (_, v) = server.post_json("/infer/object_detection", &body("no-orient/1", &exif, json!({}))).await;
    assert_eq!(size(&v), (Some(640), Some(480)), "the model's environment turned it off");
}
