//! The host's NVIDIA GPUs as NVML sees them, and the placement of new models on them.
//!
//! One source of GPU facts serves three readers that must agree: the placer (which device a new
//! model goes to), the memory-pressure probe (is there room on *that* device), and the metrics and
//! registry documents (what each device holds).

use std::sync::Mutex;

use nvml_wrapper::Nvml;

/// One device at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSnapshot {
    /// NVML's index, which is also the CUDA device id when `CUDA_VISIBLE_DEVICES` is unset.
    pub index: u32,
    pub name: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
    /// Percent of the last sample period a kernel ran; `None` where the driver does not say.
    pub utilization_percent: Option<u32>,
    /// `major.minor`, e.g. `9.0` for an H100/H200.
    pub compute_capability: Option<String>,
}

impl GpuSnapshot {
    pub fn free_fraction(&self) -> Option<f64> {
        (self.total_bytes > 0)
            .then(|| self.total_bytes.saturating_sub(self.used_bytes) as f64 / self.total_bytes as f64)
    }
}

/// Where GPU facts come from: NVML on a real host, a table in tests.
pub trait GpuSource: Send + Sync {
    /// Every device the driver reports.
    fn device_count(&self) -> u32;
    fn snapshot(&self, index: u32) -> Option<GpuSnapshot>;
}

/// NVML through `libnvidia-ml.so.1`, opened at run time (present wherever the NVIDIA driver is,
/// including containers started with `--gpus all`).
pub struct NvmlSource {
    nvml: Mutex<Nvml>,
    count: u32,
}

impl NvmlSource {
    /// `Err` with the reason when there is no driver or no device.
    pub fn try_new() -> Result<Self, String> {
        let nvml =
            Nvml::init().map_err(|e| format!("NVML unavailable (libnvidia-ml.so.1, from the NVIDIA driver): {e}"))?;
        let count = nvml.device_count().map_err(|e| format!("NVML device count: {e}"))?;
        if count == 0 {
            return Err("NVML reports no GPU".into());
        }
        Ok(NvmlSource { nvml: Mutex::new(nvml), count })
    }
}

impl GpuSource for NvmlSource {
    fn device_count(&self) -> u32 {
        self.count
    }

    fn snapshot(&self, index: u32) -> Option<GpuSnapshot> {
        let nvml = self.nvml.lock().ok()?;
        let device = nvml.device_by_index(index).ok()?;
        let memory = device.memory_info().ok()?;
        Some(GpuSnapshot {
            index,
            name: device.name().unwrap_or_else(|_| "unknown".into()),
            used_bytes: memory.used,
            total_bytes: memory.total,
            utilization_percent: device.utilization_rates().ok().map(|u| u.gpu),
            compute_capability: device.cuda_compute_capability().ok().map(|c| format!("{}.{}", c.major, c.minor)),
        })
    }
}

/// Two devices whose used memory differs by less than this count as equally used, so that a fresh
/// multi-GPU host (where every device shows a few MiB of driver overhead) fills round robin.
pub const EQUAL_USE_BYTES: u64 = 256 << 20;

/// The devices models may go to (`DEVICE_IDS`), and the rule that picks one for each new model:
/// least used memory first, round robin among devices used about equally.
pub struct DevicePlacer {
    source: Box<dyn GpuSource>,
    devices: Vec<u32>,
    /// The device the last model went to, for the round robin.
    last: Mutex<Option<u32>>,
}

impl DevicePlacer {
    /// `devices` empty means every device the source reports.
    pub fn new(source: Box<dyn GpuSource>, devices: &[u32]) -> Result<Self, String> {
        let count = source.device_count();
        if let Some(bad) = devices.iter().find(|&&d| d >= count) {
            return Err(format!("DEVICE_IDS names GPU {bad}, but the driver reports {count} (0..{count})"));
        }
        let devices = if devices.is_empty() { (0..count).collect() } else { devices.to_vec() };
        Ok(DevicePlacer { source, devices, last: Mutex::new(None) })
    }

    pub fn devices(&self) -> &[u32] {
        &self.devices
    }

    pub fn snapshots(&self) -> Vec<GpuSnapshot> {
        self.devices.iter().filter_map(|&d| self.source.snapshot(d)).collect()
    }

    pub fn snapshot(&self, index: u32) -> Option<GpuSnapshot> {
        self.source.snapshot(index)
    }

    fn choose(&self, last: Option<u32>) -> Option<GpuSnapshot> {
        let snapshots = self.snapshots();
        let least = snapshots.iter().map(|s| s.used_bytes).min()?;
        let tied: Vec<&GpuSnapshot> = snapshots.iter().filter(|s| s.used_bytes <= least + EQUAL_USE_BYTES).collect();
        // The first tied device after the last one placed, in DEVICE_IDS order, wrapping around.
        let position = |s: &&GpuSnapshot| self.devices.iter().position(|&d| d == s.index).unwrap_or(0);
        let after = last.and_then(|l| self.devices.iter().position(|&d| d == l));
        let chosen = match after {
            Some(after) => tied.iter().find(|s| position(s) > after).or_else(|| tied.first()),
            None => tied.first(),
        };
        chosen.map(|s| (*s).clone())
    }

    /// The device the next model would go to, without claiming it (the memory-pressure check).
    pub fn peek(&self) -> Option<GpuSnapshot> {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        self.choose(last)
    }

    /// Picks the device for a model being loaded now.
    pub fn place(&self) -> Option<GpuSnapshot> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let chosen = self.choose(*last)?;
        *last = Some(chosen.index);
        Some(chosen)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// A GPU table that tests change between calls.
    #[derive(Clone, Default)]
    pub struct FakeGpus(pub Arc<Mutex<Vec<(u64, u64)>>>);

    impl FakeGpus {
        pub fn new(used_total: &[(u64, u64)]) -> Self {
            FakeGpus(Arc::new(Mutex::new(used_total.to_vec())))
        }
        pub fn set_used(&self, index: usize, used: u64) {
            self.0.lock().unwrap()[index].0 = used;
        }
    }

    impl GpuSource for FakeGpus {
        fn device_count(&self) -> u32 {
            self.0.lock().unwrap().len() as u32
        }
        fn snapshot(&self, index: u32) -> Option<GpuSnapshot> {
            let (used, total) = *self.0.lock().unwrap().get(index as usize)?;
            Some(GpuSnapshot {
                index,
                name: "fake".into(),
                used_bytes: used,
                total_bytes: total,
                utilization_percent: None,
                compute_capability: None,
            })
        }
    }

    const GB: u64 = 1 << 30;

    #[test]
    fn equal_devices_fill_round_robin() {
        let gpus = FakeGpus::new(&[(0, 80 * GB), (0, 80 * GB), (100 << 20, 80 * GB)]);
        let placer = DevicePlacer::new(Box::new(gpus), &[]).unwrap();
        let order: Vec<u32> = (0..6).map(|_| placer.place().unwrap().index).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2], "used memory within EQUAL_USE_BYTES counts as equal");
    }

    #[test]
    fn the_least_used_device_comes_first() {
        let gpus = FakeGpus::new(&[(10 * GB, 80 * GB), (2 * GB, 80 * GB), (5 * GB, 80 * GB)]);
        let placer = DevicePlacer::new(Box::new(gpus.clone()), &[]).unwrap();
        assert_eq!(placer.peek().unwrap().index, 1, "peek says where the next model goes");
        assert_eq!(placer.place().unwrap().index, 1);
        gpus.set_used(1, 12 * GB); // the model landed there
        assert_eq!(placer.place().unwrap().index, 2);
        gpus.set_used(2, 12 * GB);
        assert_eq!(placer.place().unwrap().index, 0);
    }

    #[test]
    fn device_ids_restrict_and_order_the_choice() {
        let gpus = FakeGpus::new(&[(0, 80 * GB), (0, 80 * GB), (0, 80 * GB), (0, 80 * GB)]);
        let placer = DevicePlacer::new(Box::new(gpus), &[3, 1]).unwrap();
        let order: Vec<u32> = (0..4).map(|_| placer.place().unwrap().index).collect();
        assert_eq!(order, [3, 1, 3, 1]);
        let gpus = FakeGpus::new(&[(0, 80 * GB)]);
        let error = DevicePlacer::new(Box::new(gpus), &[0, 2]).err().unwrap();
        assert!(error.contains("GPU 2") && error.contains("reports 1"), "{error}");
    }

    #[test]
    fn free_fraction_of_a_snapshot() {
        let gpus = FakeGpus::new(&[(20 * GB, 80 * GB)]);
        assert_eq!(gpus.snapshot(0).unwrap().free_fraction(), Some(0.75));
    }
}
