//! `visualize_predictions` over real HTTP: a JPEG of the original frame with the predictions drawn
//! in the model's class colours, for every task.

mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn decode(v: &Value) -> image::RgbImage {
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(v["visualization"].as_str().expect("visualization")).unwrap();
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| (i32::from(*x) - i32::from(y)).abs() <= 48)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_are_drawn_in_class_colours_on_the_original_frame() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    // COLORS of assets/models/shapes*/1/environment.json.
    let color = |class: &str| match class {
        "circle" => [0x48, 0x92, 0xEA],
        "square" => [0x00, 0xEE, 0xC3],
        _ => [0xFE, 0x4E, 0xF0],
    };
    for (route, model) in [
        ("/infer/object_detection", "shapes/1"),
        ("/infer/instance_segmentation", "shapes-seg/1"),
        ("/infer/keypoints_detection", "shapes-pose/1"),
    ] {
        let mut body = detect_body(model, "shapes_640x480.png", 0.5, 0.45);
        let (_, plain) = server.post_json(route, &body).await;
        assert!(plain.get("visualization").is_none(), "only when asked for");
        body["visualize_predictions"] = json!(true);
        body["visualization_stroke_width"] = json!(4);
        body["visualization_labels"] = json!(true);
        let (status, v) = server.post_json(route, &body).await;
        assert_eq!(status, 200, "{v}");
        let picture = decode(&v);
        assert_eq!(picture.dimensions(), (640, 480));
        let predictions = v["predictions"].as_array().unwrap();
        assert!(!predictions.is_empty());
        for p in predictions {
            let d = from_response(p);
            // The middle of the box's left edge, one pixel into the 4-pixel stroke.
            let (x, y) = (d.bbox[0].round() as u32 + 1, ((d.bbox[1] + d.bbox[3]) / 2.0) as u32);
            let want = if model == "shapes-pose/1" { [0x48, 0x92, 0xEA] } else { color(&d.class_name) };
            let got = picture.get_pixel(x.min(639), y.min(479)).0;
            assert!(close(got, want), "{model}: box edge at ({x}, {y}) is {got:?}, class colour {want:?}");
        }
    }

    let body = json!({"model_id": "shapes-cls/1", "image": {"type": "base64", "value": image_b64("cls/cls_200x150_square.png")},
                      "visualize_predictions": true});
    let (status, v) = server.post_json("/infer/classification", &body).await;
    assert_eq!(status, 200, "{v}");
    let picture = decode(&v);
    assert_eq!(picture.dimensions(), (200, 150));
    // The label box of the top class ("square") sits at the top-left corner.
    assert!(close(picture.get_pixel(1, 1).0, [0x00, 0xEE, 0xC3]), "{:?}", picture.get_pixel(1, 1).0);

    let mut bad = detect_body("shapes/1", "shapes_640x480.png", 0.5, 0.45);
    bad["visualize_predictions"] = json!(true);
    bad["visualization_stroke_width"] = json!(0);
    assert_eq!(server.post_json("/infer/object_detection", &bad).await.0, 422);
}
