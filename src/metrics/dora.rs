//! DORA metrics from recorded deploys (pure): deployment frequency, change failure rate and time to
//! restore, per product and environment tier, over a time window.
//!
//! Facts in, numbers out; every number traces back to deploy tasks:
//! - a **deployment** is a finished deploy of a product version (kind `release`) or a rollback;
//! - **deployment frequency**: successful deployments per day in the window;
//! - a deployment is a **failed change** when it failed, when a rollback of its environment followed
//!   it, or when the next deployment of its environment is a hotfix of it (same product, same
//!   `MAJOR.MINOR`, higher patch); **change failure rate** = failed changes / deployments;
//! - **time to restore**: from a failed deployment's end to the end of the next successful deployment of
//!   the same environment (the median and the mean are reported);
//! - **lead time for changes**: for every commit a component version brought (recorded from GitLab when
//!   its tag was pushed, `metrics::changes`), from its commit time to the end of the first successful
//!   deploy to the tier of a product version holding that component version (median and mean). A
//!   component's first version brings no commits (nothing to measure from); rollbacks bring none.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// What product versions brought: their component versions and the commit times of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `(product, version)` → its component versions `(component, version)`.
    pub versions: HashMap<(String, String), Vec<(String, String)>>,
    /// `(component, version)` → commit times (epoch ms) of the commits that version brought.
    pub commits: HashMap<(String, String), Vec<i64>>,
}

/// One finished deploy task, as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployFact {
    /// Task id.
    pub id: i64,
    /// `release`, `component`, `rollback`.
    pub kind: String,
    /// Environment.
    pub env: String,
    /// Its tier (`dev`, `test`, `staging`, `prod`).
    pub tier: String,
    /// Product (none for component builds).
    pub product: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// `succeeded`, `failed`, `cancelled`, `interrupted`.
    pub status: String,
    /// When it ended, epoch ms.
    pub finished_at: i64,
}

/// The DORA numbers of one product on one tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dora {
    /// Product.
    pub product: String,
    /// Tier.
    pub tier: String,
    /// Deployments (finished release deploys and rollbacks) in the window.
    pub deployments: usize,
    /// Of those, succeeded.
    pub successful: usize,
    /// Successful deployments per day.
    pub deployment_frequency: f64,
    /// Failed changes.
    pub failed_changes: usize,
    /// Failed changes / deployments (0 when there were none).
    pub change_failure_rate: f64,
    /// Restores measured.
    pub restores: usize,
    /// Median time to restore, seconds.
    pub time_to_restore_median_s: Option<f64>,
    /// Mean time to restore, seconds.
    pub time_to_restore_mean_s: Option<f64>,
    /// Commits whose lead time was measured (first deployed to the tier in the window).
    pub changes: usize,
    /// Median lead time for changes, seconds.
    pub lead_time_median_s: Option<f64>,
    /// Mean lead time for changes, seconds.
    pub lead_time_mean_s: Option<f64>,
}

fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    (n > 0).then(|| if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 })
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Lead times (seconds, sorted) of the commits first deployed to `tier` by `product` deploys in the window.
fn lead_times(facts: &[&DeployFact], changes: &Changes, product: &str, tier: &str, from: i64, to: i64) -> Vec<f64> {
    let mut seen: HashSet<&(String, String)> = HashSet::new();
    let mut out = Vec::new();
    let arrivals = facts.iter().filter(|d| {
        d.kind == "release" && d.status == "succeeded" && d.tier == tier && d.product.as_deref() == Some(product)
    });
    for d in arrivals {
        let Some(version) = &d.version else { continue };
        let Some(parts) = changes.versions.get(&(product.to_string(), version.clone())) else { continue };
        for part in parts {
            if !seen.insert(part) || d.finished_at < from || d.finished_at >= to {
                continue;
            }
            for at in changes.commits.get(part).into_iter().flatten() {
                out.push((d.finished_at - at).max(0) as f64 / 1000.0);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

fn patch_of(v: &str) -> Option<(u64, u64, u64)> {
    let v = semver::Version::parse(v.strip_prefix('v').unwrap_or(v)).ok()?;
    Some((v.major, v.minor, v.patch))
}

fn is_deployment(d: &DeployFact) -> bool {
    matches!(d.kind.as_str(), "release" | "rollback") && matches!(d.status.as_str(), "succeeded" | "failed")
}

/// Computes the numbers for every (product, tier) with deployments in `[from, to)` (epoch ms). `facts`
/// should reach back before `from`: a deploy before the window decides which changes arrived earlier.
pub fn compute(facts: &[DeployFact], changes: &Changes, from: i64, to: i64) -> Vec<Dora> {
    let mut facts: Vec<&DeployFact> = facts.iter().filter(|d| is_deployment(d)).collect();
    facts.sort_by_key(|d| (d.finished_at, d.id));
    let days = ((to - from) as f64 / 86_400_000.0).max(1e-9);
    let mut keys: Vec<(String, String)> = facts
        .iter()
        .filter(|d| d.finished_at >= from && d.finished_at < to)
        .filter_map(|d| d.product.clone().map(|p| (p, d.tier.clone())))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(product, tier)| {
            let mine: Vec<&&DeployFact> = facts
                .iter()
                .filter(|d| d.product.as_deref() == Some(product.as_str()) && d.tier == tier)
                .filter(|d| d.finished_at >= from && d.finished_at < to)
                .collect();
            let successful = mine.iter().filter(|d| d.status == "succeeded").count();
            let failed_changes = mine.iter().filter(|d| failed_change(d, &facts)).count();
            let mut restores: Vec<f64> = mine
                .iter()
                .filter(|d| d.status == "failed")
                .filter_map(|d| {
                    facts
                        .iter()
                        .find(|n| n.env == d.env && n.finished_at > d.finished_at && n.status == "succeeded")
                        .map(|n| (n.finished_at - d.finished_at) as f64 / 1000.0)
                })
                .collect();
            restores.sort_by(f64::total_cmp);
            let leads = lead_times(&facts, changes, &product, &tier, from, to);
            let deployments = mine.len();
            Dora {
                product,
                tier,
                deployments,
                successful,
                deployment_frequency: successful as f64 / days,
                failed_changes,
                change_failure_rate: if deployments == 0 { 0.0 } else { failed_changes as f64 / deployments as f64 },
                restores: restores.len(),
                time_to_restore_median_s: median(&restores),
                time_to_restore_mean_s: mean(&restores),
                changes: leads.len(),
                lead_time_median_s: median(&leads),
                lead_time_mean_s: mean(&leads),
            }
        })
        .collect()
}

/// Whether deployment `d` was a failed change (see the module header).
fn failed_change(d: &DeployFact, all: &[&DeployFact]) -> bool {
    if d.status == "failed" {
        return true;
    }
    let Some(next) = all.iter().find(|n| n.env == d.env && n.finished_at > d.finished_at) else { return false };
    if next.kind == "rollback" {
        return true;
    }
    match (d.version.as_deref().and_then(patch_of), next.version.as_deref().and_then(patch_of)) {
        (Some((ma, mi, pa)), Some((nma, nmi, npa))) => {
            next.product == d.product && d.kind == "release" && (ma, mi) == (nma, nmi) && npa > pa
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const DAY: i64 = 24 * H;

    fn fact(id: i64, kind: &str, env: &str, tier: &str, version: &str, status: &str, at: i64) -> DeployFact {
        DeployFact {
            id,
            kind: kind.into(),
            env: env.into(),
            tier: tier.into(),
            product: Some("monitor".into()),
            version: Some(version.into()),
            status: status.into(),
            finished_at: at,
        }
    }

    /// Ten days on prod, checked by hand:
    /// - day 0 10:00 1.0.0 ok; day 2 10:00 1.1.0 ok, hotfixed by 1.1.1 on day 2 14:00 (ok) → 1.1.0 failed change;
    /// - day 4 09:00 1.2.0 failed; restored by 1.2.0 again on day 4 11:00 (ok) → restore 2 h;
    /// - day 6 10:00 1.3.0 ok, rolled back on day 6 10:30 (a rollback deployment, ok) → 1.3.0 failed change;
    /// - day 8 08:00 1.4.0 failed, restored by the day 8 14:00 deploy of 1.4.1 (ok) → restore 6 h;
    ///   1.4.1 is a hotfix of 1.4.0, which failed anyway (counted once).
    /// - a component build and a cancelled deploy do not count; test-tier deploys are another row.
    ///
    /// Deployments: 9 (8 release + 1 rollback); successful: 7 → 0.7 per day over 10 days.
    /// Failed changes: 1.1.0, 1.2.0 (failed), 1.3.0, 1.4.0 (failed) = 4 → 4/9.
    /// Restores: 2 h and 6 h → median 4 h = 14400 s, mean 14400 s.
    #[test]
    fn a_constructed_history_gives_the_hand_checked_numbers() {
        let facts = vec![
            fact(1, "release", "prod", "prod", "1.0.0", "succeeded", 10 * H),
            fact(2, "release", "prod", "prod", "1.1.0", "succeeded", 2 * DAY + 10 * H),
            fact(3, "release", "prod", "prod", "1.1.1", "succeeded", 2 * DAY + 14 * H),
            fact(4, "release", "prod", "prod", "1.2.0", "failed", 4 * DAY + 9 * H),
            fact(5, "release", "prod", "prod", "1.2.0", "succeeded", 4 * DAY + 11 * H),
            fact(6, "release", "prod", "prod", "1.3.0", "succeeded", 6 * DAY + 10 * H),
            fact(7, "rollback", "prod", "prod", "1.2.0", "succeeded", 6 * DAY + 10 * H + H / 2),
            fact(8, "release", "prod", "prod", "1.4.0", "failed", 8 * DAY + 8 * H),
            fact(9, "release", "prod", "prod", "1.4.1", "succeeded", 8 * DAY + 14 * H),
            fact(10, "component", "prod", "prod", "1.4.1", "succeeded", 9 * DAY),
            fact(11, "release", "prod", "prod", "1.5.0", "cancelled", 9 * DAY + H),
            fact(12, "release", "env-1", "test", "1.0.0", "succeeded", DAY),
            fact(13, "release", "prod", "prod", "0.9.0", "succeeded", -DAY),
        ];
        let out = compute(&facts, &Changes::default(), 0, 10 * DAY);
        assert_eq!(out.len(), 2);
        let prod = out.iter().find(|d| d.tier == "prod").unwrap();
        assert_eq!((prod.deployments, prod.successful, prod.failed_changes), (9, 7, 4));
        assert!((prod.deployment_frequency - 0.7).abs() < 1e-9, "{}", prod.deployment_frequency);
        assert!((prod.change_failure_rate - 4.0 / 9.0).abs() < 1e-9);
        assert_eq!(prod.restores, 2);
        assert_eq!(prod.time_to_restore_median_s, Some(14_400.0));
        assert_eq!(prod.time_to_restore_mean_s, Some(14_400.0));
        let test = out.iter().find(|d| d.tier == "test").unwrap();
        assert_eq!((test.deployments, test.failed_changes, test.time_to_restore_median_s), (1, 0, None));
        assert!((test.deployment_frequency - 0.1).abs() < 1e-9);
        assert!(compute(&facts, &Changes::default(), 20 * DAY, 30 * DAY).is_empty());
    }

    /// Lead time, checked by hand (hours from 0):
    /// - monitor 1.0.0 = api 1.0.0 + web 1.0.0 (first versions: no commits), 1.1.0 = api 1.1.0 + web 1.0.0,
    ///   1.2.0 = api 1.1.0 + web 1.1.0; api 1.1.0 brought commits at 0 h and 6 h, web 1.1.0 one at 30 h.
    /// - test: 1.1.0 ok at 10 h → api's commits wait 10 h and 4 h → median = mean = 7 h.
    /// - prod: 1.1.0 failed at 34 h (no arrival), ok at 36 h → 36 h, 30 h; 1.2.0 ok at 48 h → web's commit
    ///   18 h (api 1.1.0 was there already); a rollback and a redeploy bring nothing new.
    ///   → 18, 30, 36 h: median 30 h, mean 28 h.
    /// - a window from 40 h on prod counts only web's commit (api 1.1.0 arrived before the window).
    #[test]
    fn lead_time_counts_each_commit_at_its_first_arrival_on_the_tier() {
        let key = |a: &str, b: &str| (a.to_string(), b.to_string());
        let mut changes = Changes::default();
        changes.versions.insert(key("monitor", "1.0.0"), vec![key("api", "1.0.0"), key("web", "1.0.0")]);
        changes.versions.insert(key("monitor", "1.1.0"), vec![key("api", "1.1.0"), key("web", "1.0.0")]);
        changes.versions.insert(key("monitor", "1.2.0"), vec![key("api", "1.1.0"), key("web", "1.1.0")]);
        changes.commits.insert(key("api", "1.1.0"), vec![0, 6 * H]);
        changes.commits.insert(key("web", "1.1.0"), vec![30 * H]);
        let facts = vec![
            fact(1, "release", "prod", "prod", "1.0.0", "succeeded", -DAY),
            fact(2, "release", "env-1", "test", "1.1.0", "succeeded", 10 * H),
            fact(3, "release", "prod", "prod", "1.1.0", "failed", 34 * H),
            fact(4, "release", "prod", "prod", "1.1.0", "succeeded", 36 * H),
            fact(5, "release", "prod", "prod", "1.2.0", "succeeded", 48 * H),
            fact(6, "rollback", "prod", "prod", "1.1.0", "succeeded", 49 * H),
            fact(7, "release", "prod", "prod", "1.2.0", "succeeded", 50 * H),
        ];
        let out = compute(&facts, &changes, 0, 3 * DAY);
        let prod = out.iter().find(|d| d.tier == "prod").unwrap();
        assert_eq!(prod.changes, 3);
        assert_eq!(prod.lead_time_median_s, Some(30.0 * 3600.0));
        assert_eq!(prod.lead_time_mean_s, Some(28.0 * 3600.0));
        let test = out.iter().find(|d| d.tier == "test").unwrap();
        assert_eq!((test.changes, test.lead_time_median_s, test.lead_time_mean_s), (2, Some(25_200.0), Some(25_200.0)));
        let late = compute(&facts, &changes, 40 * H, 3 * DAY);
        let prod = late.iter().find(|d| d.tier == "prod").unwrap();
        assert_eq!((prod.changes, prod.lead_time_median_s), (1, Some(18.0 * 3600.0)));
        let none = compute(&facts, &Changes::default(), 0, 3 * DAY);
        assert!(none.iter().all(|d| d.changes == 0 && d.lead_time_median_s.is_none()));
    }
}
