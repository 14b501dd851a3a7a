//! The model cache's memory probes: free GPU memory through NVML, or free host memory.

use std::sync::Arc;

use sightline_core::MemoryProbe;

use crate::gpu::DevicePlacer;

/// Host memory from `/proc/meminfo` (`MemAvailable / MemTotal`), for hosts without a GPU.
pub struct HostMemoryProbe {
    path: std::path::PathBuf,
}

impl HostMemoryProbe {
    pub fn new() -> Self {
        HostMemoryProbe { path: "/proc/meminfo".into() }
    }
}

impl Default for HostMemoryProbe {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses the `MemTotal` and `MemAvailable` lines (kB) of a meminfo document.
pub fn parse_meminfo_free_fraction(text: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].trim().trim_end_matches("kB").trim().parse::<f64>().ok()
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    (total > 0.0).then(|| (available / total).clamp(0.0, 1.0))
}

impl MemoryProbe for HostMemoryProbe {
    fn name(&self) -> &'static str {
        "host"
    }

    fn free_fraction(&self) -> Option<f64> {
        parse_meminfo_free_fraction(&std::fs::read_to_string(&self.path).ok()?)
    }
}

/// The free memory of the GPU the next model will be placed on (NVML, per device): evicting helps
/// only where the new model goes.
pub struct GpuMemoryProbe {
    placer: Arc<DevicePlacer>,
}

impl GpuMemoryProbe {
    pub fn new(placer: Arc<DevicePlacer>) -> Self {
        GpuMemoryProbe { placer }
    }
}

impl MemoryProbe for GpuMemoryProbe {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn free_fraction(&self) -> Option<f64> {
        self.placer.peek()?.free_fraction()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:    6000000 kB\n";
        assert_eq!(parse_meminfo_free_fraction(text), Some(0.25));
        assert_eq!(parse_meminfo_free_fraction("MemTotal: 10 kB\n"), None);
    }

    #[test]
    fn host_probe_reads_this_machine() {
        let f = HostMemoryProbe::new().free_fraction().expect("/proc/meminfo readable on Linux");
        assert!(f > 0.0 && f <= 1.0, "{f}");
    }

    #[test]
    fn nvml_without_a_driver_is_a_clean_error_not_a_panic() {
        // On a GPU host this succeeds; elsewhere it must say why instead of panicking.
        match crate::gpu::NvmlSource::try_new() {
            Ok(source) => assert!(crate::gpu::GpuSource::snapshot(&source, 0).is_some()),
            Err(reason) => assert!(reason.contains("NVML"), "{reason}"),
        }
    }

    #[test]
    fn the_gpu_probe_reads_the_device_the_next_model_goes_to() {
        const GB: u64 = 1 << 30;
        let gpus = crate::gpu::tests::FakeGpus::new(&[(60 * GB, 80 * GB), (20 * GB, 80 * GB)]);
        let placer = Arc::new(DevicePlacer::new(Box::new(gpus.clone()), &[]).unwrap());
        let probe = GpuMemoryProbe::new(placer.clone());
        assert_eq!(probe.free_fraction(), Some(0.75), "device 1, the least used, not the minimum over devices");
        gpus.set_used(1, 70 * GB);
        assert_eq!(probe.free_fraction(), Some(0.25), "now device 0 is where a model would go");
    }
}
