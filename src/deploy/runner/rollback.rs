//! Rollback of a failed or cancelled task: the steps it replaced are undone newest first. The previous
//! run spec comes back (pinned by digest when recorded) and is health-checked, or a container that did
//! not run before is removed; each outcome is logged and recorded. A blue-green step is switched back:
//! the kept old container starts again next to the new one and the host's proxy returns to it once it is
//! healthy, so the component keeps answering throughout.

use super::{containers, record, Replaced, Runner, Sessions};
use crate::deploy::docker::RemoteDocker;
use crate::deploy::plan::Step;
use crate::deploy::proxy::HostProxy;
use crate::deploy::queue::TaskControl;
use crate::deploy::rollout::{self, blue_green::BlueGreen, first_line, Rollout, StepIo};
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
            let result = match (&step.switch, &step.previous) {
                (Some(_), _) => self.switch_back(t, &r, session, log).await,
                (None, Some(previous)) => self.restore(t, step, previous, session, log).await,
                (None, None) => match docker.remove(&step.spec.container).await {
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

    /// Undoes a blue-green step: the previous spec goes live again the blue-green way (the kept
    /// container started again when there is one), or, when nothing ran before, the component leaves the
    /// proxy and its container goes.
    async fn switch_back(
        &self,
        t: &TaskRow,
        r: &Replaced,
        session: &SshSession,
        log: &TaskLog,
    ) -> Result<String, String> {
        let step = &r.step;
        let docker = RemoteDocker::new(session);
        let Some(previous) = &step.previous else {
            let switch = step.switch.as_ref().ok_or("not a blue-green step")?;
            let proxy = HostProxy::open(session, switch, &t.env).await?;
            proxy.set_fragment(&step.spec.component, None).await?;
            if proxy.routed().await? == 0 {
                proxy.remove().await?;
            } else {
                proxy.apply().await?;
            }
            if let Some(c) = &r.container {
                docker.remove(c).await.map_err(|e| e.to_string())?;
            }
            deployed::remove(self.pool(), &t.env, &step.host.name, &step.spec.component, t.id)
                .await
                .map_err(|e| e.to_string())?;
            return Ok("removed (it did not run before)".to_string());
        };
        let secrets = self.secrets([previous]).await?;
        let spec = self.container_spec(t, previous, &secrets)?;
        let spec = containers::with_files(session, &spec, previous).await?;
        let digest = docker.pull(&spec.image).await.map_err(|e| e.to_string())?;
        let back = Step { spec: previous.clone(), previous: None, ..step.clone() };
        let io = StepIo {
            step: &back,
            spec: &spec,
            session,
            control: TaskControl::never(),
            log,
            env: &t.env,
            reuse: r.retired.as_deref(),
        };
        let live = BlueGreen.replace(io).await.map_err(|f| f.message)?;
        record::deployed(self.pool(), t, &step.host.name, previous, &live.container, &digest, "restored").await?;
        if let Some(left) = &live.retired {
            let drain = rollout::drain_of(&back);
            log.at("info", step, &format!("draining {left} for {drain:?}")).await;
            tokio::time::sleep(drain).await;
            let _ = docker.remove(left).await;
        }
        if let Some(kept) = r.retired.as_ref().filter(|k| **k != live.container) {
            let _ = docker.remove(kept).await;
        }
        Ok(format!("switched back: {} runs {} again", live.container, previous.describe()))
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
