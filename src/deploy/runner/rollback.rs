//! Rollback of a failed or cancelled task: the steps it replaced are undone newest first. The previous
//! run spec comes back (pinned by digest when recorded) and is health-checked, or a container that did
//! not run before is removed; each outcome is logged and recorded.

use super::{containers, record, Replaced, Runner, Sessions};
use crate::deploy::docker::RemoteDocker;
use crate::deploy::plan::Step;
use crate::deploy::rollout::{self, first_line};
use crate::deploy::spec::RunSpec;
use crate::deploy::ssh::SshSession;
use crate::deploy::tasklog::TaskLog;
use crate::store::deployed;
use crate::store::task::TaskRow;

impl Runner {
    /// Undoes replaced steps, newest first. Returns a summary for the task's error.
    pub(super) async fn roll_back(
        &self,
        t: &TaskRow,
        replaced: Vec<Replaced>,
        sessions: &Sessions,
        log: &TaskLog,
    ) -> String {
        if replaced.is_empty() {
            return "nothing had been changed".into();
        }
        log.write("warn", None, None, &format!("rolling back {} container(s)", replaced.len())).await;
        let mut failures = 0;
        for r in replaced.into_iter().rev() {
            let step = &r.step;
            let session = match sessions.get(&step.host.name).await {
                Ok(s) => s,
                Err(e) => {
                    failures += 1;
                    log.at("error", step, &format!("rollback failed: host unreachable: {e}")).await;
                    continue;
                }
            };
            let session = session.as_ref();
            let docker = RemoteDocker::new(session);
            let result = match &step.previous {
                Some(previous) => self.restore(t, step, previous, session, log).await,
                None => match docker.remove(&step.spec.container).await {
                    Ok(_) => deployed::remove(self.pool(), &t.env, &step.host.name, &step.spec.component, t.id)
                        .await
                        .map(|_| "removed (it did not run before)".to_string())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
            };
            match result {
                Ok(what) => log.at("warn", step, &format!("rolled back: {what}")).await,
                Err(e) => {
                    failures += 1;
                    log.at("error", step, &format!("rollback failed: {e}")).await;
                }
            }
        }
        if failures == 0 {
            "rolled back what this task changed".into()
        } else {
            format!("rollback failed for {failures} container(s): check the environment")
        }
    }

    /// Brings `previous` back on the step's host; a restored container that is not healthy is a warning
    /// (it ran before: nothing better is at hand).
    async fn restore(
        &self,
        t: &TaskRow,
        step: &Step,
        previous: &RunSpec,
        session: &SshSession,
        log: &TaskLog,
    ) -> Result<String, String> {
        let secrets = self.secrets([previous]).await?;
        let spec = self.container_spec(t, previous, &secrets)?;
        let spec = containers::with_files(session, &spec, previous).await?;
        let docker = RemoteDocker::new(session);
        let digest = docker.pull(&spec.image).await.map_err(|e| e.to_string())?;
        docker.replace(&spec).await.map_err(|e| e.to_string())?;
        if let Some(h) = &previous.health {
            if let Err(e) = rollout::probe(session, &spec.name, h).await {
                log.at("warn", step, &format!("restored container is not healthy: {}", first_line(&e.to_string())))
                    .await;
            }
        }
        record::deployed(self.pool(), t, &step.host.name, previous, &spec.name, digest.as_str(), "restored").await?;
        Ok(format!("{} runs {} again", spec.name, previous.describe()))
    }
}
