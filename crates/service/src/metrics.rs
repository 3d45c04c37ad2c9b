//! Prometheus metrics for `/metrics` (OpenMetrics text).
//!
//! Counters and histograms are updated where things happen (intake, writer, workers,
//! poller). Two groups are read only at scrape time, because their source of truth lives
//! elsewhere: the queue depth (the database) and the API call counts (the clients, which
//! count every attempt, retries and 429s included, for all work on their token).

use std::sync::Mutex;
use std::time::Duration;

use bridge_core::record::QueueDepth;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// One label, e.g. `[("reason", "signature_invalid")]`.
pub type Label1 = [(&'static str, &'static str); 1];
/// Two labels.
pub type Label2 = [(&'static str, &'static str); 2];

/// Every metric the service exports. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests to `/webhooks/asana/{id}` that were accepted, by `kind`
    /// (`events`, `heartbeat`, `handshake`).
    pub deliveries_received: Family<Label1, Counter>,
    /// Requests refused, by `reason`.
    pub deliveries_rejected: Family<Label1, Counter>,
    /// Events found in accepted deliveries and Events API pages, by `source`.
    pub events_received: Family<Label1, Counter>,
    /// Events of signed deliveries that did not have Asana's shape and were skipped.
    pub events_malformed: Counter,
    /// Jobs offered to the queue, by `result` (`new`, `duplicate`).
    pub jobs_enqueued: Family<Label1, Counter>,
    /// Jobs per state, read from the database at scrape time.
    pub queue_depth: Family<Label1, Gauge>,
    /// HTTP connections open now (at most `max_connections`).
    pub connections_open: Gauge,
    /// Reconcile outcomes, by `target` (`portal`, `room`, `project`) and `outcome`.
    pub actions: Family<Label2, Counter>,
    /// How job attempts ended, by `result` (`done`, `retry`, `dead`, `released`).
    pub jobs_finished: Family<Label1, Counter>,
    /// HTTP attempts to each `service` (`asana`, `docspace`), retries included.
    pub api_requests: Family<Label1, Counter>,
    /// 429 answers met, per `service`.
    pub api_rate_limited: Family<Label1, Counter>,
    /// Attempts repeated by the clients, per `service`.
    pub api_retries: Family<Label1, Counter>,
    /// Events API polls, by `result` (`ok`, `resync`, `error`).
    pub watch_polls: Family<Label1, Counter>,
    /// Time from a delivery's first byte to our answer.
    pub delivery_seconds: Histogram,
    /// One group-commit transaction.
    pub commit_seconds: Histogram,
    /// Jobs per group-commit transaction.
    pub commit_batch_jobs: Histogram,
    /// One job attempt, from claim to verdict.
    pub job_seconds: Histogram,
    /// From enqueue to the job being done: what a user waits for after an assignment.
    pub enqueue_to_done_seconds: Histogram,
    /// Deliveries received and rejected per minute over the last hour (the status page).
    pub last_hour: crate::admin::recent::LastHour,
    /// Client counters already exported, to turn cumulative totals into increments.
    last_api: Mutex<(asana_api::Metrics, docspace_api::Metrics)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `asana_docspace` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("asana_docspace");
        let m = Metrics {
            registry: Registry::default(),
            deliveries_received: Family::default(),
            deliveries_rejected: Family::default(),
            last_hour: Default::default(),
            events_received: Family::default(),
            events_malformed: Counter::default(),
            jobs_enqueued: Family::default(),
            queue_depth: Family::default(),
            connections_open: Gauge::default(),
            actions: Family::default(),
            jobs_finished: Family::default(),
            api_requests: Family::default(),
            api_rate_limited: Family::default(),
            api_retries: Family::default(),
            watch_polls: Family::default(),
            // 0.25 ms … 8 s: the answer must stay far inside Asana's 10 s.
            delivery_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            commit_batch_jobs: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 5 ms … 5 min.
            job_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 17)),
            enqueue_to_done_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 20)),
            last_api: Mutex::new(Default::default()),
        };
        registry.register(
            "deliveries_received",
            "Webhook requests accepted, by kind",
            m.deliveries_received.clone(),
        );
        registry.register(
            "deliveries_rejected",
            "Webhook requests refused, by reason",
            m.deliveries_rejected.clone(),
        );
        registry.register(
            "events_received",
            "Asana events received, by source",
            m.events_received.clone(),
        );
        registry.register(
            "events_malformed",
            "Events of signed deliveries skipped because they do not have Asana's shape",
            m.events_malformed.clone(),
        );
        registry.register(
            "jobs_enqueued",
            "Jobs offered to the queue, by result (new or duplicate)",
            m.jobs_enqueued.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs in the queue, by state",
            m.queue_depth.clone(),
        );
        registry.register(
            "connections_open",
            "HTTP connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "actions",
            "Reconcile outcomes, by target and outcome",
            m.actions.clone(),
        );
        registry.register(
            "jobs_finished",
            "Job attempts, by how they ended",
            m.jobs_finished.clone(),
        );
        registry.register(
            "api_requests",
            "HTTP attempts sent, by service (retries included)",
            m.api_requests.clone(),
        );
        registry.register(
            "api_rate_limited",
            "429 answers met, by service",
            m.api_rate_limited.clone(),
        );
        registry.register(
            "api_retries",
            "Attempts repeated by the API clients, by service",
            m.api_retries.clone(),
        );
        registry.register(
            "watch_polls",
            "Events API polls, by result",
            m.watch_polls.clone(),
        );
        registry.register(
            "delivery_duration_seconds",
            "Time to answer a webhook delivery",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "Duration of one group-commit transaction",
            m.commit_seconds.clone(),
        );
        registry.register(
            "commit_batch_jobs",
            "Jobs written per group-commit transaction",
            m.commit_batch_jobs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Duration of one job attempt",
            m.job_seconds.clone(),
        );
        registry.register(
            "enqueue_to_done_seconds",
            "Time from enqueue to a job being done",
            m.enqueue_to_done_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a refused delivery.
    pub fn rejected(&self, reason: &'static str) {
        self.deliveries_rejected
            .get_or_create(&[("reason", reason)])
            .inc();
        self.last_hour.rejected();
    }

    /// Counts an accepted delivery.
    pub fn received(&self, kind: &'static str) {
        self.deliveries_received
            .get_or_create(&[("kind", kind)])
            .inc();
        self.last_hour.received();
    }

    /// Counts a reconcile outcome.
    pub fn action(&self, target: &'static str, outcome: &'static str) {
        self.actions
            .get_or_create(&[("target", target), ("outcome", outcome)])
            .inc();
    }

    /// Counts how a job attempt ended.
    pub fn finished(&self, result: &'static str) {
        self.jobs_finished
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// Observes a duration on a histogram.
    pub fn observe(h: &Histogram, d: Duration) {
        h.observe(d.as_secs_f64());
    }

    /// Sets the queue-depth gauges (called at scrape time).
    pub fn set_queue_depth(&self, d: QueueDepth) {
        for (state, n) in [
            ("queued", d.queued),
            ("running", d.running),
            ("dead", d.dead),
        ] {
            self.queue_depth
                .get_or_create(&[("state", state)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Brings the per-service API counters up to the clients' totals.
    pub fn sync_api(&self, asana: asana_api::Metrics, docspace: docspace_api::Metrics) {
        let mut last = self.last_api.lock().unwrap_or_else(|e| e.into_inner());
        let (la, ld) = *last;
        let add = |f: &Family<Label1, Counter>, service: &'static str, now: u64, before: u64| {
            f.get_or_create(&[("service", service)])
                .inc_by(now.saturating_sub(before));
        };
        add(&self.api_requests, "asana", asana.requests, la.requests);
        add(
            &self.api_rate_limited,
            "asana",
            asana.rate_limited,
            la.rate_limited,
        );
        add(&self.api_retries, "asana", asana.retries, la.retries);
        add(
            &self.api_requests,
            "docspace",
            docspace.requests,
            ld.requests,
        );
        add(
            &self.api_rate_limited,
            "docspace",
            docspace.rate_limited,
            ld.rate_limited,
        );
        add(&self.api_retries, "docspace", docspace.retries, ld.retries);
        *last = (asana, docspace);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; keep whatever was written.
            tracing::warn!("encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_counters_export_increments_of_the_client_totals() {
        let m = Metrics::new();
        let a = asana_api::Metrics {
            requests: 10,
            rate_limited: 2,
            retries: 3,
        };
        m.sync_api(a, docspace_api::Metrics::default());
        let a2 = asana_api::Metrics { requests: 15, ..a };
        m.sync_api(a2, docspace_api::Metrics::default());
        let text = m.encode();
        assert!(
            text.contains("asana_docspace_api_requests_total{service=\"asana\"} 15"),
            "{text}"
        );
        assert!(
            text.contains("asana_docspace_api_rate_limited_total{service=\"asana\"} 2"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
