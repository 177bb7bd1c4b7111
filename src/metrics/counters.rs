//! Counters of this process, kept in statics that the code paths increment (GitLab API errors, webhook
//! deliveries, deploy task durations) and that `GET /metrics` encodes. The bottom floor: anything may
//! count, so this imports nothing of the crate.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallLabels {
    call: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StatusLabels {
    status: String,
}

pub(super) static GITLAB_ERRORS: LazyLock<Family<CallLabels, Counter>> = LazyLock::new(Family::default);
pub(super) static WEBHOOKS: LazyLock<Family<ResultLabels, Counter>> = LazyLock::new(Family::default);
pub(super) static TASK_SECONDS: LazyLock<Family<StatusLabels, Histogram>> = LazyLock::new(|| {
    Family::new_with_constructor(|| Histogram::new([1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0]))
});

/// Counts a failed GitLab call (`status`: the HTTP status, `None` for a transport failure).
pub fn gitlab_api_error(call: &str, status: Option<u16>) {
    let status = status.map(|s| s.to_string()).unwrap_or_else(|| "transport".into());
    GITLAB_ERRORS.get_or_create(&CallLabels { call: call.to_string(), status }).inc();
}

/// Counts a webhook delivery (`stored`, `duplicate`, `rejected`).
pub fn webhook_delivery(result: &str) {
    WEBHOOKS.get_or_create(&ResultLabels { result: result.to_string() }).inc();
}

/// Records how long a deploy task ran and how it ended.
pub fn task_finished(status: &str, took: Duration) {
    TASK_SECONDS.get_or_create(&StatusLabels { status: status.to_string() }).observe(took.as_secs_f64());
}
