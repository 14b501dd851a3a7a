//! Where providers keep what they compile, inside the model's cache entry
//! (`MODEL_CACHE_DIR/<dataset>/<version>/`): a restart finds it, and a refetched model (whose entry
//! is replaced) starts clean. Keys hold everything the compiled form is only valid for.

use std::path::{Path, PathBuf};

use crate::provider::{OpenVinoDevice, OpenVinoPrecision};

/// Keeps a key to characters safe in one path segment.
fn segment(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

/// TensorRT engines and timing caches: valid for one GPU model and one TensorRT version.
pub fn tensorrt_cache_dir(entry: &Path, gpu: &str, tensorrt_version: &str) -> PathBuf {
    entry.join("tensorrt").join(format!("{}-trt{}", segment(gpu), segment(tensorrt_version)))
}

/// OpenVINO's compiled blobs: per device and inference precision.
pub fn openvino_cache_dir(entry: &Path, device: OpenVinoDevice, precision: OpenVinoPrecision) -> PathBuf {
    entry.join("openvino").join(format!("{}-{}", device.name(), precision.name()))
}

/// The folder of a cache entry that holds ONNX Runtime's optimised graphs, one subfolder per key.
pub fn optimized_graphs_dir(entry: &Path) -> PathBuf {
    entry.join("ort-optimized")
}

/// ONNX Runtime's optimised graph of `file` for the CPU provider. The graph holds layout
/// transforms for this CPU's vector width (NCHWc blocks of 8 floats on AVX2, 16 on AVX-512), so it
/// is keyed by the runtime's version and the instruction set it was optimised for, and by the
/// version of Sightline's own rewrites when they were applied.
pub fn optimized_graph_path(entry: &Path, file: &Path, runtime_version: &str, rewrites: Option<&str>) -> PathBuf {
    let name = file.file_name().map_or_else(|| "model.onnx".into(), |n| segment(&n.to_string_lossy()));
    let mut key = format!("cpu-ort{}-{}", segment(runtime_version), cpu_isa());
    if let Some(version) = rewrites {
        key = format!("{key}-{}", segment(version));
    }
    optimized_graphs_dir(entry).join(key).join(name)
}

/// The widest vector instruction set ONNX Runtime's CPU kernels pick on this machine.
fn cpu_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
        "sse"
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::env::consts::ARCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorrt_caches_are_keyed_by_gpu_and_tensorrt_version_under_the_entry() {
        let entry = Path::new("/data/models/coco/3");
        let dir = tensorrt_cache_dir(entry, "NVIDIA H200-sm9.0", "10.13.3");
        assert_eq!(dir, Path::new("/data/models/coco/3/tensorrt/NVIDIA_H200-sm9.0-trt10.13.3"));
        assert_ne!(dir, tensorrt_cache_dir(entry, "NVIDIA H200-sm9.0", "10.14.0"), "a new TensorRT rebuilds");
        assert_ne!(dir, tensorrt_cache_dir(entry, "NVIDIA L4-sm8.9", "10.13.3"), "another GPU rebuilds");
        let odd = tensorrt_cache_dir(entry, "../../etc/x", "1/2");
        assert!(odd.starts_with("/data/models/coco/3/tensorrt/") && odd.components().count() == 7, "{odd:?}");
    }

    #[test]
    fn optimized_graphs_are_keyed_by_runtime_version_and_instruction_set() {
        let path = optimized_graph_path(Path::new("/c/ppocr/4"), Path::new("/c/ppocr/4/det.onnx"), "1.31.1", None);
        assert!(path.to_string_lossy().starts_with("/c/ppocr/4/ort-optimized/cpu-ort1.31.1-"), "{path:?}");
        assert_eq!(path.file_name().unwrap(), "det.onnx");
        assert_ne!(path, optimized_graph_path(Path::new("/c/ppocr/4"), Path::new("det.onnx"), "1.32.0", None));
        let rewritten = optimized_graph_path(Path::new("/c/ppocr/4"), Path::new("det.onnx"), "1.31.1", Some("rw2"));
        assert!(rewritten.parent().unwrap().to_string_lossy().ends_with("-rw2"), "{rewritten:?}");
        assert_ne!(rewritten, path, "a graph with the rewrites is not one without");
    }

    #[test]
    fn openvino_caches_are_keyed_by_device_and_precision() {
        let entry = Path::new("/c/shapes/1");
        assert_eq!(
            openvino_cache_dir(entry, OpenVinoDevice::Cpu, OpenVinoPrecision::F32),
            Path::new("/c/shapes/1/openvino/CPU-f32")
        );
        assert_eq!(
            openvino_cache_dir(entry, OpenVinoDevice::Gpu, OpenVinoPrecision::F16),
            Path::new("/c/shapes/1/openvino/GPU-f16")
        );
    }
}
