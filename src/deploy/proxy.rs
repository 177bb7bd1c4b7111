//! The reverse proxy on each host: one HAProxy container per environment and host (`tao-proxy-ENV-HOST`,
//! host networking, master-worker mode) that owns the published ports of the blue-green components
//! there, installed, configured, upgraded and reloaded by Tao.
//!
//! Its configuration lives on the host under `~/.tao/proxy/PROXY/` (mounted at
//! `/usr/local/etc/haproxy`): `conf.d/00-global.cfg` (a stats socket exposing the listeners, so a reload
//! hands them to the new worker without closing them; timeouts) and one `conf.d/50-COMPONENT.cfg` per
//! component: a frontend per published port and a backend with the one server that is live. The
//! fragment's first line names the live container (`# tao live=api-blue …`): the host, not the store,
//! is the truth of where traffic goes, so a Tao that died mid-switch finds it again.
//!
//! Switching writes the fragment (beside, then renamed over), checks the whole configuration with
//! `haproxy -c` inside the running proxy, then sends the master `SIGUSR2` and waits for its
//! `Loading success.` (HAProxy's supported graceful reload: the old worker finishes its connections,
//! nothing is refused). Never restarts a running proxy except to upgrade its image. Must not decide
//! which container is live (see `rollout::blue_green`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::docker::{ContainerSpec, ImageRef, RemoteDocker};
use super::plan::Switch;
use super::ssh::SshSession;
use crate::catalog::PortMapping;

/// Where the proxy's configuration is mounted in its container (the official image's layout).
pub const CONFIG_MOUNT: &str = "/usr/local/etc/haproxy";
/// How long a reload (or a first start) may take to report `Loading success.`.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// HAProxy's global section and defaults, the same on every host.
pub fn global_config() -> String {
    format!(
        "# written by Tao: the host's proxy for blue-green switching\n\
         global\n  stats socket {CONFIG_MOUNT}/admin.sock mode 600 level admin expose-fd listeners\n\
         \x20 log stderr format short local0 notice\n\
         defaults\n  log global\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         \x20 timeout http-request 10s\n  timeout tunnel 1h\n"
    )
}

/// One published port of a component and where its live container answers it.
#[derive(Debug, Clone)]
pub struct Route {
    /// The catalog's mapping (the proxy binds its host address and published port).
    pub mapping: PortMapping,
    /// HTTP mode (the port the HTTP health check probes), else TCP.
    pub http: bool,
    /// The live container's loopback address for the mapping's container port.
    pub backend: SocketAddr,
}

/// The configuration fragment of `component` routing to container `live` (which runs `what`).
pub fn fragment(component: &str, live: &str, what: &str, routes: &[Route]) -> String {
    let mut s = format!("# tao live={live} runs={}\n", what.replace('\n', " "));
    for r in routes {
        let p = &r.mapping;
        let name = format!("{component}_{}", p.published);
        let bind = match p.host_ip {
            Some(IpAddr::V6(ip)) => format!("ipv6@{ip}:{}", p.published),
            Some(IpAddr::V4(ip)) => format!("{ip}:{}", p.published),
            None => format!(":{}", p.published),
        };
        let mode = if r.http { "http" } else { "tcp" };
        let _ = write!(
            s,
            "frontend {name}\n  mode {mode}\n  bind {bind}\n  default_backend {name}\n\
             backend {name}\n  mode {mode}\n  server live {}\n",
            r.backend
        );
    }
    s
}

/// The live container a fragment names.
pub fn live_of(fragment: &str) -> Option<String> {
    let first = fragment.lines().next()?;
    let rest = first.strip_prefix("# tao live=")?;
    let name = rest.split_whitespace().next()?;
    super::docker::valid_container_name(name).then(|| name.to_string())
}

/// The proxy of one environment on one host, reached through the host's session.
pub struct HostProxy<'a> {
    session: &'a SshSession,
    switch: &'a Switch,
    labels: Vec<(String, String)>,
    dir: String,
}

impl<'a> HostProxy<'a> {
    /// Prepares the proxy's directory on the host (and its global configuration); `env` labels the
    /// container.
    pub async fn open(session: &'a SshSession, switch: &'a Switch, env: &str) -> Result<HostProxy<'a>, String> {
        super::docker::check_container_name(&switch.proxy).map_err(|e| e.to_string())?;
        let home = run(session, &["sh", "-c", "printf %s \"$HOME\""], None).await?;
        let home = home.trim_end();
        if !home.starts_with('/') || home.contains(':') {
            return Err(format!("the deploy user's home directory {home:?} cannot hold the proxy's configuration"));
        }
        let dir = format!("{home}/.tao/proxy/{}", switch.proxy);
        let labels = vec![("tao.env".to_string(), env.to_string()), ("tao.proxy".to_string(), "haproxy".to_string())];
        let this = HostProxy { session, switch, labels, dir };
        this.write("00-global.cfg", &global_config()).await?;
        Ok(this)
    }

    /// The proxy's container name.
    pub fn name(&self) -> &str {
        &self.switch.proxy
    }

    fn file(component: &str) -> String {
        format!("50-{component}.cfg")
    }

    /// The fragment of `component`, if it has one.
    pub async fn fragment(&self, component: &str) -> Result<Option<String>, String> {
        let script = "test -f \"$1/conf.d/$2\" || exit 0; printf present; cat \"$1/conf.d/$2\"";
        let f = Self::file(component);
        let out = run(self.session, &["sh", "-c", script, "sh", &self.dir, &f], None).await?;
        Ok(out.strip_prefix("present").map(str::to_string))
    }

    /// Writes `component`'s fragment (`None` removes it), atomically.
    pub async fn set_fragment(&self, component: &str, text: Option<&str>) -> Result<(), String> {
        match text {
            Some(t) => self.write(&Self::file(component), t).await,
            None => {
                let f = Self::file(component);
                run(self.session, &["sh", "-c", "rm -f \"$1/conf.d/$2\"", "sh", &self.dir, &f], None).await.map(drop)
            }
        }
    }

    async fn write(&self, file: &str, text: &str) -> Result<(), String> {
        let script = "umask 022 && mkdir -p \"$1/conf.d\" && cat > \"$1/conf.d/.$2.new\" && mv -f \"$1/conf.d/.$2.new\" \"$1/conf.d/$2\"";
        run(self.session, &["sh", "-c", script, "sh", &self.dir, file], Some(text.as_bytes())).await.map(drop)
    }

    /// How many fragments (components) the proxy routes.
    pub async fn routed(&self) -> Result<usize, String> {
        let script = "ls \"$1/conf.d\" 2>/dev/null | grep -c '^50-.*\\.cfg$' || true";
        let out = run(self.session, &["sh", "-c", script, "sh", &self.dir], None).await?;
        Ok(out.trim().parse().unwrap_or(0))
    }

    /// Makes the running proxy serve the configuration on disk: starts it when absent or stopped,
    /// recreates it when its image is not the catalog's (an upgrade), else checks the configuration and
    /// reloads it gracefully. Returns what it did, for the task log.
    pub async fn apply(&self) -> Result<&'static str, String> {
        let docker = RemoteDocker::new(self.session);
        let state = docker.inspect(&self.switch.proxy).await.map_err(|e| e.to_string())?;
        match state {
            Some(s) if s.running && s.image_ref == self.switch.proxy_image => {
                let check = ["haproxy", "-c", "-q", "-f", &format!("{CONFIG_MOUNT}/conf.d")];
                let out = docker.exec(&self.switch.proxy, &check).await.map_err(|e| e.to_string())?;
                if !out.ok() {
                    return Err(format!("the proxy refused the new configuration: {}", out.last_error_line()));
                }
                let before = self.loads().await?;
                docker.signal(&self.switch.proxy, "USR2").await.map_err(|e| e.to_string())?;
                self.wait_loaded(before).await?;
                Ok("reloaded")
            }
            previous => {
                let image = ImageRef::parse(&self.switch.proxy_image).map_err(|e| e.to_string())?;
                docker.pull(&image).await.map_err(|e| e.to_string())?;
                let mut spec = ContainerSpec::new(self.switch.proxy.clone(), image);
                spec.network = Some("host".into());
                spec.volumes.push(format!("{}:{CONFIG_MOUNT}", self.dir));
                spec.labels.extend(self.labels.iter().cloned());
                spec.command =
                    ["haproxy", "-W", "-db", "-f", &format!("{CONFIG_MOUNT}/conf.d")].map(String::from).to_vec();
                docker.replace(&spec).await.map_err(|e| e.to_string())?;
                self.wait_loaded((0, 0)).await?;
                Ok(if previous.is_some() { "recreated (upgraded or restarted)" } else { "started" })
            }
        }
    }

    /// Stops and removes the proxy (when it routes nothing any more).
    pub async fn remove(&self) -> Result<(), String> {
        RemoteDocker::new(self.session).remove(&self.switch.proxy).await.map(drop).map_err(|e| e.to_string())
    }

    /// (successful loads, failed loads) the master reported so far.
    async fn loads(&self) -> Result<(usize, usize), String> {
        let logs = RemoteDocker::new(self.session).logs(&self.switch.proxy).await.map_err(|e| e.to_string())?;
        Ok((logs.matches("Loading success.").count(), logs.matches("Loading failure").count()))
    }

    async fn wait_loaded(&self, before: (usize, usize)) -> Result<(), String> {
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let now = self.loads().await?;
            if now.0 > before.0 {
                return Ok(());
            }
            if now.1 > before.1 {
                let tail = RemoteDocker::new(self.session).logs_tail(&self.switch.proxy, 5).await.unwrap_or_default();
                return Err(format!("the proxy failed to load its configuration: {}", tail.trim()));
            }
            if Instant::now() >= deadline {
                return Err(format!("the proxy did not report a successful load within {RELOAD_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn run(session: &SshSession, argv: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    let out = session.run(argv, stdin, COMMAND_TIMEOUT).await.map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(format!("on {}: {}", session.target(), out.last_error_line()));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fragment_routes_each_published_port_and_names_its_live_container() {
        let routes = [
            Route {
                mapping: PortMapping::parse("8080:80").unwrap(),
                http: true,
                backend: "127.0.0.1:32768".parse().unwrap(),
            },
            Route {
                mapping: PortMapping::parse("127.0.0.1:9000:9000").unwrap(),
                http: false,
                backend: "127.0.0.1:32769".parse().unwrap(),
            },
        ];
        let f = fragment("api", "e1-node1-api-green", "api 1.1.0", &routes);
        assert_eq!(live_of(&f).as_deref(), Some("e1-node1-api-green"));
        assert!(f.contains("frontend api_8080\n  mode http\n  bind :8080\n  default_backend api_8080\n"), "{f}");
        assert!(f.contains("backend api_8080\n  mode http\n  server live 127.0.0.1:32768\n"), "{f}");
        assert!(f.contains("frontend api_9000\n  mode tcp\n  bind 127.0.0.1:9000\n"), "{f}");
        assert_eq!(live_of("# tao live=$(id) runs=x\n"), None, "a name that is not a container name is refused");
        assert_eq!(live_of("frontend x\n"), None);
        let g = global_config();
        assert!(g.contains("expose-fd listeners"), "seamless reloads hand the listeners over: {g}");
    }
}
