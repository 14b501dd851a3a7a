//! `SIGHTLINE_API_KEY`: every route but health, readiness, info and metrics needs the key, found
//! in the query, a bearer header or the JSON body, with the spec's precedence.

mod common;

use common::*;
use serde_json::{json, Value};

const KEY: &str = "k3y-for-tests";

async fn status_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_the_probes_needs_the_key() {
    let server = Server::start(&repo_root().join("assets/models"), &[("SIGHTLINE_API_KEY", KEY)]).await;
    let c = &server.client;
    for open in ["/healthz", "/readiness", "/info", "/metrics"] {
        let (status, _) = status_of(c.get(server.url(open))).await;
        assert_eq!(status, 200, "{open}");
    }

    let (status, v) = status_of(c.get(server.url("/model/registry"))).await;
    assert_eq!(status, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("requires an API key"), "{v}");
    for (path, method) in [("/models", "GET"), ("/model/clear", "POST"), ("/shapes/1", "POST"), ("/nowhere", "GET")] {
        let request = if method == "GET" { c.get(server.url(path)) } else { c.post(server.url(path)) };
        assert_eq!(status_of(request).await.0, 401, "{method} {path}");
    }
    let (status, v) = status_of(c.get(server.url("/model/registry?api_key=wrong"))).await;
    assert_eq!(status, 401);
    assert!(v["message"].as_str().unwrap().contains("not valid"), "{v}");

    assert_eq!(status_of(c.get(server.url(&format!("/model/registry?api_key={KEY}")))).await.0, 200);
    assert_eq!(status_of(c.get(server.url("/model/registry")).bearer_auth(KEY)).await.0, 200);
    // `api_key=None` (what the SDK sends without a key) counts as absent, so the header decides.
    assert_eq!(status_of(c.get(server.url("/model/registry?api_key=None")).bearer_auth(KEY)).await.0, 200);

    // In the body: the handler still gets the whole body.
    let mut body = detect_body("shapes/1", "shapes_256_00.png", 0.25, 0.45);
    body["api_key"] = json!(KEY);
    let (status, v) = status_of(c.post(server.url("/infer/object_detection")).json(&body)).await;
    assert_eq!(status, 200, "{v}");
    assert!(!v["predictions"].as_array().unwrap().is_empty(), "{v}");

    // Precedence: the query beats the header and the body, the header beats the body.
    let (status, _) = status_of(c.post(server.url("/infer/object_detection?api_key=wrong")).json(&body)).await;
    assert_eq!(status, 401, "a wrong query key is not rescued by a right body key");
    let (status, _) = status_of(c.post(server.url("/infer/object_detection")).bearer_auth("wrong").json(&body)).await;
    assert_eq!(status, 401, "a wrong bearer key is not rescued by a right body key");
    let mut no_key = body.clone();
    no_key["api_key"] = Value::Null;
    let (status, _) = status_of(c.post(server.url("/infer/object_detection")).bearer_auth(KEY).json(&no_key)).await;
    assert_eq!(status, 200);

    // The legacy route takes it in the query, like Roboflow's clients send it.
    let b64 = image_b64("shapes_256_00.png");
    let (status, v) = status_of(
        c.post(server.url(&format!("/shapes/1?api_key={KEY}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b64),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // The body is still bounded when the middleware reads it.
    let small =
        Server::start(&repo_root().join("assets/models"), &[("SIGHTLINE_API_KEY", KEY), ("MAX_BODY_BYTES", "1000")])
            .await;
    let (status, _) = status_of(small.client.post(small.url("/infer/object_detection")).json(&body)).await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_server_key_any_or_no_key_is_accepted() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    for path in ["/model/registry", "/model/registry?api_key=None", "/model/registry?api_key=anything"] {
        assert_eq!(status_of(server.client.get(server.url(path))).await.0, 200, "{path}");
    }
}
