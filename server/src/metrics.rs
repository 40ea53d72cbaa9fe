//! The server's metrics, for Prometheus (`GET /metrics`, `http::metrics`):
//! requests by route and status with their latency, the audit writer's
//! batches, commits and queue, open WebSockets, the database pool and the
//! audit checkpoint's lag.
//!
//! Each server has a registry of its own (tests run several in one
//! process), written in Prometheus's text format 0.0.4 by the `prometheus`
//! crate, which Debian's `promtool check metrics` reads. (OpenMetrics, as
//! `prometheus-client` writes it, names a counter's family without its
//! `_total`, which that promtool takes for a second, undocumented family;
//! and the `metrics` facade's recorder is one per process.) Recording on
//! the request path is a counter and a histogram per request, found by
//! their labels under a read lock.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// What the audit writer records: it keeps its own, and the registry
/// shows them.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    /// Entries written per batch (its callers' and its pushes').
    pub batch_entries: Histogram,
    /// How long a batch took, from taking the head to its commit.
    pub commit_seconds: Histogram,
    /// Batches that failed (and refused their accesses).
    pub failures: IntCounter,
}

impl WriterMetrics {
    /// New, empty metrics. (Their names and buckets are constants: an
    /// error is a bug, which the unit tests would show.)
    pub fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            batch_entries: Histogram::with_opts(
                HistogramOpts::new(
                    "curbside_audit_writer_batch_entries",
                    "Entries the audit writer appended per batch transaction",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                ]),
            )?,
            commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "curbside_audit_writer_commit_seconds",
                    "Time from taking the audit head to the commit of a batch",
                )
                .buckets(SECONDS.to_vec()),
            )?,
            failures: IntCounter::with_opts(Opts::new(
                "curbside_audit_writer_failures_total",
                "Audit writer batches that failed, refusing their accesses",
            ))?,
        })
    }
}

/// Latency buckets, in seconds.
const SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Everything `/metrics` shows.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by method, route and status.
    requests: IntCounterVec,
    /// Request latency by method and route.
    latency: HistogramVec,
    /// The audit writer's queue, read at each scrape.
    pub audit_queue: IntGauge,
    /// Entries appended since the last signed checkpoint, read at each
    /// scrape.
    pub checkpoint_lag: IntGauge,
    /// Seconds since the last signed checkpoint, read at each scrape.
    pub checkpoint_age: IntGauge,
    /// Open WebSockets (live events), read at each scrape.
    pub websockets: IntGauge,
    /// Database pool connections by state (`idle`, `in_use`, `max`), read
    /// at each scrape.
    pub pool: IntGaugeVec,
}

impl Metrics {
    /// A registry with the request metrics and the audit writer's.
    pub fn new(writer: &WriterMetrics) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help));
        let metrics = Self {
            registry: Registry::new(),
            requests: IntCounterVec::new(
                Opts::new(
                    "curbside_http_requests_total",
                    "HTTP requests answered, by method, matched route and status",
                ),
                &["method", "route", "status"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "curbside_http_request_duration_seconds",
                    "Time to answer an HTTP request, by method and matched route",
                )
                .buckets(SECONDS.to_vec()),
                &["method", "route"],
            )?,
            audit_queue: gauge(
                "curbside_audit_writer_queue_depth",
                "Accesses waiting for the audit writer",
            )?,
            checkpoint_lag: gauge(
                "curbside_audit_checkpoint_lag_entries",
                "Audit entries appended since the last signed checkpoint",
            )?,
            checkpoint_age: gauge(
                "curbside_audit_checkpoint_age_seconds",
                "Seconds since the last signed audit checkpoint",
            )?,
            websockets: gauge(
                "curbside_websockets_open",
                "Open live-event WebSockets on this server",
            )?,
            pool: IntGaugeVec::new(
                Opts::new(
                    "curbside_db_pool_connections",
                    "Database pool connections: idle, in use, and the most allowed",
                ),
                &["state"],
            )?,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(metrics.requests.clone()),
            Box::new(metrics.latency.clone()),
            Box::new(metrics.audit_queue.clone()),
            Box::new(metrics.checkpoint_lag.clone()),
            Box::new(metrics.checkpoint_age.clone()),
            Box::new(metrics.websockets.clone()),
            Box::new(metrics.pool.clone()),
            Box::new(writer.batch_entries.clone()),
            Box::new(writer.commit_seconds.clone()),
            Box::new(writer.failures.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }

    /// One request answered: its method (one of HTTP's, or `other`), its
    /// route's pattern (never the raw path) and its status.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut digits = [0u8; 3];
        let status = status_text(status, &mut digits);
        self.requests
            .with_label_values(&[method, route, status])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Everything, in Prometheus's text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|error| prometheus::Error::Msg(error.to_string()))
    }
}

/// A status's three digits, without allocating.
fn status_text(status: u16, digits: &mut [u8; 3]) -> &str {
    let status = status.clamp(100, 999);
    digits[0] = b'0' + u8::try_from(status / 100).unwrap_or(0);
    digits[1] = b'0' + u8::try_from(status / 10 % 10).unwrap_or(0);
    digits[2] = b'0' + u8::try_from(status % 10).unwrap_or(0);
    std::str::from_utf8(digits).unwrap_or("000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_builds_and_renders_with_help_and_type() {
        let writer = WriterMetrics::new().unwrap();
        writer.batch_entries.observe(3.0);
        writer.commit_seconds.observe(0.002);
        let metrics = Metrics::new(&writer).unwrap();
        metrics.request("GET", "/v1/me", 200, 0.003);
        metrics.request("POST", "/v1/threads", 404, 0.003);
        metrics.pool.with_label_values(&["idle"]).set(2);
        let text = metrics.render().unwrap();
        for name in [
            "curbside_http_requests_total",
            "curbside_http_request_duration_seconds",
            "curbside_audit_writer_batch_entries",
            "curbside_audit_writer_commit_seconds",
            "curbside_audit_writer_failures_total",
            "curbside_audit_writer_queue_depth",
            "curbside_audit_checkpoint_lag_entries",
            "curbside_audit_checkpoint_age_seconds",
            "curbside_websockets_open",
            "curbside_db_pool_connections",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}:\n{text}");
        }
        assert!(text.contains(
            "curbside_http_requests_total{method=\"GET\",route=\"/v1/me\",status=\"200\"} 1"
        ));
        assert!(text.contains("curbside_audit_writer_batch_entries_sum 3"));
        assert!(text.contains("status=\"404\"} 1"));
    }
}
