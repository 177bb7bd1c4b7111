//! Commands that act on hosts directly, in-process, without a server: `tao deploy-images` (phase one)
//! and the hidden `tao ssh-fanout` used by `scripts/bench-fanout.sh`.
//!
//! Owns their arguments and output only; the work is in `crate::deploy`. There is no password flag:
//! SSH authenticates with a key (`--identity` / `TAO_SSH_IDENTITY`) or ssh-agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::output::{print_json, table};
use crate::catalog::{parse_duration, PortMapping};
use crate::deploy::docker::ImageRef;
use crate::deploy::fanout::for_each_host;
use crate::deploy::images::{deploy_images, DeployImagesRequest};
use crate::deploy::ssh::{SshOptions, SshTarget};

/// How to reach hosts over SSH.
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// Private key for SSH (else ssh-agent and ssh's default keys).
    #[arg(long, env = "TAO_SSH_IDENTITY", hide_env_values = true)]
    pub identity: Option<PathBuf>,
    /// known_hosts file to verify host keys against (else ~/.ssh/known_hosts). Unknown keys are refused.
    #[arg(long, env = "TAO_SSH_KNOWN_HOSTS", hide_env_values = true)]
    pub known_hosts: Option<PathBuf>,
    /// Directory for SSH control sockets [default: $XDG_RUNTIME_DIR/tao-ssh or /tmp/tao-ssh-$USER].
    #[arg(long, env = "TAO_SSH_CONTROL_DIR", hide_env_values = true, hide = true)]
    pub control_dir: Option<PathBuf>,
    /// Seconds an idle SSH master connection stays open.
    #[arg(long, default_value_t = 60, hide = true)]
    pub ssh_idle_secs: u64,
    /// SSH key exchange algorithms (ssh's KexAlgorithms syntax, e.g. ^curve25519-sha256) [default: ssh's].
    #[arg(long, env = "TAO_SSH_KEX_ALGORITHMS", hide_env_values = true, hide = true)]
    pub ssh_kex: Option<String>,
}

impl SshArgs {
    fn options(&self) -> SshOptions {
        let mut o = SshOptions::new(self.identity.clone(), self.known_hosts.clone());
        if let Some(d) = &self.control_dir {
            o.control_dir = d.clone();
        }
        o.idle_timeout = Duration::from_secs(self.ssh_idle_secs.max(1));
        o.kex_algorithms = self.ssh_kex.clone();
        o
    }
}

/// `tao deploy-images`: pull and (re)start images on one host over SSH, each health-gated.
#[derive(Debug, Clone, Args)]
pub struct DeployImagesArgs {
    /// The host, user@host[:port].
    #[arg(long, value_parser = |s: &str| SshTarget::parse(s).map_err(|e| e.to_string()))]
    pub host: SshTarget,
    /// An image registry/path/name:tag (or @sha256:…); repeat for several, deployed in order.
    #[arg(short = 'c', long = "image", required = true, value_parser = |s: &str| ImageRef::parse(s).map_err(|e| e.to_string()))]
    pub images: Vec<ImageRef>,
    /// Publish a port of one image's container: NAME=[ip:]published:container (NAME is the image's last
    /// path segment); repeatable.
    #[arg(short = 'p', long = "publish", value_name = "NAME=MAPPING", value_parser = parse_publish)]
    pub publish: Vec<(String, PortMapping)>,
    /// Prefix of container names (the name is PREFIX + the image's last path segment).
    #[arg(long, default_value = "")]
    pub name_prefix: String,
    /// How long each container may take to become healthy, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    pub health_timeout: Duration,
    /// For images without a HEALTHCHECK: how long the container must run without restarting, e.g. 3s.
    #[arg(long, default_value = "3s", value_parser = parse_duration_arg)]
    pub settle: Duration,
    /// SSH settings.
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// `tao ssh-fanout` (hidden): run K commands on each of N hosts over one connection per host, for the
/// fan-out benchmark. The commands are shell lines given by the operator, run as they are.
#[derive(Debug, Clone, Args)]
pub struct SshFanoutArgs {
    /// Hosts, user@host[:port]; repeat.
    #[arg(long = "host", required = true, value_parser = |s: &str| SshTarget::parse(s).map_err(|e| e.to_string()))]
    pub hosts: Vec<SshTarget>,
    /// A command (a shell line) to run on each host, in order; repeat.
    #[arg(long = "cmd", required = true)]
    pub commands: Vec<String>,
    /// Hosts in flight at once.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
    /// SSH settings.
    #[command(flatten)]
    pub ssh: SshArgs,
}

fn parse_publish(s: &str) -> Result<(String, PortMapping), String> {
    let (name, mapping) = s.split_once('=').ok_or_else(|| format!("expected NAME=MAPPING, found {s:?}"))?;
    let m = PortMapping::parse(mapping).ok_or_else(|| format!("{mapping:?}: expected {}", PortMapping::EXPECTED))?;
    Ok((name.to_string(), m))
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("expected a duration like 30s or 2m, found {s:?}"))
}

/// Runs `tao deploy-images`.
pub async fn deploy_images_cmd(args: DeployImagesArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut publish: BTreeMap<String, Vec<PortMapping>> = BTreeMap::new();
    for (name, m) in args.publish {
        publish.entry(name).or_default().push(m);
    }
    let req = DeployImagesRequest {
        target: args.host,
        images: args.images,
        ssh: args.ssh.options(),
        publish,
        name_prefix: args.name_prefix,
        settle: args.settle,
        health_timeout: args.health_timeout,
    };
    let reports = deploy_images(&req, |r| {
        if !json {
            println!("{} is healthy as container {} ({}, {} ms)", r.image, r.container, r.digest, r.millis);
        }
    })
    .await?;
    if json {
        print_json(&json!({ "host": req.target.to_string(), "deployed": reports }));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the hidden `tao ssh-fanout`.
pub async fn ssh_fanout_cmd(args: SshFanoutArgs, json: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let commands = std::sync::Arc::new(args.commands);
    let results = for_each_host(&args.hosts, &args.ssh.options(), args.parallel, Duration::from_secs(300), move |s| {
        let commands = commands.clone();
        async move {
            let mut failed = 0usize;
            for c in commands.iter() {
                if !s.run_script(c, None, Duration::from_secs(120)).await?.ok() {
                    failed += 1;
                }
            }
            Ok::<_, crate::deploy::ssh::SshError>(failed)
        }
    })
    .await;
    let elapsed = started.elapsed();
    let mut rows = Vec::new();
    let mut bad = 0;
    for (host, r) in args.hosts.iter().zip(&results) {
        let status = match r {
            Ok(0) => "ok".to_string(),
            Ok(n) => format!("{n} command(s) failed"),
            Err(e) => e.to_string(),
        };
        if status != "ok" {
            bad += 1;
        }
        rows.push(vec![host.to_string(), status]);
    }
    if json {
        print_json(&json!({ "hosts": results.len(), "failed": bad, "millis": elapsed.as_millis() }));
    } else {
        print!("{}", table(&["HOST", "RESULT"], rows));
        println!("{} hosts, {} failed, {} ms", results.len(), bad, elapsed.as_millis());
    }
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
