//! What the artifact cache reports: downloads (attempts, failures, bytes) by source, and how each
//! use of the disk cache went (hit, miss, refetch of a copy that failed its check, stale copy).

use prometheus::{IntCounterVec, Opts, Registry};

/// The kinds of failure a fetch from a source can end in (`CoreError::kind`).
const SOURCE_FAILURES: [&str; 10] = [
    "model_not_found",
    "source_unauthorized",
    "source_forbidden",
    "source_payment_required",
    "source_locked",
    "source_unavailable",
    "source_timeout",
    "source_bad_response",
    "broken_model",
    "cache",
];

#[derive(Clone)]
pub struct ArtifactMetrics {
    attempts: IntCounterVec,
    failures: IntCounterVec,
    bytes: IntCounterVec,
    lookups: IntCounterVec,
}

/// How one use of the cache was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    /// The copy failed its check against the manifest and was fetched again.
    Refetch,
    /// The source says the model changed since the copy was made.
    Stale,
}

impl Lookup {
    fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Refetch => "refetch",
            Lookup::Stale => "stale",
        }
    }
}

impl ArtifactMetrics {
    /// Families registered nowhere until [`ArtifactMetrics::register`].
    pub fn new() -> ArtifactMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            // The names and labels are constants: building them cannot fail.
            IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("artifact metric definitions are valid: {e}"))
        };
        ArtifactMetrics {
            attempts: counter(
                "sightline_model_download_attempts_total",
                "Attempts to fetch a model from a source (retries count again).",
                &["source"],
            ),
            failures: counter(
                "sightline_model_download_failures_total",
                "Failed fetch attempts, by source and error kind (model_not_found: the source lacks it).",
                &["source", "kind"],
            ),
            bytes: counter("sightline_model_download_bytes_total", "Bytes of models fetched, by source.", &["source"]),
            lookups: counter(
                "sightline_model_cache_lookups_total",
                "Uses of the disk cache: hit, miss, refetch (the copy failed its check) or stale (the source changed).",
                &["result"],
            ),
        }
    }

    /// Every series whose labels are known before any download, at 0, so that dashboards and
    /// alerts read 0 rather than "no data": each lookup result, and per source its attempts, bytes
    /// and the failures a source can have.
    pub fn start_at_zero(&self, sources: &[&str]) {
        for lookup in [Lookup::Hit, Lookup::Miss, Lookup::Refetch, Lookup::Stale] {
            self.lookups.with_label_values(&[lookup.as_str()]);
        }
        for source in sources {
            self.attempts.with_label_values(&[source]);
            self.bytes.with_label_values(&[source]);
            for kind in SOURCE_FAILURES {
                self.failures.with_label_values(&[source, kind]);
            }
        }
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.attempts.clone()))?;
        registry.register(Box::new(self.failures.clone()))?;
        registry.register(Box::new(self.bytes.clone()))?;
        registry.register(Box::new(self.lookups.clone()))
    }

    pub(super) fn lookup(&self, lookup: Lookup) {
        self.lookups.with_label_values(&[lookup.as_str()]).inc();
    }

    pub(super) fn attempt(&self, source: &str) {
        self.attempts.with_label_values(&[source]).inc();
    }

    pub(super) fn failure(&self, source: &str, kind: &str) {
        self.failures.with_label_values(&[source, kind]).inc();
    }

    pub(super) fn downloaded(&self, source: &str, bytes: u64) {
        self.bytes.with_label_values(&[source]).inc_by(bytes);
    }
}

impl Default for ArtifactMetrics {
    fn default() -> Self {
        ArtifactMetrics::new()
    }
}
