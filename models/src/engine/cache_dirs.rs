//! Where providers keep what they compile, inside the model's cache entry
//! (`MODEL_CACHE_DIR/<dataset>/<version>/`): a restart finds it, and a refetched model (whose entry
//! is replaced) starts clean. Keys hold everything the compiled form is only valid for.

use std::path::{Path, PathBuf};

use super::provider::{OpenVinoDevice, OpenVinoPrecision};

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
