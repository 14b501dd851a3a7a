//! Per-GPU memory and utilisation, read from NVML at each scrape. Registered only where NVML sees
//! a GPU, so a CPU host has no such series rather than zeros.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};
use sightline_engine::DevicePlacer;

pub struct GpuCollector {
    gpus: Arc<DevicePlacer>,
    used: IntGaugeVec,
    total: IntGaugeVec,
    utilization: GaugeVec,
}

impl GpuCollector {
    pub fn new(gpus: Arc<DevicePlacer>) -> Result<GpuCollector, prometheus::Error> {
        let labels = &["gpu", "name"];
        Ok(GpuCollector {
            gpus,
            used: IntGaugeVec::new(Opts::new("sightline_gpu_memory_used_bytes", "GPU memory in use (NVML)."), labels)?,
            total: IntGaugeVec::new(
                Opts::new("sightline_gpu_memory_total_bytes", "GPU memory in all (NVML)."),
                labels,
            )?,
            utilization: GaugeVec::new(
                Opts::new("sightline_gpu_utilization_ratio", "Fraction of the last sample period a kernel ran (NVML)."),
                labels,
            )?,
        })
    }
}

impl Collector for GpuCollector {
    fn desc(&self) -> Vec<&Desc> {
        [self.used.desc(), self.total.desc(), self.utilization.desc()].concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.used.reset();
        self.total.reset();
        self.utilization.reset();
        for gpu in self.gpus.snapshots() {
            let index = gpu.index.to_string();
            let labels = [index.as_str(), gpu.name.as_str()];
            self.used.with_label_values(&labels).set(i64::try_from(gpu.used_bytes).unwrap_or(i64::MAX));
            self.total.with_label_values(&labels).set(i64::try_from(gpu.total_bytes).unwrap_or(i64::MAX));
            if let Some(percent) = gpu.utilization_percent {
                self.utilization.with_label_values(&labels).set(f64::from(percent) / 100.0);
            }
        }
        [self.used.collect(), self.total.collect(), self.utilization.collect()].concat()
    }
}
