//! `url` image inputs: fetched when the destination is allowed, refused (400, before any
//! connection where the address is known) when it is not, on every redirect too.

mod common;

use common::file_server::FileServer;
use common::*;
use serde_json::{json, Value};

const IMAGE: &str = "shapes_640x480.png";

fn url_body(url: &str) -> Value {
    json!({"model_id": "shapes/1", "image": {"type": "url", "value": url}, "confidence": 0.25})
}

async fn refused(server: &Server, url: &str) -> String {
    let (status, v) = server.post_json("/infer/object_detection", &url_body(url)).await;
    assert_eq!(status, 400, "{url}: {v}");
    v["message"].as_str().unwrap().to_owned()
}

const NOT_ALLOWED: &str = "Could not load input image. Cause: URL points to a network destination that is not allowed.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_url_gives_the_same_answer_as_base64_and_redirects_are_followed() {
    let files = FileServer::start("127.0.0.1").await;
    let server = Server::start(&repo_root().join("assets/models"), &[("ALLOWED_URL_NETWORKS", "127.0.0.1/32")]).await;
    let base64 =
        json!({"model_id": "shapes/1", "image": {"type": "base64", "value": image_b64(IMAGE)}, "confidence": 0.25});
    let (status, expected) = server.post_json("/infer/object_detection", &base64).await;
    assert_eq!(status, 200);
    assert!(!expected["predictions"].as_array().unwrap().is_empty());

    let (status, v) =
        server.post_json("/infer/object_detection", &url_body(&files.url(&format!("/img/{IMAGE}")))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(without_ids(&v["predictions"]), without_ids(&expected["predictions"]));

    let hop = files.url(&format!("/redirect?to={}", files.url(&format!("/img/{IMAGE}"))));
    let (status, v) = server.post_json("/infer/object_detection", &url_body(&hop)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(without_ids(&v["predictions"]), without_ids(&expected["predictions"]));

    // A list mixing a URL and base64; and the legacy route's `image=` parameter.
    let list = json!({"model_id": "shapes/1", "confidence": 0.25, "image": [
        {"type": "url", "value": files.url(&format!("/img/{IMAGE}"))},
        {"type": "base64", "value": image_b64(IMAGE)},
    ]});
    let (status, v) = server.post_json("/infer/object_detection", &list).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(without_ids(&v[0]["predictions"]), without_ids(&v[1]["predictions"]));
    let legacy = format!("/shapes/1?confidence=25&image={}", files.url(&format!("/img/{IMAGE}")));
    let r = server.client.post(server.url(&legacy)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(without_ids(&v["predictions"]), without_ids(&expected["predictions"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_by_default() {
    let files = FileServer::start("127.0.0.1").await;
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let image = format!("/img/{IMAGE}");
    for url in [
        files.url(&image),
        files.url(&image).replace("127.0.0.1", "localhost"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]:9/x.png".to_owned(),
        "http://10.0.0.1/x.png".to_owned(),
        "http://0.0.0.0/x.png".to_owned(),
        "http://[::ffff:127.0.0.1]/x.png".to_owned(),
    ] {
        assert_eq!(refused(&server, &url).await, NOT_ALLOWED, "{url}");
    }
    assert_eq!(files.hits(), 0, "no refused URL was ever connected to");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_checked_and_bad_urls_refused() {
    let allowed = FileServer::start("127.0.0.1").await;
    let other = FileServer::start("127.0.0.2").await;
    let server = Server::start(&repo_root().join("assets/models"), &[("ALLOWED_URL_NETWORKS", "127.0.0.1/32")]).await;
    let image = format!("/img/{IMAGE}");

    assert_eq!(refused(&server, &other.url(&image)).await, NOT_ALLOWED);
    let hop = allowed.url(&format!("/redirect?to={}", other.url(&image)));
    assert_eq!(refused(&server, &hop).await, NOT_ALLOWED);
    let to_metadata = allowed.url("/redirect?to=http://169.254.169.254/latest/meta-data/");
    assert_eq!(refused(&server, &to_metadata).await, NOT_ALLOWED);
    assert_eq!(other.hits(), 0);

    for url in ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "not a url", "http://"] {
        assert!(refused(&server, url).await.contains("Provided image URL is invalid"), "{url}");
    }
    let redirect_to_file = allowed.url("/redirect?to=file:///etc/passwd");
    assert!(refused(&server, &redirect_to_file).await.contains("Provided image URL is invalid"));
    let message = refused(&server, &allowed.url("/text")).await;
    assert!(message.starts_with("Could not load input image."), "{message}");
    let message = refused(&server, &allowed.url("/img/missing.png")).await;
    assert!(message.contains("404"), "{message}");

    // Everything allowed: the same 127.0.0.2 URL now works.
    let open = Server::start(&repo_root().join("assets/models"), &[("ALLOW_PRIVATE_URLS", "true")]).await;
    let (status, v) = open.post_json("/infer/object_detection", &url_body(&other.url(&image))).await;
    assert_eq!(status, 200, "{v}");
    // URL inputs switched off.
    let off = Server::start(
        &repo_root().join("assets/models"),
        &[("ALLOW_URL_INPUT", "false"), ("ALLOW_PRIVATE_URLS", "true")],
    )
    .await;
    assert!(refused(&off, &other.url(&image)).await.contains("ALLOW_URL_INPUT"));
}
