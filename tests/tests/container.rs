//! The CPU image (`make image`, docker/Dockerfile) built and run with podman: it answers fixture
//! images as the references say, exposes `/metrics`, and on SIGTERM with requests in flight lets
//! them finish and exits 0; the Kubernetes Deployment runs under `podman kube play`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use futures::future::join_all;
use serde_json::{json, Value};

fn podman(args: &[&str]) -> String {
    let out = Command::new(repo_root().join("scripts/podman.sh")).args(args).output().expect("scripts/podman.sh");
    assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What the container wrote (podman replays its stderr on stderr).
fn logs(id: &str) -> String {
    let out = Command::new(repo_root().join("scripts/podman.sh")).args(["logs", id]).output().expect("podman logs");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A running container, removed when dropped.
struct Container {
    id: String,
    base: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/podman.sh")).args(["rm", "-f", &self.id]).output();
    }
}

async fn run_image() -> Container {
    let image =
        std::env::var("SIGHTLINE_IMAGE").expect("SIGHTLINE_IMAGE is not set: run `make test` (it runs `make image`)");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:9001");
    let id = podman(&["run", "-d", "-p", &publish, "-e", "SHUTDOWN_DRAIN_SECS=0.5", "-e", "LOG_LEVEL=info", &image]);
    let container = Container { id, base: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    let client = reqwest::Client::new();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = client.get(format!("{}/readiness", container.base)).send().await {
            if r.status() == 200 {
                return container;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the container never got ready:\n{}", logs(&container.id));
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_image_serves_the_references_and_stops_cleanly_on_sigterm() {
    let container = run_image().await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let detect = format!("{}/infer/object_detection", container.base);

    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-det-v8.json")).unwrap()).unwrap();
    let mut compared = 0;
    for image in reference["images"].as_object().unwrap().keys() {
        let (status, body) = post(&client, &detect, &detect_body("shapes/1", image, 0.25, 0.45)).await;
        assert_eq!(status, 200, "{image}: {body}");
        let expected = reference_detections(&reference, image, "letterbox/conf0.25/iou0.45");
        let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
        let problems = compare(&expected, &predicted, 0.25);
        assert!(problems.is_empty(), "{image}: {problems:?}");
        compared += expected.len();
    }
    assert!(compared > 20, "compared {compared} detections");
    let metrics = client.get(format!("{}/metrics", container.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"sightline_inference_requests_total{model_id="shapes/1",task="object-detection"} 15"#),
        "{metrics}"
    );
    let (_, info) =
        (200, client.get(format!("{}/info", container.base)).send().await.unwrap().json::<Value>().await.unwrap());
    assert_eq!(info["onnxruntime"]["library"], "/opt/onnxruntime/libonnxruntime.so.1.31.1", "{info}");

    // SIGTERM with OCR requests in flight: every one is answered, then the container exits 0.
    let ocr = json!({"model_id": "ppocr/4", "image": {"type": "base64", "value": image_b64("ocr/ocr_large_1600x1000_two_lines.jpg")}});
    let ocr_url = format!("{}/infer/ocr", container.base);
    assert_eq!(post(&client, &ocr_url, &ocr).await.0, 200, "warm up");
    let in_flight = join_all((0..6).map(|_| post(&client, &ocr_url, &ocr)));
    let terminate = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        podman(&["kill", "--signal", "TERM", &container.id]);
    };
    let (answers, ()) = tokio::join!(in_flight, terminate);
    assert!(answers.iter().all(|(status, _)| *status == 200), "requests in flight at SIGTERM: {answers:?}");
    let exit = podman(&["wait", &container.id]);
    assert_eq!(exit, "0", "exit code; logs:\n{}", logs(&container.id));
    let logs = logs(&container.id);
    assert!(logs.contains("shutting down") && !logs.contains("\u{1b}["), "plain-text logs with the shutdown: {logs}");
}

/// The base Deployment as `kubectl apply -k deploy/kubernetes/base` renders it (base's kustomization
/// only lists its resources and maps the image name, so that is deployment.yaml with the image),
/// with this machine's image and the pod's port on a loopback host port. One replica besides:
/// Debian's podman 4.3 starts every replica as a pod (4.4 and later start one), and two pods cannot
/// bind one host port. MODEL_SOURCES and the rest stay as shipped: the image's own models.
const LOCAL_DEPLOYMENT: &str = r#"
import os, sys, yaml
base = sys.argv[1]
kustomization = yaml.safe_load(open(os.path.join(base, "kustomization.yaml")))
assert set(kustomization) <= {"apiVersion", "kind", "resources", "images"}, ("base transforms more than the image", sorted(kustomization))
assert "deployment.yaml" in kustomization["resources"], kustomization["resources"]
deployment = yaml.safe_load(open(os.path.join(base, "deployment.yaml")))
deployment["spec"]["replicas"] = 1
container = deployment["spec"]["template"]["spec"]["containers"][0]
assert [i["name"] for i in kustomization["images"]] == [container["image"]], (kustomization["images"], container["image"])
container["image"] = sys.argv[3]
container["ports"][0].update({"hostPort": int(sys.argv[2]), "hostIP": "127.0.0.1"})
print(yaml.safe_dump(deployment))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_runs_under_podman_kube_play() {
    let image =
        std::env::var("SIGHTLINE_IMAGE").expect("SIGHTLINE_IMAGE is not set: run `make test` (it runs `make image`)");
    let port = free_port();
    let base = repo_root().join("deploy/kubernetes/base");
    let out = venv_python(&["-c", LOCAL_DEPLOYMENT, base.to_str().unwrap(), &port.to_string(), &image], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = TempDir::new("kube");
    let file = dir.path().join("deployment.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    let file = file.to_str().unwrap().to_owned();
    podman(&["kube", "play", "--replace", &file]);
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Command::new(repo_root().join("scripts/podman.sh")).args(["kube", "down", &self.0]).output();
        }
    }
    let _down = Down(file);

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("{base}/readiness")).send().await.map(|r| r.status() == 200);
        if ready.unwrap_or(false) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the pod never got ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = post(
        &client,
        &format!("{base}/infer/object_detection"),
        &detect_body("shapes/1", "shapes_640x480.png", 0.25, 0.45),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(data("reference/shapes-det-v8.json")).unwrap()).unwrap();
    let expected = reference_detections(&reference, "shapes_640x480.png", "letterbox/conf0.25/iou0.45");
    let predicted: Vec<Det> = body["predictions"].as_array().unwrap().iter().map(from_response).collect();
    assert!(!predicted.is_empty() && compare(&expected, &predicted, 0.25).is_empty(), "{body}");
}
