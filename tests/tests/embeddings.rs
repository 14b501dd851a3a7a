//! Embedding models through the real binary against their upstream references
//! (`tests/data/reference/embeddings.json`, made by `assets/tools/make_embedding_refs.py`):
//! Roboflow's `/clip/*` against Roboflow's CLIP pipeline (OpenAI's transform, `clip.tokenize`,
//! onnxruntime), `/embed/*` against fastembed on the same folders; inference-sdk's CLIP calls;
//! qdrant-client's local mode searching Sightline's vectors; and the bad inputs.

mod common;

use common::*;
use serde_json::{json, Value};

const CLIP: &str = "tiny-test";

fn image(name: &str) -> Value {
    json!({"type": "base64", "value": image_b64(name)})
}

fn names(refs: &Value) -> Vec<String> {
    refs["images"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
}

async fn clip_server() -> Server {
    Server::start(
        &repo_root().join("assets/models"),
        &[("CLIP_VERSION_ID", CLIP), ("CLIP_MAX_BATCH_SIZE", "4"), ("MAX_ACTIVE_MODELS", "16")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_routes_answer_what_roboflows_clip_answers() {
    let refs = embedding_references();
    let reference = &refs["roboflow"];
    let server = clip_server().await;
    let mut problems = Vec::new();

    // Every fixture image alone (the server's CLIP_VERSION_ID), then four in one request.
    for name in names(&refs) {
        let (status, body) = server.post_json("/clip/embed_image", &json!({"image": image(&name)})).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body["time"].as_f64().unwrap() > 0.0 && body["inference_id"].is_string(), "{body}");
        let got = vector(&body["embeddings"][0]);
        problems.extend(mismatch(&format!("image {name}"), &got, &vector(&reference["images"][&name])));
    }
    let four: Vec<String> = names(&refs).into_iter().take(4).collect();
    let request =
        json!({"image": four.iter().map(|n| image(n)).collect::<Vec<_>>(), "clip_version_id": CLIP, "api_key": "k"});
    let (status, body) = server.post_json("/clip/embed_image", &request).await;
    assert_eq!(status, 200, "{body}");
    for (i, name) in four.iter().enumerate() {
        problems.extend(mismatch(
            &format!("list {name}"),
            &vector(&body["embeddings"][i]),
            &vector(&reference["images"][name]),
        ));
    }

    // The whole corpus in one request: longer than CLIP_MAX_BATCH_SIZE, so run in batches.
    let texts: Vec<String> = refs["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    let (status, body) = server.post_json("/clip/embed_text", &json!({"text": texts})).await;
    assert_eq!(status, 200, "{body}");
    for (i, text) in texts.iter().enumerate() {
        let want = vector(&reference["texts"][text]["embedding"]);
        problems.extend(mismatch(&format!("text {text:?}"), &vector(&body["embeddings"][i]), &want));
    }
    let (status, body) = server.post_json("/clip/embed_text", &json!({"text": "a square"})).await;
    assert_eq!(status, 200, "{body}");
    problems.extend(mismatch(
        "one text",
        &vector(&body["embeddings"][0]),
        &vector(&reference["texts"]["a square"]["embedding"]),
    ));

    // Compare: an image against texts, a text against images, and named prompts.
    let case = &reference["compare"]["image_to_text"];
    let request = json!({"subject": image(case["subject"].as_str().unwrap()), "prompt": case["prompts"]});
    let (status, body) = server.post_json("/clip/compare", &request).await;
    assert_eq!(status, 200, "{body}");
    let similarity = vector(&body["similarity"]);
    for (got, want) in similarity.iter().zip(vector(&case["similarity"])) {
        assert!((got - want).abs() <= 1e-4, "image to text: {similarity:?} vs {}", case["similarity"]);
    }
    let case = &reference["compare"]["text_to_image"];
    let prompts: Vec<Value> = case["prompts"].as_array().unwrap().iter().map(|n| image(n.as_str().unwrap())).collect();
    let request =
        json!({"subject": case["subject"], "subject_type": "text", "prompt": prompts, "prompt_type": "image"});
    let (status, body) = server.post_json("/clip/compare", &request).await;
    assert_eq!(status, 200, "{body}");
    for (got, want) in vector(&body["similarity"]).iter().zip(vector(&case["similarity"])) {
        assert!((got - want).abs() <= 1e-4, "text to image: {body}");
    }
    let request =
        json!({"subject": image("shapes_640x480.png"), "prompt": {"round": "a photo of a circle", "all": "shapes"}});
    let (status, body) = server.post_json("/clip/compare", &request).await;
    assert_eq!(status, 200, "{body}");
    let want = vector(&reference["compare"]["image_to_text"]["similarity"]);
    assert!((body["similarity"]["round"].as_f64().unwrap() - want[0]).abs() <= 1e-4, "{body}");
    assert!((body["similarity"]["all"].as_f64().unwrap() - want[3]).abs() <= 1e-4, "{body}");

    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_routes_answer_fastembeds_vectors() {
    let refs = embedding_references();
    let server = clip_server().await;
    let all = names(&refs);
    let inputs: Vec<Value> = all.iter().map(|n| image(n)).collect();
    let mut problems = Vec::new();
    for model in ["embed/clip-tiny-vision", "embed/resnet-tiny"] {
        let (status, body) = server.post_json("/embed/image", &json!({"model_id": model, "inputs": inputs})).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["model_id"], model);
        assert_eq!(body["normalized"], true);
        assert_eq!(body["dim"], 64, "{model}");
        for (i, name) in all.iter().enumerate() {
            let want = vector(&refs["fastembed"][model][name]);
            problems.extend(mismatch(&format!("{model} {name}"), &vector(&body["embeddings"][i]), &want));
        }
    }

    let corpus = refs["fastembed"]["embed/clip-tiny-text"].as_object().unwrap();
    let texts: Vec<&String> = corpus.keys().collect();
    let (status, body) =
        server.post_json("/embed/text", &json!({"model_id": "embed/clip-tiny-text", "inputs": texts})).await;
    assert_eq!(status, 200, "{body}");
    for (i, text) in texts.iter().enumerate() {
        let want = vector(&corpus[text.as_str()]["embedding"]);
        problems.extend(mismatch(&format!("text {text:?}"), &vector(&body["embeddings"][i]), &want));
    }

    // A CLIP pair serves /embed too: its vectors normalised.
    let (status, body) =
        server.post_json("/embed/text", &json!({"model_id": "clip/tiny-test", "inputs": ["shapes"]})).await;
    assert_eq!(status, 200, "{body}");
    let want = normalised(&vector(&refs["roboflow"]["texts"]["shapes"]["embedding"]));
    problems.extend(mismatch("clip/tiny-test text", &vector(&body["embeddings"][0]), &want));
    let request = json!({"model_id": "clip/tiny-test", "inputs": [image("shapes_300x500.png")]});
    let (status, body) = server.post_json("/embed/image", &request).await;
    assert_eq!(status, 200, "{body}");
    let want = normalised(&vector(&refs["roboflow"]["images"]["shapes_300x500.png"]));
    problems.extend(mismatch("clip/tiny-test image", &vector(&body["embeddings"][0]), &want));

    // The one-tower models are tensors too, for the Open Inference Protocol.
    let (status, metadata) = server.get_json("/v2/models/embed/versions/clip-tiny-vision").await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["inputs"][0]["name"], "pixel_values", "{metadata}");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_embedding_inputs_are_clear_400s() {
    let server = clip_server().await;
    let png = image("shapes_256_00.png");
    let cases = [
        (
            "/embed/text",
            json!({"model_id": "embed/clip-tiny-vision", "inputs": ["a text"]}),
            "cannot serve a embed-text",
        ),
        ("/embed/image", json!({"model_id": "embed/clip-tiny-text", "inputs": [png]}), "cannot serve a embed-image"),
        ("/embed/image", json!({"model_id": "embed/clip-tiny-vision", "inputs": []}), "must not be empty"),
        ("/embed/text", json!({"model_id": "embed/clip-tiny-text", "inputs": []}), "must not be empty"),
        (
            "/embed/image",
            json!({"model_id": "embed/clip-tiny-vision", "inputs": [{"type": "base64", "value": "bm90IGFuIGltYWdl"}]}),
            "image",
        ),
        ("/clip/embed_text", json!({"text": "word ".repeat(100)}), "too long for context length 77"),
        ("/embed/text", json!({"model_id": "clip/tiny-test", "inputs": ["x".repeat(70_000)]}), "over the limit"),
        ("/clip/embed_image", json!({"image": [png, png, png, png, png]}), "at once is 4"),
        ("/clip/compare", json!({"subject": png, "prompt": ["a", "b", "c", "d", "e"]}), "at once is 4"),
        ("/clip/compare", json!({"subject": "a text", "prompt": "b"}), "subject_type is image"),
        ("/clip/embed_text", json!({"text": "a", "clip_version_id": "../etc"}), "Invalid Model ID"),
        ("/clip/embed_text", json!({"text": []}), "must not be empty"),
    ];
    for (path, body, says) in cases {
        let (status, answer) = server.post_json(path, &body).await;
        assert_eq!(status, 400, "{path} {}: {answer}", &body.to_string()[..body.to_string().len().min(120)]);
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message:?} does not say {says:?}");
    }
    // A catalogue model of the other kind is refused before anything is loaded.
    let (status, answer) =
        server.post_json("/embed/text", &json!({"model_id": "Qdrant/clip-ViT-B-32-vision", "inputs": ["a"]})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("use /embed/image"), "{answer}");
    // A missing CLIP version is a 404, as any unknown model.
    let (status, answer) =
        server.post_json("/clip/embed_text", &json!({"text": "a", "clip_version_id": "ViT-B-16"})).await;
    assert_eq!(status, 404, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_sdk_clip_calls_run_unchanged() {
    let refs = embedding_references();
    let server = clip_server().await;
    let path = |name: &str| data(&format!("images/{name}")).display().to_string();
    let spec = json!({"api_url": server.base, "calls": [
        {"method": "get_clip_image_embeddings", "args": [path("shapes_640x480.png")], "kwargs": {"clip_version": CLIP}},
        {"method": "get_clip_text_embeddings", "args": ["a photo of a circle"], "kwargs": {"clip_version": CLIP}},
        {"method": "clip_compare", "kwargs": {"subject": path("shapes_640x480.png"),
            "prompt": ["a photo of a circle", "a triangle", "a square", "shapes"], "clip_version": CLIP}},
    ]});
    let driver = repo_root().join("tests/python/sdk_driver.py");
    let out = venv_python(&[driver.to_str().unwrap()], spec.to_string().as_bytes());
    assert!(out.status.success(), "sdk driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ok = |i: usize| results[i].get("ok").unwrap_or_else(|| panic!("the client raised: {}", results[i])).clone();
    let reference = &refs["roboflow"];
    let image = ok(0);
    assert_eq!(
        mismatch("sdk image", &vector(&image["embeddings"][0]), &vector(&reference["images"]["shapes_640x480.png"])),
        None
    );
    let text = ok(1);
    let want = vector(&reference["texts"]["a photo of a circle"]["embedding"]);
    assert_eq!(mismatch("sdk text", &vector(&text["embeddings"][0]), &want), None);
    let compared = ok(2);
    for (got, want) in
        vector(&compared["similarity"]).iter().zip(vector(&reference["compare"]["image_to_text"]["similarity"]))
    {
        assert!((got - want).abs() <= 1e-4, "sdk compare: {compared}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_finds_each_image_and_ranks_them_for_a_text_as_the_reference_does() {
    let refs = embedding_references();
    let server = clip_server().await;
    let all = names(&refs);
    let inputs: Vec<Value> = all.iter().map(|n| image(n)).collect();
    let (status, body) =
        server.post_json("/embed/image", &json!({"model_id": "clip/tiny-test", "inputs": inputs})).await;
    assert_eq!(status, 200, "{body}");
    let images: serde_json::Map<String, Value> =
        all.iter().cloned().zip(body["embeddings"].as_array().unwrap().iter().cloned()).collect();
    let queries = ["shapes", "a triangle", "a photo of a circle"];
    let (status, body) =
        server.post_json("/embed/text", &json!({"model_id": "clip/tiny-test", "inputs": queries})).await;
    assert_eq!(status, 200, "{body}");
    let query_vectors: serde_json::Map<String, Value> =
        queries.iter().map(|q| q.to_string()).zip(body["embeddings"].as_array().unwrap().iter().cloned()).collect();
    let spec = json!({"dim": body["dim"], "images": images, "queries": query_vectors});
    let driver = repo_root().join("tests/python/qdrant_driver.py");
    let out = venv_python(&[driver.to_str().unwrap()], spec.to_string().as_bytes());
    assert!(out.status.success(), "qdrant driver failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in &all {
        assert_eq!(found["nearest"][name][0], json!(name), "{name}'s nearest: {}", found["nearest"][name]);
    }
    // The reference ranking: the reference text vector against the reference image vectors.
    let reference = &refs["roboflow"];
    for query in queries {
        let text = normalised(&vector(&reference["texts"][query]["embedding"]));
        let mut ranked: Vec<(f64, &String)> = all
            .iter()
            .map(|n| {
                let v = normalised(&vector(&reference["images"][n]));
                (v.iter().zip(&text).map(|(a, b)| a * b).sum(), n)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let want: Vec<&String> = ranked.iter().map(|(_, n)| *n).collect();
        assert_eq!(found["ranked"][query], json!(want), "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_lists_fastembeds_models_over_http_and_in_the_cli() {
    let server = clip_server().await;
    let (status, models) = server.get_json("/embed/models").await;
    assert_eq!(status, 200, "{models}");
    let models = models.as_array().unwrap();
    let named = |name: &str| models.iter().find(|m| m["model"] == name).unwrap_or_else(|| panic!("{name} missing"));
    let clip = named("Qdrant/clip-ViT-B-32-vision");
    assert_eq!(clip["dim"], 512);
    assert_eq!(clip["sources"]["hf"], "Qdrant/clip-ViT-B-32-vision");
    assert_eq!(clip["license"], "mit");
    assert_eq!(clip["modality"], "image");
    assert_eq!(named("Qdrant/resnet50-onnx")["dim"], 2048);
    assert_eq!(named("Qdrant/clip-ViT-B-32-text")["modality"], "text");
    assert_eq!(named("nomic-ai/nomic-embed-vision-v1.5")["sightline_id"], "nomic-ai/nomic-embed-vision-v1_5");
    assert!(models.iter().all(|m| m["size_in_GB"].as_f64().unwrap() > 0.0 && m["model_file"].is_string()));

    let out = std::process::Command::new(binary()).args(["models", "--catalogue"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), models.len() + 1, "{text}");
    assert!(text.lines().any(|l| l.starts_with("Qdrant/resnet50-onnx") && l.contains("2048")), "{text}");
}

#[test]
fn the_embed_cli_writes_a_line_per_file_for_a_vector_store() {
    let refs = embedding_references();
    let cache = TempDir::new("embed-cli");
    let out = std::process::Command::new(binary())
        .args(["embed", "--model", "embed/clip-tiny-vision"])
        .arg(data("images/embed"))
        .arg(data("images/shapes_640x480.png"))
        .arg(repo_root().join("README.md"))
        .env("MODEL_DIR", repo_root().join("assets/models"))
        .env("MODEL_CACHE_DIR", cache.path())
        .env("ORT_DYLIB_PATH", ort_dylib())
        .output()
        .unwrap();
    assert!(!out.status.success(), "README.md is no image: the command fails after writing every line");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 7 inputs could not be embedded"), "{stderr}");
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7, "{lines:?}");
    let mut checked = 0;
    for line in &lines {
        let path = line["path"].as_str().unwrap();
        if path.ends_with("README.md") {
            assert!(line["error"].as_str().unwrap().contains("image"), "{line}");
            continue;
        }
        let name = path.split("images/").last().unwrap();
        let want = vector(&refs["fastembed"]["embed/clip-tiny-vision"][name]);
        assert_eq!(mismatch(name, &vector(&line["vector"]), &want), None);
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_text_models_pool_token_outputs_as_fastembed_pools_them() {
    let refs = embedding_references();
    let models = TempDir::new("pooled-models");
    for name in ["tiny-mean", "tiny-cls"] {
        copy_model(models.path(), "embed/clip-tiny-tokens", &format!("acme/{name}"), |_| {});
    }
    copy_model(models.path(), "embed/clip-tiny-tokens", "embed/unpooled", |_| {});
    let list = models.path().join("custom.json");
    let described = |name: &str, pooling: &str| {
        json!({"model": name, "task": "text", "dim": 32, "pooling": pooling, "normalization": true,
            "sources": {"hf": name}, "license": "mit"})
    };
    std::fs::write(&list, json!([described("acme/tiny-mean", "MEAN"), described("acme/tiny-cls", "cls")]).to_string())
        .unwrap();
    let server = Server::start(models.path(), &[("EMBEDDING_MODELS_FILE", list.to_str().unwrap())]).await;
    let mut problems = Vec::new();
    for model in ["acme/tiny-mean", "acme/tiny-cls"] {
        let corpus = refs["fastembed_pooled"][model].as_object().unwrap();
        let texts: Vec<&String> = corpus.keys().collect();
        let (status, body) = server.post_json("/embed/text", &json!({"model_id": model, "inputs": texts})).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["dim"], 32);
        for (i, text) in texts.iter().enumerate() {
            let want = vector(&corpus[text.as_str()]);
            problems.extend(mismatch(&format!("{model} {text:?}"), &vector(&body["embeddings"][i]), &want));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // A token-level model nobody described cannot be pooled: its load says how to fix that.
    let (status, body) = server.post_json("/embed/text", &json!({"model_id": "embed/unpooled", "inputs": ["a"]})).await;
    assert!(status >= 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("pooling"), "{body}");
}
