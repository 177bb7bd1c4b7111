//! The TAPD sync: per product with a `tapd:` mapping, its workspace's iterations, stories and bugs since
//! the stored cursor, the status history of every item fetched, into the store; and the recording of
//! links found in MR titles, branches and commit messages (to TAPD items and to GitLab issues).
//!
//! # Order and cursors
//!
//! Per workspace: iterations first (items map to versions through them), then stories, then bugs. Each
//! kind pages with `order=modified asc` and `modified=>CURSOR`, where the cursor is the newest `modified`
//! seen by the last run that finished every page of that kind; it is stored only then, so a failed run
//! is repeated from the old cursor (every write is an idempotent upsert). TAPD's docs do not say whether
//! `>` includes the boundary; Tao treats it as inclusive, so an item modified in the cursor's second is
//! fetched again rather than missed. A page that starts with the same item as the page before (TAPD or
//! a proxy ignoring `page`) stops the run with [`SyncError::RepeatedPage`] instead of looping.
//!
//! Known limit: offset paging over a moving set. An item modified in TAPD *during* a run moves to the
//! end of the order, shifting later items one place up, so one item may be skipped by this run; it is
//! fetched again only when modified again. A keyset variant (re-query from the last `modified` seen) needs
//! a tie-break TAPD's filters do not offer; a full resync (`tao sync tapd --full`) repairs it.
//!
//! Each kind's state names (`workflows/status_map`; custom states are `status_N`) are stored first.
//!
//! # History
//!
//! For every item fetched, its whole status history (`story_changes` with `change_field=status`;
//! `bug_changes`, status records) is read and each state entered is recorded once (unique per item, time
//! and state): so states an item passed through between two syncs are kept. The first state is the
//! first change's "before" (or the current status) at the item's creation; when the history's last state
//! differs from the item's current status (history not visible to the account), the current status is
//! recorded at the item's `modified` time.

use crate::catalog::{Catalog, TapdMapping};
use crate::store::{self, workitem::Link, Pool, StoreError};

use super::links::{extract, short_of_long, Reference};
use super::tapd::{parse_time, Bug, Query, Story, TapdClient, TapdError, MAX_LIMIT};
use super::{Iteration, Kind, StateChange, WorkItem, SOURCE_TAPD};

/// Ids of items whose changes are asked for in one call.
const CHANGE_BATCH: usize = 50;

/// A failed sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// TAPD refused or failed.
    #[error(transparent)]
    Tapd(#[from] TapdError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A page answered the same items as the page before (TAPD ignored `page`): stop rather than loop.
    #[error("TAPD list {what} of workspace {workspace}: page {page} repeats the page before; stopped")]
    RepeatedPage {
        /// `stories`, `bugs` or `iterations`.
        what: &'static str,
        /// Workspace id.
        workspace: String,
        /// The page that repeated.
        page: u32,
    },
}

/// Fails when a page starts with the same item as the page before.
fn check_page(
    what: &'static str,
    ws: &str,
    page: u32,
    first: Option<String>,
    prev: &mut Option<String>,
) -> Result<(), SyncError> {
    if page > 1 && first.is_some() && first == *prev {
        return Err(SyncError::RepeatedPage { what, workspace: ws.to_string(), page });
    }
    *prev = first;
    Ok(())
}

/// One product's mapping to a TAPD workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Product name.
    pub product: String,
    /// Its mapping.
    pub mapping: TapdMapping,
}

/// The products of `catalog` that map to a TAPD workspace, by name.
pub fn targets(catalog: &Catalog) -> Vec<Target> {
    catalog
        .products
        .iter()
        .filter_map(|(name, p)| Some(Target { product: name.to_string(), mapping: p.tapd.clone()? }))
        .collect()
}

/// What one workspace's sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Product.
    pub product: String,
    /// Workspace id.
    pub workspace: String,
    /// Iterations fetched.
    pub iterations: usize,
    /// Ids of the stories and bugs fetched, in order.
    pub items: Vec<String>,
    /// States newly recorded.
    pub states_added: u64,
}

/// Syncs every mapped product of `catalog`, one after the other; stops at the first failure.
pub async fn sync_all(
    pool: &Pool,
    client: &TapdClient,
    catalog: &Catalog,
    page_size: u32,
) -> Result<Vec<Report>, SyncError> {
    let mut reports = Vec::new();
    for target in targets(catalog) {
        reports.push(sync_workspace(pool, client, &target, page_size).await?);
    }
    Ok(reports)
}

/// Syncs one product's workspace; `page_size` is capped at TAPD's 200.
pub async fn sync_workspace(
    pool: &Pool,
    client: &TapdClient,
    target: &Target,
    page_size: u32,
) -> Result<Report, SyncError> {
    let ws = target.mapping.workspace_id.clone();
    let limit = page_size.clamp(1, MAX_LIMIT);
    let mut report = Report { product: target.product.clone(), workspace: ws.clone(), ..Default::default() };

    let since = store::workitem::cursor(pool, SOURCE_TAPD, &ws, "iteration").await?;
    let mut newest = since.clone();
    let mut prev = None;
    for page in 1.. {
        let q = Query { workspace: ws.clone(), modified_since: since.clone(), page, limit };
        let batch = client.iterations(&q).await?;
        check_page("iterations", &ws, page, batch.first().and_then(|i| i.id.clone()), &mut prev)?;
        for it in &batch {
            let (Some(id), Some(name)) = (&it.id, &it.name) else { continue };
            let version = target.mapping.version_of(name).map(|v| v.to_string());
            let row = Iteration {
                source: SOURCE_TAPD.into(),
                id: id.clone(),
                workspace: ws.clone(),
                name: name.clone(),
                status: it.status.clone().unwrap_or_default(),
                version,
                modified_at: it.modified.as_deref().and_then(parse_time).unwrap_or(0),
            };
            store::workitem::upsert_iteration(pool, &row).await?;
            newest = newer(newest, it.modified.as_deref());
        }
        report.iterations += batch.len();
        if batch.len() < limit as usize {
            break;
        }
    }
    save_cursor(pool, &ws, "iteration", &since, &newest).await?;

    for kind in [Kind::Story, Kind::Bug] {
        let names = client.status_map(&ws, kind.as_str()).await?;
        store::workitem::set_state_names(pool, SOURCE_TAPD, &ws, kind.as_str(), &names).await?;
        let since = store::workitem::cursor(pool, SOURCE_TAPD, &ws, kind.as_str()).await?;
        let mut newest = since.clone();
        let mut prev = None;
        for page in 1.. {
            let q = Query { workspace: ws.clone(), modified_since: since.clone(), page, limit };
            let mut bug_versions = std::collections::HashMap::new();
            let items = match kind {
                Kind::Bug => client
                    .bugs(&q)
                    .await?
                    .into_iter()
                    .filter_map(|b| {
                        let names = (b.version_report.clone(), b.version_fix.clone());
                        from_bug(b, &ws).inspect(|(item, _)| {
                            bug_versions.insert(item.id.clone(), names);
                        })
                    })
                    .collect(),
                _ => client.stories(&q).await?.into_iter().filter_map(|s| from_story(s, &ws)).collect::<Vec<_>>(),
            };
            let what = if kind == Kind::Bug { "bugs" } else { "stories" };
            check_page(what, &ws, page, items.first().map(|(i, _)| i.id.clone()), &mut prev)?;
            let fetched = items.len();
            let mut rows = Vec::with_capacity(fetched);
            for (mut item, modified) in items {
                item.product = Some(target.product.clone());
                item.version = version_of_iteration(pool, item.iteration_id.as_deref()).await?;
                store::workitem::upsert_item(pool, &item).await?;
                if let Some((found, fixed)) = bug_versions.get(&item.id) {
                    let found = found.as_deref().and_then(|n| version_named(&target.mapping, n));
                    let fixed = fixed
                        .as_deref()
                        .and_then(|n| version_named(&target.mapping, n))
                        .or_else(|| item.completed_at.and(item.version.clone()));
                    store::workitem::set_bug_versions(pool, &item, found.as_deref(), fixed.as_deref()).await?;
                }
                newest = newer(newest, Some(&modified));
                report.items.push(item.id.clone());
                rows.push(item);
            }
            for chunk in rows.chunks(CHANGE_BATCH) {
                report.states_added += record_history(pool, client, &ws, kind, chunk).await?;
            }
            if fetched < limit as usize {
                break;
            }
        }
        save_cursor(pool, &ws, kind.as_str(), &since, &newest).await?;
    }
    tracing::info!(
        product = %report.product,
        workspace = %ws,
        iterations = report.iterations,
        items = report.items.len(),
        states_added = report.states_added,
        "TAPD sync done"
    );
    Ok(report)
}

async fn save_cursor(
    pool: &Pool,
    ws: &str,
    kind: &str,
    old: &Option<String>,
    new: &Option<String>,
) -> Result<(), StoreError> {
    match new {
        Some(n) if new != old => store::workitem::set_cursor(pool, SOURCE_TAPD, ws, kind, n).await,
        _ => Ok(()),
    }
}

/// The later of two TAPD datetimes (same format and zone, so text order is time order).
fn newer(current: Option<String>, seen: Option<&str>) -> Option<String> {
    match (current, seen.filter(|s| parse_time(s).is_some())) {
        (Some(c), Some(s)) if s > c.as_str() => Some(s.to_owned()),
        (None, Some(s)) => Some(s.to_owned()),
        (c, _) => c,
    }
}

async fn version_of_iteration(pool: &Pool, iteration_id: Option<&str>) -> Result<Option<String>, StoreError> {
    match iteration_id {
        Some(id) => Ok(store::workitem::iteration(pool, SOURCE_TAPD, id).await?.and_then(|it| it.version)),
        None => Ok(None),
    }
}

/// The product version a TAPD version name (发现版本, 合入版本) means: named like the product's iterations
/// (`v{version}` by default), or a bare version.
fn version_named(mapping: &crate::catalog::TapdMapping, name: &str) -> Option<String> {
    let name = name.trim();
    mapping.version_of(name).or_else(|| crate::catalog::Version::parse(name).ok()).map(|v| v.to_string())
}

fn iteration_ref(id: Option<String>) -> Option<String> {
    id.filter(|i| !i.is_empty() && i != "0")
}

fn from_story(s: Story, ws: &str) -> Option<(WorkItem, String)> {
    let id = s.id?;
    let modified = s.modified.unwrap_or_default();
    let item = WorkItem {
        source: SOURCE_TAPD.into(),
        short_id: short_of_long(&id, ws),
        id,
        workspace: ws.to_owned(),
        kind: Kind::Story,
        title: s.name.unwrap_or_default(),
        state: s.status.unwrap_or_default(),
        owner: s.owner.filter(|o| !o.is_empty()),
        iteration_id: iteration_ref(s.iteration_id),
        product: None,
        version: None,
        created_at: s.created.as_deref().and_then(parse_time).unwrap_or(0),
        modified_at: parse_time(&modified).unwrap_or(0),
        completed_at: s.completed.as_deref().and_then(parse_time),
    };
    Some((item, modified))
}

fn from_bug(b: Bug, ws: &str) -> Option<(WorkItem, String)> {
    let id = b.id?;
    let modified = b.modified.unwrap_or_default();
    let completed = b.closed.as_deref().and_then(parse_time).or_else(|| b.resolved.as_deref().and_then(parse_time));
    let item = WorkItem {
        source: SOURCE_TAPD.into(),
        short_id: short_of_long(&id, ws),
        id,
        workspace: ws.to_owned(),
        kind: Kind::Bug,
        title: b.title.unwrap_or_default(),
        state: b.status.unwrap_or_default(),
        owner: b.current_owner.filter(|o| !o.is_empty()),
        iteration_id: iteration_ref(b.iteration_id),
        product: None,
        version: None,
        created_at: b.created.as_deref().and_then(parse_time).unwrap_or(0),
        modified_at: parse_time(&modified).unwrap_or(0),
        completed_at: completed,
    };
    Some((item, modified))
}

/// A status change: item, before, after, when, who.
type Transition = (String, Option<String>, String, i64, Option<String>);

/// Reads the status history of `items` and records every state; returns how many were new.
async fn record_history(
    pool: &Pool,
    client: &TapdClient,
    ws: &str,
    kind: Kind,
    items: &[WorkItem],
) -> Result<u64, SyncError> {
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let mut transitions: Vec<Transition> = Vec::new();
    for page in 1.. {
        let got = match kind {
            Kind::Bug => {
                let changes = client.bug_changes(ws, &ids, page).await?;
                let n = changes.len();
                transitions.extend(changes.into_iter().filter(|c| c.field.as_deref() == Some("status")).filter_map(
                    |c| {
                        let at = parse_time(c.created.as_deref()?)?;
                        Some((c.bug_id?, c.old_value.filter(|v| !v.is_empty()), c.new_value?, at, c.author))
                    },
                ));
                n
            }
            _ => {
                let changes = client.story_changes(ws, &ids, page).await?;
                let n = changes.len();
                transitions.extend(changes.into_iter().filter_map(|c| {
                    let (before, after) = c.status_change()?;
                    let at = parse_time(c.created.as_deref()?)?;
                    Some((c.story_id?, before, after, at, c.creator))
                }));
                n
            }
        };
        if got < super::tapd::MAX_CHANGES_LIMIT as usize {
            break;
        }
    }
    transitions.sort_by_key(|t| t.3);
    let mut added = 0;
    for item in items {
        let mine: Vec<&Transition> = transitions.iter().filter(|t| t.0 == item.id).collect();
        let first = mine.first().and_then(|t| t.1.clone()).unwrap_or_else(|| item.state.clone());
        let mut states = vec![StateChange { state: first, at: item.created_at, author: None }];
        states.extend(mine.iter().map(|t| StateChange { state: t.2.clone(), at: t.3, author: t.4.clone() }));
        if states.last().is_some_and(|s| s.state != item.state) {
            states.push(StateChange { state: item.state.clone(), at: item.modified_at, author: None });
        }
        added += store::workitem::add_states(pool, &item.source, &item.id, &states).await?;
    }
    Ok(added)
}

/// Where a reference was found, for [`link_text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An MR title.
    Title,
    /// A branch name.
    Branch,
    /// A commit message.
    CommitMessage,
}

impl Via {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Title => "title",
            Via::Branch => "branch",
            Via::CommitMessage => "commit_message",
        }
    }
}

/// Links every TAPD work item `text` refers to (long ids anywhere; short ids within `workspaces`) to
/// `target` (`target_kind` `merge_request` with `group/project!iid`, or `commit` with a sha). Returns the
/// links that were new.
pub async fn link_text(
    pool: &Pool,
    text: &str,
    via: Via,
    workspaces: &[String],
    target_kind: &str,
    target: &str,
) -> Result<Vec<Link>, StoreError> {
    link_text_in(pool, text, via, None, workspaces, target_kind, target).await
}

/// Like [`link_text`], for text written in GitLab project `project` when given: a bare `#12` there means
/// that project's issue 12 (GitLab's own meaning) when Tao holds it, and is looked up in the TAPD
/// `workspaces` only when it does not. Keyword forms (`--story=12`, `story-12`) and long ids are TAPD's.
pub async fn link_text_in(
    pool: &Pool,
    text: &str,
    via: Via,
    project: Option<&str>,
    workspaces: &[String],
    target_kind: &str,
    target: &str,
) -> Result<Vec<Link>, StoreError> {
    let mut new = Vec::new();
    for r in extract(text) {
        let issues = match (&r, project) {
            (Reference::Short { kind: None, id }, Some(p)) => {
                let filter = store::workitem::ItemFilter {
                    source: Some(super::SOURCE_GITLAB.into()),
                    workspace: Some(p.to_string()),
                    short_id: Some(id.clone()),
                    ..Default::default()
                };
                store::workitem::list(pool, &filter).await?
            }
            _ => Vec::new(),
        };
        let items = match &r {
            _ if !issues.is_empty() => issues,
            Reference::Long(id) => store::workitem::item(pool, SOURCE_TAPD, id).await?.into_iter().collect(),
            Reference::Short { kind, id } => {
                let mut found = Vec::new();
                for ws in workspaces {
                    let filter = store::workitem::ItemFilter {
                        source: Some(SOURCE_TAPD.into()),
                        workspace: Some(ws.clone()),
                        short_id: Some(id.clone()),
                        ..Default::default()
                    };
                    found.extend(
                        store::workitem::list(pool, &filter)
                            .await?
                            .into_iter()
                            .filter(|i| kind.is_none_or(|k| k == i.kind)),
                    );
                }
                found
            }
        };
        for item in items {
            let link = Link {
                source: item.source,
                item_id: item.id,
                target_kind: target_kind.into(),
                target: target.into(),
                via: via.as_str().into(),
            };
            if store::workitem::add_link(pool, &link).await? {
                new.push(link);
            }
        }
    }
    Ok(new)
}
