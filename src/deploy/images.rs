//! Phase-one deploys without a catalog: `tao deploy-images --host user@host -c image:tag …`.
//!
//! Owns the straight path "for each image on one host: pull, replace the container, wait until healthy,
//! report", stopping at the first failure. The container is named after the image's last path segment
//! (with an optional prefix), runs with restart policy `unless-stopped` and labels recording the image and
//! its digest. Health is the image's own Docker `HEALTHCHECK` when it has one, else "running without a
//! restart for `settle`".
//!
//! Must not read the catalog or the store: everything comes in the request, already validated.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::docker::{check_container_name, ContainerSpec, DockerError, ImageRef, InvalidValue, RemoteDocker};
use super::health::{wait_image_healthy, HealthError};
use super::ssh::{SshError, SshOptions, SshSession, SshTarget};
use crate::catalog::PortMapping;

/// Label holding the image reference a container was deployed from.
pub const LABEL_IMAGE: &str = "tao.image";
/// Label holding the image's repository digest.
pub const LABEL_DIGEST: &str = "tao.digest";
/// Label marking containers Tao deployed.
pub const LABEL_MANAGED: &str = "tao.managed";

/// What to deploy where.
#[derive(Debug, Clone)]
pub struct DeployImagesRequest {
    /// The host.
    pub target: SshTarget,
    /// Images, deployed in this order.
    pub images: Vec<ImageRef>,
    /// How to connect.
    pub ssh: SshOptions,
    /// Ports to publish, by image name (the last path segment of the repository).
    pub publish: BTreeMap<String, Vec<PortMapping>>,
    /// Prepended to each container name (e.g. to run several copies on one host).
    pub name_prefix: String,
    /// How long a container without a HEALTHCHECK must run without restarting to count as healthy.
    pub settle: Duration,
    /// How long to wait for each container to become healthy.
    pub health_timeout: Duration,
}

impl DeployImagesRequest {
    /// The container name of an image: prefix + the repository's last path segment.
    pub fn container_name(&self, image: &ImageRef) -> String {
        format!("{}{}", self.name_prefix, image.name())
    }

    /// Checks everything before any connection: container names, duplicate names, publish keys.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let mut seen = BTreeMap::new();
        for image in &self.images {
            let name = self.container_name(image);
            check_container_name(&name)?;
            if let Some(other) = seen.insert(name.clone(), image) {
                return Err(InvalidValue {
                    field: "image list",
                    expected: "images with different names (each becomes the container of that name)",
                    found: format!("{other} and {image} both make container {name}"),
                });
            }
        }
        if let Some(unknown) = self.publish.keys().find(|k| !self.images.iter().any(|i| i.name() == k.as_str())) {
            return Err(InvalidValue {
                field: "--publish",
                expected: "NAME=MAPPING where NAME is the last path segment of one of the images",
                found: unknown.clone(),
            });
        }
        Ok(())
    }
}

/// One image deployed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageReport {
    /// The image reference.
    pub image: String,
    /// The container running it.
    pub container: String,
    /// Its repository digest.
    pub digest: String,
    /// The container id.
    pub container_id: String,
    /// Time taken, in milliseconds.
    pub millis: u128,
}

/// Step at which an image failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `docker pull`.
    Pull,
    /// Replacing the container.
    Run,
    /// Waiting for health.
    Health,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Pull => "pull",
            Step::Run => "start",
            Step::Health => "health check",
        })
    }
}

/// Why `deploy-images` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// Refused before connecting.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// Could not connect.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// One image failed; the ones before it are deployed, the ones after untouched.
    #[error("{image} (container {container}) on {host} failed at {step}: {detail}")]
    Failed {
        /// The image.
        image: String,
        /// Its container.
        container: String,
        /// The host.
        host: String,
        /// Where it failed.
        step: Step,
        /// Why (for a health failure, with the tail of the container's logs).
        detail: String,
    },
}

/// Deploys `req.images` on `req.target` in order, calling `done` after each; stops at the first failure.
pub async fn deploy_images(
    req: &DeployImagesRequest,
    mut done: impl FnMut(&ImageReport),
) -> Result<Vec<ImageReport>, ImagesError> {
    req.validate()?;
    let session = SshSession::connect(&req.target, &req.ssh).await?;
    let mut reports = Vec::new();
    let mut result = Ok(());
    for image in &req.images {
        match deploy_one(&session, req, image).await {
            Ok(report) => {
                done(&report);
                reports.push(report);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if let Err(e) = session.close().await {
        tracing::warn!(error = %e, "closing the ssh session failed");
    }
    result.map(|()| reports)
}

async fn deploy_one(
    session: &SshSession,
    req: &DeployImagesRequest,
    image: &ImageRef,
) -> Result<ImageReport, ImagesError> {
    let started = Instant::now();
    let container = req.container_name(image);
    let fail = |step, detail: String| ImagesError::Failed {
        image: image.to_string(),
        container: container.clone(),
        host: session.target().to_string(),
        step,
        detail,
    };
    let docker_fail = |step, e: DockerError| match e {
        DockerError::Command { detail, .. } => fail(step, detail),
        other => fail(step, other.to_string()),
    };
    let docker = RemoteDocker::new(session);
    tracing::info!(host = %session.target(), image = %image, "pulling");
    let digest = docker.pull(image).await.map_err(|e| docker_fail(Step::Pull, e))?;
    let mut spec = ContainerSpec::new(container.clone(), image.clone());
    spec.ports = req.publish.get(image.name()).cloned().unwrap_or_default();
    spec.labels.insert(LABEL_IMAGE.into(), image.to_string());
    spec.labels.insert(LABEL_DIGEST.into(), digest.clone());
    spec.labels.insert(LABEL_MANAGED.into(), "deploy-images".into());
    let container_id = docker.replace(&spec).await.map_err(|e| docker_fail(Step::Run, e))?;
    tracing::info!(host = %session.target(), container = %container, "started; waiting for health");
    wait_image_healthy(session, &container, req.settle, req.health_timeout).await.map_err(|e| match e {
        HealthError::Unhealthy { reason, last_error, logs_tail, .. } => fail(
            Step::Health,
            format!("{reason}; last error: {last_error}\n--- last lines of `docker logs {container}` ---\n{logs_tail}"),
        ),
        HealthError::Ssh(e) => fail(Step::Health, e.to_string()),
    })?;
    Ok(ImageReport { image: image.to_string(), container, digest, container_id, millis: started.elapsed().as_millis() })
}
