//! Prometheus families as every crate defines them: a family is its name, help, labels (and
//! buckets), built and, where a registry is given, registered in the same step.

use prometheus::core::Collector;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Where new families go: into `registry`, or nowhere (benchmarks and tests that read none).
#[derive(Clone, Copy)]
pub struct Families<'r> {
    registry: Option<&'r Registry>,
}

impl<'r> Families<'r> {
    pub fn registered_in(registry: &'r Registry) -> Families<'r> {
        Families { registry: Some(registry) }
    }

    pub fn unregistered() -> Families<'static> {
        Families { registry: None }
    }

    pub fn counter(self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    pub fn gauge(self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    /// A gauge of fractional values (a timestamp in seconds).
    pub fn float_gauge(self, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    pub fn histogram(
        self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> Result<HistogramVec, prometheus::Error> {
        self.add(HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels)?)
    }

    fn add<C: Collector + Clone + 'static>(self, family: C) -> Result<C, prometheus::Error> {
        if let Some(registry) = self.registry {
            registry.register(Box::new(family.clone()))?;
        }
        Ok(family)
    }
}
