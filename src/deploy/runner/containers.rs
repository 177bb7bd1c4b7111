//! Container specs of a task: a run spec made into a validated `docker run` (ports, env, secrets by
//! reference, volumes, labels), the secrets read from the secrets directory, and the rendered
//! configuration files uploaded to the host and mounted read-only.

use std::collections::HashMap;
use std::time::Duration;

use super::Runner;
use crate::catalog::PortMapping;
use crate::config::Secret;
use crate::deploy::docker::{ContainerSpec, ImageRef};
use crate::deploy::spec::RunSpec;
use crate::deploy::ssh::SshSession;
use crate::store::task::TaskRow;

impl Runner {
    /// The validated container of `spec` for task `t`, with its secrets resolved from `secrets`.
    pub(super) fn container_spec(
        &self,
        t: &TaskRow,
        spec: &RunSpec,
        secrets: &HashMap<String, Secret>,
    ) -> Result<ContainerSpec, String> {
        let image = ImageRef::parse(&spec.image).map_err(|e| e.to_string())?;
        let mut c = ContainerSpec::new(spec.container.clone(), image);
        for p in &spec.ports {
            c.ports.push(PortMapping::parse(p).ok_or_else(|| format!("port mapping {p:?} is invalid"))?);
        }
        c.env = spec.env.clone();
        for (var, reference) in &spec.secret_env {
            let value = secrets.get(reference).ok_or_else(|| format!("secret {reference:?} was not resolved"))?;
            c.secret_env.insert(var.clone(), value.clone());
        }
        c.volumes = spec.volumes.clone();
        c.command = spec.command.clone();
        c.restart = spec.restart.clone();
        c.labels = spec.labels(&t.env);
        c.labels.insert("tao.task".into(), t.id.to_string());
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// Reads every secret the specs reference from the secrets directory (asynchronously: this runs on
    /// the runtime's workers).
    pub(super) async fn secrets<'a>(
        &self,
        specs: impl IntoIterator<Item = &'a RunSpec>,
    ) -> Result<HashMap<String, Secret>, String> {
        let mut out = HashMap::new();
        for reference in specs.into_iter().flat_map(|s| s.secret_env.values()) {
            if out.contains_key(reference) {
                continue;
            }
            let dir = self.secrets_dir.as_ref().ok_or_else(|| {
                format!("secret {reference:?} is referenced but no secrets directory is configured (TAO_SECRETS_DIR)")
            })?;
            if reference.contains('/') || reference.starts_with('.') {
                return Err(format!("secret reference {reference:?} is not a plain name"));
            }
            let path = dir.join(reference);
            let value = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| format!("secret {reference:?} cannot be read from {}: {e}", path.display()))?;
            out.insert(reference.clone(), Secret::new(value.strip_suffix('\n').unwrap_or(&value)));
        }
        Ok(out)
    }
}

/// Uploads a spec's rendered configuration files to the host (through stdin, under the deploy user's
/// `~/.tao/files/CONTAINER/`) and returns the container spec with each mounted read-only at its target.
pub(super) async fn with_files(
    session: &SshSession,
    spec: &ContainerSpec,
    run: &RunSpec,
) -> Result<ContainerSpec, String> {
    if run.files.is_empty() {
        return Ok(spec.clone());
    }
    let t = Duration::from_secs(30);
    let home = session.run(&["sh", "-c", "printf %s \"$HOME\""], None, t).await.map_err(|e| e.to_string())?;
    let home = home.stdout.trim_end().to_string();
    if !home.starts_with('/') || home.contains(':') {
        return Err(format!("the deploy user's home directory {home:?} cannot hold configuration files"));
    }
    let dir = format!("{home}/.tao/files/{}", spec.name);
    let mut out = spec.clone();
    for (i, f) in run.files.iter().enumerate() {
        let base: String = f
            .target
            .rsplit('/')
            .next()
            .unwrap_or("file")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
        let name = format!("{i}-{base}");
        let script = "umask 022 && mkdir -p \"$1\" && cat > \"$1/$2\"";
        let written = session
            .run(&["sh", "-c", script, "sh", &dir, &name], Some(f.content.as_bytes()), t)
            .await
            .map_err(|e| e.to_string())?;
        if !written.ok() {
            return Err(format!("uploading {} failed: {}", f.target, written.last_error_line()));
        }
        out.volumes.push(format!("{dir}/{name}:{}:ro", f.target));
    }
    out.validate().map_err(|e| e.to_string())?;
    Ok(out)
}
