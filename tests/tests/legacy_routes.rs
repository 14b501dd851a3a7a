//! Roboflow's legacy routes over real HTTP: bare base64 bodies under any content type,
//! options in the query (percentages, Python-style booleans), `format=image|image_and_json`,
//! the body errors, `/clear_cache` and `/start`.

mod common;

use common::*;
use serde_json::{json, Value};

async fn post(server: &Server, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let mut request = server.client.post(server.url(path)).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_inference_matches_the_reference_and_honours_the_query() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let image = image_b64("shapes_640x480.png");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-det-v8.json")).unwrap()).unwrap();
    let expected: Vec<Det> = reference["images"]["shapes_640x480.png"]["runs"]["letterbox/conf0.25/iou0.45"]
        .as_array()
        .unwrap()
        .iter()
        .map(from_reference)
        .collect();

    // As the SDK sends it (JSON content type, unquoted base64, percentages, capitalised booleans),
    // and as curl users do (form content type, data: prefix, fractions).
    for (query, content_type, body) in [
        ("?api_key=x&confidence=25&overlap=45&disable_active_learning=False", "application/json", image.clone()),
        (
            "?confidence=0.25&overlap=0.45",
            "application/x-www-form-urlencoded",
            format!("data:image/png;base64,{image}"),
        ),
    ] {
        let (status, _, bytes) =
            post(&server, &format!("/shapes/1{query}"), Some(content_type), body.into_bytes()).await;
        let v = json_of(&bytes);
        assert_eq!(status, 200, "{v}");
        let predicted: Vec<Det> = v["predictions"].as_array().unwrap().iter().map(from_response).collect();
        assert_eq!(compare(&expected, &predicted, 0.25), Vec::<String>::new(), "{query}");
        assert!(v.get("visualization").is_none());
    }

    // format=image: a JPEG body; format=image_and_json: JSON with the visualization.
    let (status, content_type, jpeg) = post(
        &server,
        "/shapes/1?format=image&labels=True&stroke=3",
        Some("application/json"),
        image.clone().into_bytes(),
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "image/jpeg"));
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF]);
    let (_, _, bytes) =
        post(&server, "/shapes/1?format=image_and_json", Some("application/json"), image.clone().into_bytes()).await;
    let v = json_of(&bytes);
    assert!(v["visualization"].is_string() && v["predictions"].is_array(), "{v}");

    // The model's task decides the answer's shape; booleans reach the preprocessing.
    let cls = image_b64("cls/cls_200x150_square.png");
    let (_, _, bytes) = post(&server, "/shapes-cls/1", Some("application/json"), cls.into_bytes()).await;
    assert_eq!(json_of(&bytes)["top"], "square");
    let exif = image_b64("shapes_exif6_480x640.jpg");
    let (_, _, bytes) =
        post(&server, "/shapes/1?disable_preproc_auto_orient=True", Some("text/plain"), exif.clone().into_bytes())
            .await;
    assert_eq!(json_of(&bytes)["image"], json!({"width": 640, "height": 480}));
    let (_, _, bytes) =
        post(&server, "/shapes/1?disable_preproc_auto_orient=0", Some("text/plain"), exif.into_bytes()).await;
    assert_eq!(json_of(&bytes)["image"], json!({"width": 480, "height": 640}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_body_errors_and_helpers() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let image = image_b64("shapes_256_00.png");
    let message = |bytes: &[u8]| json_of(bytes)["message"].as_str().unwrap_or_default().to_owned();

    let (status, _, bytes) = post(&server, "/shapes/1", None, image.clone().into_bytes()).await;
    assert_eq!((status, message(&bytes).as_str()), (400, "Content-Type header not provided with request."));
    let raw_png = std::fs::read(data("images/shapes_256_00.png")).unwrap();
    let (status, _, bytes) = post(&server, "/shapes/1", Some("application/octet-stream"), raw_png).await;
    assert!(status == 400 && message(&bytes).contains("raw bytes"), "{}", message(&bytes));
    let (status, _, bytes) = post(&server, "/shapes/1", Some("application/json"), vec![]).await;
    assert!(status == 400 && message(&bytes).contains("Image not found in request body"), "{}", message(&bytes));
    let (status, _, bytes) =
        post(&server, "/shapes/1?image=http://127.0.0.1/x.png", Some("application/json"), vec![]).await;
    assert!(status == 400 && message(&bytes).contains("not allowed"), "{}", message(&bytes));
    let (status, _, _) =
        post(&server, "/shapes/1?confidence=lots", Some("application/json"), image.clone().into_bytes()).await;
    assert_eq!(status, 422);
    let (status, _, _) =
        post(&server, "/shapes/1?format=xml", Some("application/json"), image.clone().into_bytes()).await;
    assert_eq!(status, 422);
    let (status, _, bytes) = post(&server, "/nope/1", Some("application/json"), image.clone().into_bytes()).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&bytes));
    let (status, _, _) = post(&server, "/a/b/c", Some("application/json"), image.into_bytes()).await;
    assert_eq!(status, 404, "three segments are no model id");

    assert_eq!(
        server.get_json("/start/shapes/1").await,
        (200, json!({"status": 200, "message": "inference session started from local memory."}))
    );
    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"][0]["model_id"], "shapes/1");
    assert_eq!(server.get_json("/clear_cache").await, (200, json!("Cache Cleared")));
    let (_, registry) = server.get_json("/model/registry").await;
    assert_eq!(registry["models"], json!([]));
    // Fixed routes still win over the two-segment pattern.
    assert_eq!(server.get_json("/model/registry").await.0, 200);
}

/// A multipart/form-data body with one part per `(name, bytes)`.
fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "sightline-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
        body.extend(*bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_multipart_uploads_read_the_file_part() {
    let server = Server::start(&repo_root().join("assets/models"), &[("MAX_BODY_BYTES", "1000000")]).await;
    let png = std::fs::read(data("images/shapes_640x480.png")).unwrap();
    let small = std::fs::read(data("images/shapes_256_00.png")).unwrap();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-det-v8.json")).unwrap()).unwrap();
    let expected: Vec<Det> = reference["images"]["shapes_256_00.png"]["runs"]["letterbox/conf0.25/iou0.45"]
        .as_array()
        .unwrap()
        .iter()
        .map(from_reference)
        .collect();

    let (content_type, body) = multipart(&[("other", b"ignored"), ("file", &small)]);
    let (status, _, bytes) = post(&server, "/shapes/1?confidence=25&overlap=45", Some(&content_type), body).await;
    let v = json_of(&bytes);
    assert_eq!(status, 200, "{v}");
    let predicted: Vec<Det> = v["predictions"].as_array().unwrap().iter().map(from_response).collect();
    assert_eq!(compare(&expected, &predicted, 0.25), Vec::<String>::new());

    let (content_type, body) = multipart(&[("image", &small)]);
    let (status, _, bytes) = post(&server, "/shapes/1", Some(&content_type), body).await;
    assert!(
        status == 400 && json_of(&bytes)["message"].as_str().unwrap().contains("part named 'file'"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    // The body bound holds for multipart parts too (550 KB twice over a 1 MB limit).
    let (content_type, body) = multipart(&[("file", &[png.as_slice(), png.as_slice()].concat())]);
    let (status, _, _) = post(&server, "/shapes/1", Some(&content_type), body).await;
    assert_eq!(status, 413);
}
