//! Entry points for the fuzz targets (`fuzz/`, `make fuzz`): the paths that take untrusted bytes,
//! run synchronously and without a model or a network.

use sightline_models::image::decode::decode_image;
use sightline_models::DecodeLimits;

/// Smaller than the server's default so that each fuzz run stays fast; the checks are the same.
const FUZZ_MAX_PIXELS: u64 = 4_000_000;

/// `data` as a JSON inference body (every field check, base64, decoding) and as a raw upload.
pub fn request_body(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: FUZZ_MAX_PIXELS, ..DecodeLimits::default() };
    for image in crate::types::requests::check_body(data).into_iter().flatten() {
        let _ = decode_image(&image, true, limits);
    }
    let _ = decode_image(data, true, limits);
}

/// `data` as a body the API key is looked for in: the scan decides the same however the body is
/// cut into chunks (the first byte picks the cut), and a key it finds is bounded.
pub fn body_key(data: &[u8]) {
    use crate::body_key::{Found, KeyScan};
    let whole = {
        let mut scan = KeyScan::default();
        scan.feed(data);
        scan.finish().clone()
    };
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut scan = KeyScan::default();
    scan.feed(&data[..cut]);
    scan.feed(&data[cut..]);
    assert_eq!(scan.finish(), &whole, "chunking changed the outcome");
    if let Found::Key(key) = &whole {
        assert!(key.len() <= 4 * 4096, "a key longer than the scan keeps");
    }
}

/// `data` as a gRPC `ModelInferRequest` message: decoded, and its inputs (typed or raw) made
/// tensors whose bytes fit their shape.
pub fn grpc_infer(data: &[u8]) {
    if let Ok(tensors) = crate::grpc::decode_inputs(data) {
        for tensor in tensors {
            assert_eq!(tensor.data.len(), tensor.elements() * tensor.datatype.size(), "bytes fit the shape");
        }
    }
}

/// `data` as an Open Inference Protocol body in JSON, then encoded as an answer (its inputs
/// returned as outputs, in JSON or binary as the body asks).
pub fn kserve_json(data: &[u8]) {
    kserve(data, None);
}

/// `data` with the binary tensor data extension: its first two bytes (little-endian) are the
/// `Inference-Header-Content-Length`, the rest the body (JSON header, then tensor bytes).
pub fn kserve_binary(data: &[u8]) {
    let [a, b, body @ ..] = data else { return };
    kserve(body, Some(usize::from(u16::from_le_bytes([*a, *b]))));
}

fn kserve(body: &[u8], header_length: Option<usize>) {
    use crate::kserve_codec::{encode_response, parse_request};
    let Ok(request) = parse_request(body, header_length) else { return };
    let outputs = request.inputs.clone();
    if let Ok(encoded) = encode_response("model", "1", &request, outputs) {
        let header = encoded.header_length.unwrap_or(encoded.body.len());
        assert!(header <= encoded.body.len(), "the header length is within the body");
        assert!(serde_json::from_slice::<serde_json::Value>(&encoded.body[..header]).is_ok(), "the header is JSON");
    }
}

/// A folder the fuzz targets write model metadata into (tmpfs where there is one), one per process.
fn scratch_folder() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        let dir = base.join(format!("sightline-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir
    })
}

/// The metadata files a model source supplies, in the order the fuzz input gives them.
const METADATA_FILES: [&str; 4] = ["model_type.json", "environment.json", "class_names.txt", "keypoints_metadata.json"];

/// `data` split at NUL bytes into `model_type.json`, `environment.json`, `class_names.txt` and
/// `keypoints_metadata.json` (a part not given is absent), read as a model load reads them.
pub fn model_metadata(data: &[u8]) {
    let dir = scratch_folder();
    let mut parts = data.splitn(METADATA_FILES.len(), |&b| b == 0);
    for name in METADATA_FILES {
        let path = dir.join(name);
        match parts.next() {
            Some(bytes) => {
                let _ = std::fs::write(&path, bytes);
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let _ = sightline_models::model_config::read_task(dir);
    let _ = sightline_models::model_config::read_model_dir(dir);
}

/// `data` as a cache entry's `manifest.json`, read and checked against an entry that holds one
/// small file; a manifest that is accepted names only files inside the entry.
pub fn manifest(data: &[u8]) {
    use sightline_artifacts::{Manifest, VerifyLevel};
    let dir = scratch_folder().join("entry");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("weights.onnx"), b"0123456789");
    let _ = std::fs::write(dir.join("manifest.json"), data);
    if let Ok(manifest) = Manifest::read(&dir) {
        for name in manifest.files.keys() {
            let path = std::path::Path::new(name);
            assert!(
                path.components().count() == 1
                    && matches!(path.components().next(), Some(std::path::Component::Normal(_))),
                "an accepted manifest names {name:?}"
            );
        }
        let _ = manifest.verify(&dir, VerifyLevel::Sha256);
    }
}

/// `data` as a model archive (`.tar.gz`): read as the `url` source reads one. Must never panic,
/// and an accepted archive hands on only names a cache entry may hold, within the byte limit.
pub fn archive(data: &[u8]) {
    use sightline_artifacts::archive::{read_tar_gz, ArchiveEvent};
    const LIMIT: u64 = 1 << 20;
    let mut total = 0u64;
    let _ = read_tar_gz(data, LIMIT, |event| {
        match event {
            ArchiveEvent::File { name, .. } => {
                assert!(sightline_artifacts::files::is_valid_file_name(&name), "an accepted archive names {name:?}")
            }
            ArchiveEvent::Data(bytes) => {
                total += bytes.len() as u64;
                assert!(total <= LIMIT, "an archive expanded past its limit");
            }
            ArchiveEvent::End => {}
        }
        Ok(())
    });
}
