//! Reading what Tao recorded, for front ends that show or export it: the audit log, stored GitLab
//! events, the Prometheus exposition, Grafana series and the `dora`/`cfd` pictures, the work items of a
//! product version and where it runs. Reads only, except [`Services::audit`] (a front end's own audit
//! record, e.g. a chat command's).

use serde::Serialize;

use super::{Actor, ServiceError, Services};
use crate::metrics::report::{self, CfdOptions, DoraOptions, Picture, ReportError};
use crate::metrics::series;
use crate::store;
use crate::store::audit::AuditRow;
use crate::store::deployed;
use crate::store::event::{EventFilter, EventRow};
use crate::store::workitem::{self, ItemFilter, Link};
use crate::workitems::{StateChange, WorkItem};

/// A work item of a product version with its state history and links.
#[derive(Debug, Clone, Serialize)]
pub struct VersionItem {
    /// The item.
    pub item: WorkItem,
    /// The workspace's name for its state (TAPD status map), when known.
    pub state_label: Option<String>,
    /// Each state it entered, oldest first, with its label.
    pub history: Vec<LabelledChange>,
    /// What it is linked to (MRs, commits, branches).
    pub links: Vec<Link>,
}

/// A state change with the workspace's name for the state.
#[derive(Debug, Clone, Serialize)]
pub struct LabelledChange {
    /// The change.
    pub change: StateChange,
    /// The state's name, when known.
    pub label: Option<String>,
}

/// An environment a product version reached.
#[derive(Debug, Clone, Serialize)]
pub struct Reached {
    /// The environment.
    pub env: String,
    /// When the version was first deployed there (epoch ms).
    pub deployed_at: i64,
    /// The task that deployed it.
    pub task_id: i64,
    /// Whether it is still the environment's current version of the product.
    pub current: bool,
}

/// What is in a product version and where it runs.
#[derive(Debug, Clone, Serialize)]
pub struct VersionWorkItems {
    /// The product.
    pub product: String,
    /// The version (without a `v`).
    pub version: String,
    /// Its work items.
    pub items: Vec<VersionItem>,
    /// Every environment it reached.
    pub deployed: Vec<Reached>,
}

impl Services {
    /// Writes a front end's audit record of what `actor` did.
    pub async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<(), ServiceError> {
        Ok(store::audit::record(self.pool(), &actor.to_string(), action, target, outcome, detail).await?)
    }

    /// One page of the audit log, newest first: the records before record `before`.
    pub async fn audit_page(&self, before: Option<i64>, n: i64) -> Result<Vec<AuditRow>, ServiceError> {
        Ok(store::audit::page(self.pool(), before, n).await?)
    }

    /// Whether any event of `kind` is stored.
    pub async fn event_kind_stored(&self, kind: &str) -> Result<bool, ServiceError> {
        Ok(store::event::has_kind(self.pool(), kind).await?)
    }

    /// One page of stored events matching `filter`, oldest first: those after event `after`.
    pub async fn event_page(&self, filter: &EventFilter, after: i64, n: i64) -> Result<Vec<EventRow>, ServiceError> {
        Ok(store::event::page(self.pool(), filter, after, n).await?)
    }

    /// The Prometheus exposition (OpenMetrics text) of the process and the store.
    pub async fn prometheus_text(&self) -> Result<String, ServiceError> {
        Ok(crate::metrics::render(self.pool()).await?)
    }

    /// The rows of the Grafana series `name` for `query` over the catalog in force; `None` for an
    /// unknown series.
    pub async fn metric_series(
        &self,
        name: &str,
        query: &series::Query,
    ) -> Result<Option<Vec<serde_json::Map<String, serde_json::Value>>>, ServiceError> {
        Ok(series::rows(self.pool(), &self.catalog_now(), name, query).await?)
    }

    /// The DORA picture of `tao report dora` up to `to` (epoch ms).
    pub async fn dora_picture(&self, opts: &DoraOptions, to: i64) -> Result<Picture, ReportError> {
        report::dora_png(self.pool(), &self.catalog_now(), opts, to).await
    }

    /// The cumulative flow picture of `tao report cfd` up to `to` (epoch ms).
    pub async fn cfd_picture(&self, opts: &CfdOptions, to: i64) -> Result<Picture, ReportError> {
        report::cfd_png(self.pool(), &self.catalog_now(), opts, to).await
    }

    /// The work items of `product`'s `version` (a leading `v` is ignored) and the environments it reached.
    pub async fn version_work_items(&self, product: &str, version: &str) -> Result<VersionWorkItems, ServiceError> {
        if !self.catalog_now().products.keys().any(|p| p.as_str() == product) {
            return Err(ServiceError::NotFound(format!("no product {product:?} in the catalog")));
        }
        let version = version.strip_prefix('v').unwrap_or(version).to_string();
        let pool = self.pool();
        let filter = ItemFilter { product: Some(product.into()), version: Some(version.clone()), ..Default::default() };
        let found = workitem::list(pool, &filter).await?;
        let mut names = std::collections::BTreeMap::new();
        let mut items = Vec::with_capacity(found.len());
        for item in found {
            let key = (item.source.clone(), item.workspace.clone(), item.kind.as_str());
            if !names.contains_key(&key) {
                let map = workitem::state_names(pool, &item.source, &item.workspace, item.kind.as_str()).await?;
                names.insert(key.clone(), map);
            }
            let label = |state: &str| names[&key].get(state).cloned();
            let history = workitem::history(pool, &item.source, &item.id).await?;
            let links = workitem::links_of(pool, &item.source, &item.id).await?;
            items.push(VersionItem {
                state_label: label(&item.state),
                history: history
                    .into_iter()
                    .map(|change| LabelledChange { label: label(&change.state), change })
                    .collect(),
                links,
                item,
            });
        }
        let mut reached = Vec::new();
        for r in deployed::reached(pool, product, &version).await? {
            let current = deployed::latest_version(pool, &r.env, product).await?;
            reached.push(Reached {
                current: current.as_deref() == Some(version.as_str()),
                env: r.env,
                deployed_at: r.deployed_at,
                task_id: r.task_id,
            });
        }
        Ok(VersionWorkItems { product: product.into(), version, items, deployed: reached })
    }
}

/// Which work items to list ([`Services::work_items`]).
#[derive(Debug, Clone, Default)]
pub struct WorkItemQuery {
    /// Of this product (must be in the catalog).
    pub product: String,
    /// Only `story` or `bug` (GitLab issues count by their mapped kind).
    pub kind: Option<String>,
    /// Only in this state (the stored state, e.g. `resolved`, or its workspace label).
    pub state: Option<String>,
    /// Only of this product version.
    pub version: Option<String>,
    /// Only of this iteration id.
    pub iteration: Option<String>,
}

impl Services {
    /// The work items of a product, filtered, each with the workspace's label of its state and its links.
    pub async fn work_items(&self, q: &WorkItemQuery) -> Result<Vec<VersionItem>, ServiceError> {
        use crate::catalog::FieldError;
        if !self.catalog_now().products.keys().any(|p| p.as_str() == q.product) {
            return Err(ServiceError::NotFound(format!("no product {:?} in the catalog", q.product)));
        }
        if let Some(k) = q.kind.as_deref().filter(|k| !matches!(*k, "story" | "bug")) {
            return Err(ServiceError::Invalid(vec![FieldError::new("kind", "story or bug", format!("{k:?}"))]));
        }
        let pool = self.pool();
        let version = q.version.as_deref().map(|v| v.strip_prefix('v').unwrap_or(v).to_string());
        let filter = ItemFilter { product: Some(q.product.clone()), version, ..Default::default() };
        let mut names = std::collections::BTreeMap::new();
        let mut out = Vec::new();
        for item in workitem::list(pool, &filter).await? {
            if q.kind.as_deref().is_some_and(|k| k != item.kind.as_str())
                || q.iteration.as_deref().is_some_and(|i| item.iteration_id.as_deref() != Some(i))
            {
                continue;
            }
            let key = (item.source.clone(), item.workspace.clone(), item.kind.as_str());
            if !names.contains_key(&key) {
                let map = workitem::state_names(pool, &item.source, &item.workspace, item.kind.as_str()).await?;
                names.insert(key.clone(), map);
            }
            let state_label = names[&key].get(&item.state).cloned();
            if let Some(want) = q.state.as_deref() {
                if want != item.state && state_label.as_deref() != Some(want) {
                    continue;
                }
            }
            let links = workitem::links_of(pool, &item.source, &item.id).await?;
            out.push(VersionItem { state_label, history: Vec::new(), links, item });
        }
        Ok(out)
    }

    /// The commits a component gained between two of its versions: the stored change sets of every
    /// recorded version after `from` up to and including `to` (newest version first).
    pub async fn changes_between(
        &self,
        component: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<store::change::ChangeCommit>, ServiceError> {
        let parse = |v: &str| semver::Version::parse(v).ok();
        let (Some(lo), Some(hi)) = (parse(from), parse(to)) else { return Ok(Vec::new()) };
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        // One query for the component, filtered here: versions order by semver, which SQL cannot.
        let mut out: Vec<(semver::Version, store::change::ChangeCommit)> =
            store::change::commits_of_component(self.pool(), component)
                .await?
                .into_iter()
                .filter_map(|c| parse(&c.version).filter(|v| *v > lo && *v <= hi).map(|v| (v, c)))
                .collect();
        // Newest version first; within a version, the store's order (oldest commit first).
        out.sort_by(|a, b| b.0.cmp(&a.0));
        let out = out.into_iter().map(|(_, c)| c).collect();
        Ok(out)
    }

    /// MRs whose latest `tao/policy` check failed, newest first.
    pub async fn failing_policy_checks(&self, limit: i64) -> Result<Vec<store::policy::CheckRow>, ServiceError> {
        Ok(store::policy::failing_checks(self.pool(), limit.clamp(1, 1000)).await?)
    }
}
