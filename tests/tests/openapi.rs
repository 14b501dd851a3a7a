//! `/openapi.json` covers every route and is a valid OpenAPI document (checked by
//! openapi-spec-validator from .venv); `/docs` serves Swagger UI for it from the binary.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_covers_every_route_and_validates() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let (status, doc) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/infer/object_detection", "post"),
        ("/infer/instance_segmentation", "post"),
        ("/infer/keypoints_detection", "post"),
        ("/infer/classification", "post"),
        ("/infer/ocr", "post"),
        ("/doctr/ocr", "post"),
        ("/model/add", "post"),
        ("/model/remove", "post"),
        ("/model/clear", "post"),
        ("/model/registry", "get"),
        ("/models", "get"),
        ("/models/pull", "post"),
        ("/models/{dataset_id}/{version_id}", "delete"),
        ("/info", "get"),
        ("/healthz", "get"),
        ("/readiness", "get"),
        ("/metrics", "get"),
        ("/{dataset_id}/{version_id}", "post"),
        ("/clear_cache", "get"),
        ("/start/{dataset_id}/{version_id}", "get"),
        ("/v2", "get"),
        ("/v2/health/live", "get"),
        ("/v2/health/ready", "get"),
        ("/v2/models/{name}", "get"),
        ("/v2/models/{name}/ready", "get"),
        ("/v2/models/{name}/infer", "post"),
        ("/v2/models/{name}/versions/{version}", "get"),
        ("/v2/models/{name}/versions/{version}/ready", "get"),
        ("/v2/models/{name}/versions/{version}/infer", "post"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
    }
    // Generated from the handlers' types: the request schema has the fields the handler reads.
    let schemas = &doc["components"]["schemas"];
    let common = &schemas["Common"]["properties"];
    for field in ["model_id", "image", "disable_preproc_auto_orient", "visualize_predictions"] {
        assert!(common.get(field).is_some(), "Common lacks {field}: {common}");
    }
    let prediction = &schemas["DetectionPrediction"]["properties"];
    for field in ["x", "y", "width", "height", "confidence", "class", "class_id", "detection_id", "points", "keypoints"]
    {
        assert!(prediction.get(field).is_some(), "DetectionPrediction lacks {field}");
    }
    assert_eq!(
        doc["paths"]["/infer/object_detection"]["post"]["responses"]["429"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ErrorBody"
    );

    let check = "import json, sys; from openapi_spec_validator import validate; validate(json.load(sys.stdin))";
    let out = venv_python(&["-c", check], doc.to_string().as_bytes());
    assert!(out.status.success(), "invalid OpenAPI document:\n{}", String::from_utf8_lossy(&out.stderr));

    let response = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui") && !page.contains("https://"), "served from the binary, no CDN: {page}");
    let initializer = server.get_text("/docs/swagger-initializer.js").await;
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    let script = server.client.get(server.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(script.status().as_u16(), 200);
    assert!(script.bytes().await.unwrap().len() > 100_000, "the bundle itself is served");
    let _: Value = doc;
}

/// The document bounds every image list of a request by the server's `MAX_IMAGES_PER_REQUEST`, so
/// a list the schema admits is never the 413 past it.
#[tokio::test]
async fn image_lists_are_bounded_by_max_images_per_request() {
    let server = Server::start(&repo_root().join("assets/models"), &[("MAX_IMAGES_PER_REQUEST", "20")]).await;
    let (status, doc) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let schemas = &doc["components"]["schemas"];
    for list in [
        &schemas["OneOrMany_ImageInput"]["oneOf"][1],
        &schemas["ImagesDoc"]["oneOf"][1],
        &schemas["EmbedImageRequest"]["properties"]["inputs"],
    ] {
        assert_eq!(list["type"], "array", "{list}");
        assert_eq!(list["maxItems"], 20, "{list}");
    }
}

/// The schemas a request body refers to, followed through `$ref`, `allOf`, `oneOf`, `anyOf`,
/// `items` and properties: every object schema a client fills in.
fn request_schemas<'a>(doc: &'a Value, schema: &'a Value, seen: &mut Vec<String>, out: &mut Vec<(String, &'a Value)>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/").to_owned();
        if !seen.contains(&name) {
            seen.push(name.clone());
            let target = &doc["components"]["schemas"][&name];
            out.push((name, target));
            request_schemas(doc, target, seen, out);
        }
        return;
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            request_schemas(doc, part, seen, out);
        }
    }
    if schema.get("items").is_some() {
        request_schemas(doc, &schema["items"], seen, out);
    }
    for property in schema["properties"].as_object().into_iter().flat_map(|p| p.values()) {
        request_schemas(doc, property, seen, out);
    }
}

/// Every operation says what it does (a summary and a description), and every field of every
/// request body says what it is: the Swagger page is the API's reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_every_request_field_explains_itself() {
    let server = Server::start(&repo_root().join("assets/models"), &[]).await;
    let (_, doc) = server.get_json("/openapi.json").await;
    let mut problems = Vec::new();
    let mut bodies = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for field in ["summary", "description"] {
                if operation[field].as_str().is_none_or(|s| s.trim().is_empty()) {
                    problems.push(format!("{method} {path}: no {field}"));
                }
            }
            for content in operation["requestBody"]["content"].as_object().into_iter().flat_map(|c| c.values()) {
                bodies.push(&content["schema"]);
            }
        }
    }
    let (mut seen, mut schemas) = (Vec::new(), Vec::new());
    for body in bodies {
        request_schemas(&doc, body, &mut seen, &mut schemas);
    }
    assert!(schemas.len() > 10, "request schemas not found: {seen:?}");
    for (name, schema) in schemas {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            let described = property["description"].as_str().is_some_and(|d| !d.trim().is_empty());
            if !described {
                problems.push(format!("request schema {name}: field {field} has no description"));
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
