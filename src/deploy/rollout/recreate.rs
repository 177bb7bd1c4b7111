//! `recreate`: the old container is stopped and removed, the new one started under its name, then
//! health-gated. Between the stop and a healthy new container the component does not answer on that
//! host; the strategy for what must never run twice (a migrator, a singleton consumer).

use super::{first_line, gate, Replacement, Rollout, StepFailure, StepFuture, StepIo};
use crate::deploy::docker::RemoteDocker;

/// Stop the old container, start the new one in its place, wait until it is healthy.
pub struct Recreate;

impl Rollout for Recreate {
    fn replace<'a>(&'a self, io: StepIo<'a>) -> StepFuture<'a> {
        Box::pin(async move {
            let StepIo { step, spec, session, mut control, log, .. } = io;
            log.at("info", step, &format!("replacing container {} ({})", spec.name, step.spec.describe())).await;
            RemoteDocker::new(session).replace(spec).await.map_err(|e| StepFailure::replaced(e.to_string()))?;
            log.at("info", step, "waiting for the health check").await;
            let result = tokio::select! {
                r = gate(session, &spec.name, step.spec.health.as_ref()) => r,
                reason = control.stopped() => {
                    return Err(StepFailure::replaced(format!("stopped ({reason:?}) while waiting for health")));
                }
            };
            if let Err(e) = result {
                log.at("error", step, &e.to_string()).await;
                return Err(StepFailure::replaced(first_line(&e.to_string())));
            }
            Ok(Replacement { container: spec.name.clone(), retired: None })
        })
    }
}
