//! Custom embedding models (`POST /embed/models`, `EMBEDDING_MODELS_FILE`) and the `url` source's
//! archives, against a loopback file server: a good `.tar.gz` is served as fastembed embeds its
//! model; hostile ones (`..`, an absolute path, a symbolic and a hard link out of the entry, a
//! device file, a bomb of 1 GB of zeros, a wrong sha256) are refused with a clear error, write
//! nothing outside the entry and leave no entry behind.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

struct FileServer {
    child: Child,
    base: String,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_folder(dir: &Path) -> FileServer {
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the file server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    FileServer { child, base: format!("http://127.0.0.1:{port}") }
}

/// A tar header with `path` written raw (the tar crate refuses to write hostile paths itself).
fn header(path: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_size(size);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_cksum();
    header
}

fn write_archive(path: &Path, entries: Vec<Entry>) {
    let file = std::fs::File::create(path).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    for (name, kind, data, size) in entries {
        let mut header = header(&name, size, kind);
        if kind.is_symlink() || kind.is_hard_link() {
            header.set_link_name("../../../../etc/passwd").unwrap();
            header.set_cksum();
        }
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

fn file_entry(folder: &str, name: &str) -> Entry {
    let bytes = std::fs::read(repo_root().join("assets/models/embed/clip-tiny-vision").join(name)).unwrap();
    let size = bytes.len() as u64;
    (format!("{folder}/{name}"), tar::EntryType::Regular, Box::new(std::io::Cursor::new(bytes)), size)
}

type Entry = (String, tar::EntryType, Box<dyn Read>, u64);

fn good(folder: &str) -> Vec<Entry> {
    vec![file_entry(folder, "model.onnx"), file_entry(folder, "preprocessor_config.json")]
}

/// The good files of folder `m`, then `extra`.
fn with(extra: Entry) -> Vec<Entry> {
    let mut entries = good("m");
    entries.push(extra);
    entries
}

fn small(name: &str, kind: tar::EntryType) -> Entry {
    let size = if kind == tar::EntryType::Regular { 4 } else { 0 };
    (name.to_owned(), kind, Box::new(std::io::Cursor::new(b"evil".to_vec()).take(size)), size)
}

fn description(model: &str, url: &str) -> Value {
    json!({"model": model, "task": "image", "dim": 64, "sources": {"url": url}, "license": "mit"})
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_are_unpacked_inside_their_entry_or_refused_whole() {
    let files = TempDir::new("archives");
    let outside = files.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let absolute = PathBuf::from(format!("/tmp/sightline-absolute-evil-{}.txt", std::process::id()));
    write_archive(&files.path().join("good.tar.gz"), good("clip-tiny"));
    let hostile: Vec<(&str, Vec<Entry>)> = vec![
        ("traversal", with(small("m/../../outside/evil.txt", tar::EntryType::Regular))),
        ("absolute", with(small(absolute.to_str().unwrap(), tar::EntryType::Regular))),
        ("symlink", with(small("m/config.json", tar::EntryType::Symlink))),
        ("hardlink", with(small("m/config.json", tar::EntryType::Link))),
        ("device", with(small("m/null", tar::EntryType::Char))),
        (
            "bomb",
            vec![
                file_entry("m", "preprocessor_config.json"),
                ("m/model.onnx".into(), tar::EntryType::Regular, Box::new(std::io::repeat(0).take(1 << 30)), 1 << 30),
            ],
        ),
    ];
    for (name, entries) in hostile {
        write_archive(&files.path().join(format!("{name}.tar.gz")), entries);
    }
    assert!(std::fs::metadata(files.path().join("bomb.tar.gz")).unwrap().len() < 8 << 20, "the bomb is small packed");
    let server = serve_folder(files.path());

    let mut descriptions = vec![description("acme/archived-clip", &format!("{}/good.tar.gz", server.base))];
    for name in ["traversal", "absolute", "symlink", "hardlink", "device", "bomb"] {
        descriptions.push(description(&format!("hostile/{name}"), &format!("{}/{name}.tar.gz", server.base)));
    }
    let mut wrong = description("acme/wrong-digest", &format!("{}/good.tar.gz", server.base));
    wrong["sources"]["sha256"] = json!("0".repeat(64));
    descriptions.push(wrong);
    let mut pinned = description("acme/pinned-digest", &format!("{}/good.tar.gz", server.base));
    pinned["sources"]["sha256"] = json!(sha256_hex(&files.path().join("good.tar.gz")));
    descriptions.push(pinned);
    let list = files.path().join("models.json");
    std::fs::write(&list, Value::Array(descriptions).to_string()).unwrap();

    let env = [
        ("MODEL_SOURCES", "url"),
        ("EMBEDDING_MODELS_FILE", list.to_str().unwrap()),
        ("MAX_MODEL_ARCHIVE_BYTES", "67108864"),
        ("MODEL_FETCH_ATTEMPTS", "1"),
    ];
    let sightline = Server::start(Path::new("/nonexistent"), &env).await;
    let refs: Value = serde_json::from_slice(&std::fs::read(data("reference/embeddings.json")).unwrap()).unwrap();
    let want = refs["fastembed"]["embed/clip-tiny-vision"]["shapes_640x480.png"].as_array().unwrap().clone();
    let request = |model: &str| json!({"model_id": model, "inputs": [{"type": "base64", "value": image_b64("shapes_640x480.png")}]});
    for model in ["acme/archived-clip", "acme/pinned-digest"] {
        let (status, body) = sightline.post_json("/embed/image", &request(model)).await;
        assert_eq!(status, 200, "{model}: {body}");
        let got = body["embeddings"][0].as_array().unwrap();
        let worst =
            got.iter().zip(&want).map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-4, "{model}: max abs {worst}");
    }
    let cache = sightline.cache_dir().to_path_buf();
    let mut entry: Vec<String> = std::fs::read_dir(cache.join("acme/archived-clip"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entry.sort();
    // (`ort-optimized/` is the engine's saved graph, which every entry may get.)
    entry.retain(|name| name != "ort-optimized");
    assert_eq!(entry, ["manifest.json", "model.onnx", "preprocessor_config.json"], "no archive left in the entry");

    for (model, says) in [
        ("hostile/traversal", "climbs out"),
        ("hostile/absolute", "absolute path"),
        ("hostile/symlink", "is a link"),
        ("hostile/hardlink", "is a link"),
        ("hostile/device", "not a regular file"),
        ("hostile/bomb", "MAX_MODEL_ARCHIVE_BYTES"),
        ("acme/wrong-digest", "sha256"),
    ] {
        let (status, body) = sightline.post_json("/embed/image", &request(model)).await;
        assert!(status >= 400, "{model}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{model}: {message:?} does not say {says:?}");
        assert!(!cache.join(model).exists(), "{model}: no entry is left");
    }
    assert!(!outside.join("evil.txt").exists() && !absolute.exists(), "nothing is written outside the entry");
    let stray: Vec<PathBuf> = walk(&cache).into_iter().filter(|p| p.to_string_lossy().contains("evil")).collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_models_are_registered_over_http_with_each_field_checked() {
    let files = TempDir::new("custom-models");
    write_archive(&files.path().join("good.tar.gz"), good("clip-tiny"));
    let server = serve_folder(files.path());
    let sightline = Server::start(Path::new("/nonexistent"), &[("MODEL_SOURCES", "url")]).await;

    let model = description("acme/posted-clip.v1", &format!("{}/good.tar.gz", server.base));
    let (status, body) = sightline.post_json("/embed/models", &model).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sightline_id"], "acme/posted-clip_v1");
    let (status, body) = sightline.post_json("/embed/models", &model).await;
    assert_eq!(status, 409, "{body}");
    let (_, listed) = sightline.get_json("/embed/models").await;
    assert!(listed.as_array().unwrap().iter().any(|m| m["model"] == "acme/posted-clip.v1"), "{listed}");

    let request = json!({"model_id": "acme/posted-clip.v1", "inputs": [{"type": "base64", "value": image_b64("shapes_640x480.png")}]});
    let (status, body) = sightline.post_json("/embed/image", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dim"], 64);

    for (field, value, says) in [
        ("task", json!("audio"), "task"),
        ("dim", json!(-3), "dim"),
        ("pooling", json!("max"), "pooling"),
        ("model", json!("no-slash"), "model"),
        ("sources", json!({"url": "ftp://x/y.tar.gz"}), "sources.url"),
        ("model_file", json!("../x.onnx"), "model_file"),
    ] {
        let mut bad = description("acme/bad", "https://example.com/m.tar.gz");
        bad[field] = value;
        let (status, body) = sightline.post_json("/embed/models", &bad).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert!(body["message"].as_str().unwrap().starts_with(says), "{field}: {body}");
    }
}
