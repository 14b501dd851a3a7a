//! Where "memory pressure" comes from: free GPU memory through NVML, or free host memory.

use std::sync::Mutex;

use nvml_wrapper::Nvml;

/// Reports the fraction of memory that is free, in `[0, 1]`; `None` when it cannot be read.
pub trait MemoryProbe: Send + Sync {
    fn name(&self) -> &'static str;
    fn free_fraction(&self) -> Option<f64>;
}

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

/// GPU memory through NVML (`libnvidia-ml.so.1` is opened at run time). The lowest free fraction
/// over all devices counts, since a model may land on any of them.
pub struct NvmlMemoryProbe {
    nvml: Mutex<Nvml>,
    device_count: u32,
}

impl NvmlMemoryProbe {
    /// `Err` with the reason when there is no NVIDIA driver or no device: the caller falls back to host memory.
    pub fn try_new() -> Result<Self, String> {
        let nvml = Nvml::init().map_err(|e| format!("NVML unavailable: {e}"))?;
        let device_count = nvml.device_count().map_err(|e| format!("NVML device count: {e}"))?;
        if device_count == 0 {
            return Err("NVML reports no GPU".into());
        }
        Ok(NvmlMemoryProbe { nvml: Mutex::new(nvml), device_count })
    }
}

impl MemoryProbe for NvmlMemoryProbe {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn free_fraction(&self) -> Option<f64> {
        let nvml = self.nvml.lock().ok()?;
        (0..self.device_count)
            .filter_map(|i| {
                let info = nvml.device_by_index(i).ok()?.memory_info().ok()?;
                (info.total > 0).then(|| info.free as f64 / info.total as f64)
            })
            .reduce(f64::min)
    }
}

/// The GPU probe where NVML works, else host memory.
pub fn detect_memory_probe() -> Box<dyn MemoryProbe> {
    match NvmlMemoryProbe::try_new() {
        Ok(probe) => Box::new(probe),
        Err(reason) => {
            tracing::info!(%reason, "no GPU memory probe; memory pressure is read from host memory");
            Box::new(HostMemoryProbe::new())
        }
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
        match NvmlMemoryProbe::try_new() {
            Ok(probe) => assert!(probe.free_fraction().is_some()),
            Err(reason) => assert!(reason.contains("NVML")),
        }
    }
}
