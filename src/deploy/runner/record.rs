//! What a task leaves in the store: the deployed state of each container it replaced or restored, and,
//! for a whole product version (a full release or a rollback), the version the environment now runs with
//! a snapshot pinned to the digests that were pulled (what a later rollback returns to).

use super::Runner;
use crate::deploy::plan::Current;
use crate::deploy::prepare::{current_specs, DeployRequest, DeployTarget};
use crate::deploy::queue::Outcome;
use crate::deploy::spec::RunSpec;
use crate::deploy::tasklog::TaskLog;
use crate::store::deployed::{self, Deployed};
use crate::store::task::TaskRow;
use crate::store::Pool;

/// Records that `spec` now runs as `container` (pulled as `digest`) on `host`, done by task `t`;
/// `action` is the history's word for it (`deployed`, `restored`).
pub(super) async fn deployed(
    pool: &Pool,
    t: &TaskRow,
    host: &str,
    spec: &RunSpec,
    container: &str,
    digest: &str,
    action: &str,
) -> Result<(), String> {
    let run_spec = serde_json::to_string(spec).unwrap_or_default();
    let record = Deployed {
        env: &t.env,
        host,
        component: &spec.component,
        product: spec.product.as_deref(),
        version: spec.version.as_deref(),
        image: &spec.image,
        image_tag: &spec.image_tag,
        image_digest: Some(digest),
        container,
        run_spec: &run_spec,
        task_id: t.id,
    };
    deployed::record(pool, &record, action).await.map_err(|e| e.to_string())
}

impl Runner {
    /// Records a completed product version (full release or rollback) with the state after it.
    pub(super) async fn succeed(&self, t: &TaskRow, req: &DeployRequest, log: &TaskLog) -> Outcome {
        let full = match &req.target {
            DeployTarget::Release { components, .. } => components.is_empty(),
            DeployTarget::Rollback { .. } => true,
            DeployTarget::Component { .. } => false,
        };
        if let (true, Some(product), Some(version)) = (full, &t.product, &t.version) {
            let snapshot = match self.snapshot(&t.env, product).await {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("recording the deployed product version failed: {e}")),
            };
            let json = serde_json::to_string(&snapshot).unwrap_or_default();
            if let Err(e) = deployed::record_release(self.pool(), &t.env, product, version, t.id, &json).await {
                return Outcome::Failed(format!("recording the deployed product version failed: {e}"));
            }
            log.info(&format!("{} now runs {product} {version}", t.env)).await;
        }
        log.info("done").await;
        Outcome::Succeeded
    }

    /// Every recorded container of `product` in `env`, pinned to the digest that was pulled.
    async fn snapshot(&self, env: &str, product: &str) -> Result<Vec<Current>, String> {
        let rows = deployed::state(self.pool(), env).await.map_err(|e| e.to_string())?;
        let rows: Vec<_> = rows.into_iter().filter(|r| r.product.as_deref() == Some(product)).collect();
        let mut current = current_specs(&rows).map_err(|e| e.to_string())?;
        for (c, row) in current.iter_mut().zip(&rows) {
            if let (None, Some(d)) = (&c.spec.image_digest, &row.image_digest) {
                c.spec.image = format!("{}@{d}", c.spec.image_repo);
                c.spec.image_digest = Some(d.clone());
            }
        }
        Ok(current)
    }
}
