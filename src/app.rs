//! Wiring: the only place that puts the store, the services and the HTTP surface together.
//!
//! [`App::build`] connects and migrates the store, applies the catalog file when it differs from the live
//! revision, and binds the listener (so tests can bind port 0 and read [`App::port`] before serving);
//! [`App::run_until_stopped`] serves until the shutdown future resolves, then drains in-flight requests.
//! It also runs the GitLab event workers (started with the server, stopped by the same shutdown) and
//! builds the Discord adapter when `TAO_DISCORD_PUBLIC_KEY` or `TAO_DISCORD_GATEWAY` is set, and runs the
//! Discord gateway connection with the server (closed by the same shutdown). Every background job is
//! owned by one `Supervisor` whose jobs are awaited on shutdown, before the store closes.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use std::sync::Arc;

use tokio::sync::watch;

use crate::chat::discord::{Discord, DiscordClient, DiscordConfig, Gateway, Verifier};
use crate::config::Settings;
use crate::deploy::queue::{Dispatcher, Executor, QueueConfig};
use crate::deploy::registry::RegistryClient;
use crate::deploy::runner::{Runner, RunnerContext};
use crate::deploy::ssh::{self, SshOptions};
use crate::gitlab::client::{Auth, GitLabClient, RetryPolicy};
use crate::gitlab::handlers::{HandlerContext, Handlers};
use crate::gitlab::worker::{self, EventQueue, WorkerConfig};
use crate::http::{self, HttpState};
use crate::service::{Actor, ServiceError, Services};
use crate::store::{self, Pool};
use crate::workitems::tapd::TapdClient;

/// A built, bound, not yet serving Tao.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    services: Services,
    dispatcher: Dispatcher,
    events: EventWiring,
    reconcile_every: Option<std::time::Duration>,
    /// The scheduled TAPD sync: how often, and the client.
    tapd_sync: Option<(std::time::Duration, TapdClient)>,
    /// The Discord gateway connection (`TAO_DISCORD_GATEWAY`), started with the server.
    gateway: Option<Gateway>,
    /// The scheduled GitLab issue backfill: how often, the client, the mapping rules.
    issue_sync: Option<(std::time::Duration, GitLabClient, crate::workitems::gitlab::IssueRules)>,
    /// How long shutdown waits for background jobs before aborting them (`TAO_DRAIN_TIMEOUT`).
    drain_timeout: std::time::Duration,
}

/// The background jobs of a serving Tao, in one place: each is spawned here with a name, stops when the
/// shared shutdown signal is raised, and is awaited on shutdown (up to a limit, then aborted) before the
/// store closes. Dropping the supervisor aborts every job, so a dropped serving future (a test's
/// "crash") leaves nothing running, like a killed process.
#[derive(Default)]
struct Supervisor {
    jobs: tokio::task::JoinSet<&'static str>,
}

impl Supervisor {
    /// Runs `job` in the background under `name`.
    fn spawn(&mut self, name: &'static str, job: impl Future<Output = ()> + Send + 'static) {
        self.jobs.spawn(async move {
            job.await;
            name
        });
    }

    /// Waits until every job has returned, at most `within`; what is still running then is aborted.
    async fn stop(mut self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.jobs.join_next()).await {
                Ok(None) => return,
                Ok(Some(Ok(name))) => tracing::debug!(job = name, "background job stopped"),
                Ok(Some(Err(e))) => tracing::error!(error = %e, "a background job failed"),
                Err(_) => {
                    tracing::warn!(
                        left = self.jobs.len(),
                        "background jobs still running at the drain timeout; aborted"
                    );
                    self.jobs.shutdown().await;
                    return;
                }
            }
        }
    }
}

/// Makes the executor of deploy tasks from the services and settings (tests inject their own).
pub type ExecutorFactory = Box<dyn FnOnce(&Services, &Settings) -> Arc<dyn Executor> + Send>;

/// The production executor: the SSH/Docker runner.
pub fn runner_executor() -> ExecutorFactory {
    Box::new(|services, settings| {
        let ctx = RunnerContext {
            pool: services.pool().clone(),
            queue: services.queue().clone(),
            catalog: services.catalog_source(),
            templates_dir: services.templates_dir().map(std::path::Path::to_path_buf),
        };
        Arc::new(Runner::new(ctx, services.ssh().clone(), settings.secrets_dir.clone(), settings.host_parallel))
    })
}

/// Which handler takes which stored GitLab event, in the order they run for every event (each ignores
/// the kinds it does not handle). The one place handlers are registered.
///
/// | handler | kinds | does |
/// |---|---|---|
/// | index | all | logs what arrived (the intake already indexed it) |
/// | policy | `merge_request`, `pipeline`, `push`, `tag_push`, `external_status_check` | `tao/policy` status and note; push and tag guard |
/// | chat | `note` | `/tao` commands in MR comments, through the services |
/// | work item links | `merge_request`, `push` | links work items named in titles, branches, commits |
/// | changes | `tag_push` | change sets of component versions (lead time) |
/// | issues | `issue` | GitLab issues as work items with state history |
pub fn event_handlers(services: &Services) -> Handlers {
    Handlers::default()
        .register(crate::gitlab::handlers::IndexHandler)
        .register(crate::enforcement::PolicyHandler)
        .register(crate::chat::mr_comment::ChatNoteHandler { services: services.clone() })
        .register(crate::workitems::link_events::WorkItemLinkHandler)
        .register(crate::metrics::changes::ChangeHandler)
        .register(crate::workitems::issue_events::IssueHandler)
}

/// What the GitLab event workers need.
struct EventWiring {
    queue: EventQueue,
    config: WorkerConfig,
    context: HandlerContext,
    handlers: Handlers,
}

impl App {
    /// Connects, migrates, applies the catalog file, recovers orphaned tasks, binds.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        App::build_with(settings, runner_executor()).await
    }

    /// Like [`App::build`] with another deploy executor.
    pub async fn build_with(settings: Settings, executor: ExecutorFactory) -> anyhow::Result<App> {
        // Everything that can be wrong with the files and the address is checked before the store is
        // touched: a typo in `--catalog` or a port in use must not create a database or run migrations.
        let catalog_yaml = match &settings.catalog {
            Some(path) => {
                let yaml =
                    std::fs::read_to_string(path).with_context(|| format!("reading catalog {}", path.display()))?;
                if let Err(errors) = crate::catalog::Catalog::from_yaml(&yaml) {
                    let list: Vec<String> = errors.0.iter().map(|e| format!("  {e}")).collect();
                    anyhow::bail!("catalog {} is invalid:\n{}", path.display(), list.join("\n"));
                }
                Some((path, yaml))
            }
            None => None,
        };
        let notify_config = match &settings.notify_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the notification rules {}", path.display()))?;
                Some(crate::notify::NotifyConfig::from_yaml(&text).map_err(|errors| {
                    anyhow::anyhow!("notification rules {} are invalid:\n  {}", path.display(), errors.join("\n  "))
                })?)
            }
            None => None,
        };
        let ci = crate::ci_templates::CiTemplates::load(
            settings.ci_templates_dir.as_deref(),
            settings.public_url.as_deref(),
        )
        .context("loading the CI templates")?;
        let listener =
            TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
        let pool = Pool::connect(&settings.database_url)
            .await
            .with_context(|| format!("opening the database {}", store::describe_url(&settings.database_url)))?;
        store::migrate::run(&pool).await.context("migrating the database")?;
        let mut services = Services::load(pool).await?;
        let mut ssh = SshOptions::new(settings.ssh_identity.clone(), settings.ssh_known_hosts.clone());
        if let Some(dir) = &settings.ssh_control_dir {
            ssh.control_dir = dir.clone();
        }
        ssh.kex_algorithms = settings.ssh_kex.clone();
        ssh::clean_stale_control_dirs(&ssh.control_dir);
        services.set_ssh(ssh);
        services.set_registry(RegistryClient::new(settings.registry_credentials.clone()));
        let catalog_dir = settings.catalog.as_deref().and_then(std::path::Path::parent).map(|d| {
            if d.as_os_str().is_empty() {
                std::path::PathBuf::from(".")
            } else {
                d.to_path_buf()
            }
        });
        services.set_templates_dir(settings.templates_dir.clone().or(catalog_dir));
        let gitlab = match (&settings.gitlab_url, &settings.gitlab_token) {
            (Some(url), Some(token)) => {
                Some(GitLabClient::new(url, Auth::PrivateToken(token.clone()), RetryPolicy::default())?)
            }
            _ => None,
        };
        services.set_gitlab(gitlab.clone());
        services.set_public_url(settings.public_url.clone());
        if let Some(config) = notify_config {
            let notifier = crate::notify::Notifier::new(
                services.pool().clone(),
                crate::notify::NotifierSettings {
                    config,
                    discord_api: settings.discord_api_url.clone(),
                    bot_token: settings.discord_bot_token.clone(),
                    public_url: settings.public_url.clone(),
                    retry_base: settings.notify_retry_base,
                },
            );
            services.set_notifier(Some(notifier));
        }
        if let Some((path, yaml)) = catalog_yaml {
            let actor = Actor::Local(format!("file:{}", path.display()));
            match services.apply_catalog(&actor, &yaml).await {
                Ok(applied) if applied.changed => tracing::info!(revision = applied.revision, "applied catalog file"),
                Ok(applied) => tracing::info!(revision = applied.revision, "catalog file unchanged"),
                Err(ServiceError::Invalid(errors)) => {
                    let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
                    anyhow::bail!("catalog {} is invalid:\n{}", path.display(), list.join("\n"));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let config = QueueConfig {
            workers: settings.workers,
            lease: settings.lease,
            owner: settings.instance.clone(),
            drain_timeout: settings.drain_timeout,
        };
        let executor = executor(&services, &settings);
        let dispatcher = Dispatcher::new(services.pool().clone(), config, services.queue().clone(), executor);
        dispatcher.recover().await.context("recovering orphaned deploy tasks")?;
        let console = web_console(&settings).context("the web console")?;
        let web = crate::web::WebState { services: services.clone(), open_read: settings.open_read, console };
        let state = HttpState { services: services.clone(), open_read: settings.open_read, ci };
        let queue = EventQueue::default();
        // One intake writer for webhook deliveries and status check requests: durable before the answer.
        let writer = crate::store::intake::EventWriter::new(services.pool().clone());
        let intake = http::webhook::Intake {
            writer: writer.clone(),
            secrets: std::sync::Arc::new(settings.gitlab_webhook_secrets.clone()),
            max_body: settings.webhook_max_body,
            queue: queue.clone(),
        };
        if settings.gitlab_webhook_secrets.is_empty() {
            tracing::warn!("no GitLab webhook secret configured (TAO_GITLAB_WEBHOOK_SECRET): webhooks are refused");
        }
        let status_checks = http::policy::StatusCheckIntake {
            writer,
            secret: settings.gitlab_status_check_secret.clone(),
            queue: queue.clone(),
        };
        let discord = discord_adapter(&services, &settings).await?;
        let gateway = match (&discord, &settings.discord_bot_token) {
            (Some(d), Some(token)) if settings.discord_gateway => {
                Some(Gateway::new(d.clone(), &settings.discord_api_url, token)?)
            }
            (_, None) if settings.discord_gateway => {
                anyhow::bail!(
                    "TAO_DISCORD_GATEWAY is set but TAO_DISCORD_BOT_TOKEN is not (the gateway connects as the bot)"
                )
            }
            _ => None,
        };
        let router = http::router(state, settings.max_body)
            .merge(http::webhook::routes(intake))
            .merge(http::policy::status_check_routes(status_checks, settings.webhook_max_body))
            .merge(http::discord::routes(discord))
            .merge(crate::web::router(web));
        let events = EventWiring {
            queue,
            config: WorkerConfig {
                workers: settings.event_workers,
                retention: settings.event_retention,
                ..WorkerConfig::default()
            },
            context: HandlerContext {
                pool: services.pool().clone(),
                gitlab: gitlab.clone(),
                catalog: services.catalog_source(),
                public_url: settings.public_url.clone(),
                notifier: services.notifier().cloned(),
                issue_rules: settings.issue_rules.clone(),
            },
            handlers: event_handlers(&services),
        };
        let reconcile_every = settings.policy_reconcile_interval.filter(|_| settings.gitlab_url.is_some());
        let tapd_sync = match (settings.tapd_sync_interval, &settings.tapd_auth) {
            (Some(every), Some(auth)) => {
                Some((every, TapdClient::new(&settings.tapd_url, auth.clone(), RetryPolicy::default())?))
            }
            (Some(_), None) => anyhow::bail!(
                "TAO_TAPD_SYNC_INTERVAL is set but TAPD credentials are not (TAO_TAPD_TOKEN, or TAO_TAPD_USER and \
                 TAO_TAPD_PASSWORD)"
            ),
            (None, _) => None,
        };
        let issue_sync = match (settings.gitlab_issue_sync_interval, &gitlab) {
            (Some(every), Some(client)) => Some((every, client.clone(), settings.issue_rules.clone())),
            (Some(_), None) => anyhow::bail!(
                "TAO_GITLAB_ISSUE_SYNC_INTERVAL is set but GitLab is not (TAO_GITLAB_URL and TAO_GITLAB_TOKEN)"
            ),
            (None, _) => None,
        };
        Ok(App {
            listener,
            router,
            services,
            dispatcher,
            events,
            reconcile_every,
            tapd_sync,
            issue_sync,
            gateway,
            drain_timeout: settings.drain_timeout,
        })
    }

    /// Tao's own event handlers ([`event_handlers`]) over this app's services, e.g. to add one.
    pub fn event_handlers(&self) -> Handlers {
        event_handlers(&self.services)
    }

    /// Replaces the event handlers (tests and embedders; Tao's own are [`event_handlers`]).
    pub fn with_handlers(mut self, handlers: Handlers) -> App {
        self.events.handlers = handlers;
        self
    }

    /// Replaces the event workers' settings (tests: shorter retries).
    pub fn with_worker_config(mut self, config: WorkerConfig) -> App {
        self.events.config = config;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The bound port (useful after binding port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The services, for embedding and tests.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes in-flight requests and closes the
    /// store.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), database = self.services.pool().backend(), "Tao is serving");
        let (stop_tx, stop_rx) = watch::channel(false);
        let ev = self.events;
        let mut jobs = Supervisor::default();
        for w in worker::start(&ev.config, ev.context, ev.handlers, ev.queue, stop_rx.clone()).await? {
            // Spawned by `worker::start`: the guard aborts the worker when its supervised wrapper is.
            let guard = AbortOnDrop(w.abort_handle());
            jobs.spawn("gitlab event worker", async move {
                let _guard = guard;
                let _ = w.await;
            });
        }
        // Finish GitLab deployments of tasks that ended (or were just interrupted) while no Tao told GitLab.
        let syncing = self.services.clone();
        jobs.spawn("gitlab deployment catch-up", async move { syncing.sync_gitlab_deployments().await });
        if let Some(notifier) = self.services.notifier().cloned() {
            jobs.spawn("notifier", notifier.clone().run(stop_rx.clone()));
            jobs.spawn("notifier task watch", notifier.watch_tasks(self.services.queue().subscribe(), stop_rx.clone()));
        }
        if let Some(every) = self.reconcile_every {
            jobs.spawn("policy reconcile", reconcile_policy(self.services.clone(), every, stop_rx.clone()));
        }
        if let Some((every, client)) = self.tapd_sync {
            jobs.spawn("tapd sync", sync_tapd(self.services.clone(), client, every, stop_rx.clone()));
        }
        if let Some((every, client, rules)) = self.issue_sync {
            let job = sync_gitlab_issues(self.services.clone(), client, rules, every, stop_rx.clone());
            jobs.spawn("gitlab issue sync", job);
        }
        // Not spawned: if this future is dropped (an aborted test "crash"), the dispatcher and its
        // workers go with it, exactly like a killed process (and `jobs`, dropped, aborts the rest).
        let dispatcher = self.dispatcher.run(stop_rx.clone());
        // Not spawned either: the connection goes with this future.
        let gateway_stop = stop_rx.clone();
        let gateway = async move {
            if let Some(g) = self.gateway {
                g.run(gateway_stop).await;
            }
        };
        let mut http_stop = stop_rx;
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        });
        let (served, _, (), ()) = tokio::join!(serve, signal, dispatcher, gateway);
        // Every job saw the stop signal when `signal` ran; each is awaited before the store closes.
        jobs.stop(self.drain_timeout).await;
        served?;
        self.services.pool().close().await;
        tracing::info!("Tao stopped");
        Ok(())
    }
}

/// Aborts a spawned task when dropped (a supervised job that waits on a task spawned elsewhere).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The Discord adapter when a public key (the endpoint) or the gateway is configured (without a key the
/// endpoint refuses every call); registers the slash commands of the configured guilds first (a failure
/// is logged, not fatal).
async fn discord_adapter(services: &Services, settings: &Settings) -> anyhow::Result<Option<Discord>> {
    if settings.discord_public_key.is_none() && !settings.discord_gateway {
        return Ok(None);
    }
    let verifier = match &settings.discord_public_key {
        Some(key) => Some(Verifier::from_hex(key).map_err(|e| anyhow::anyhow!("TAO_DISCORD_PUBLIC_KEY: {e}"))?),
        None => None,
    };
    let client = DiscordClient::new(&settings.discord_api_url, settings.discord_bot_token.clone())?;
    if settings.discord_roles.is_empty() {
        tracing::warn!("TAO_DISCORD_ROLES maps nobody: every Discord command will be denied");
    }
    if let Some((application, guilds)) = &settings.discord_register {
        for guild in guilds {
            match crate::chat::discord::register(&client, application, guild).await {
                Ok(n) => tracing::info!(guild = %guild, commands = n, "registered Discord slash commands"),
                Err(e) => tracing::warn!(guild = %guild, error = %e, "cannot register Discord slash commands"),
            }
        }
    }
    let config = DiscordConfig {
        verifier,
        roles: settings.discord_roles.clone(),
        client,
        public_url: settings.public_url.clone(),
        token_lifetime: settings.discord_token_lifetime,
        poll: settings.discord_poll,
    };
    Ok(Some(Discord::new(services.clone(), config)))
}

/// Re-checks open MRs that missed their `tao/policy` verdict (GitLab does not redeliver failed hooks by
/// itself), every `every`, until stopped.
async fn reconcile_policy(services: Services, every: std::time::Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Ok(ctx) = services.policy_context() else { return };
        match crate::enforcement::reconcile(&ctx, &ctx.catalog.project_paths()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(checked = n, "policy reconcile re-checked merge requests"),
            Err(e) => tracing::warn!(error = %e, "policy reconcile failed"),
        }
    }
}

/// Syncs work items from TAPD for the live catalog's mapped products at start and then every `every`,
/// until stopped. A failed run is logged and repeated at the next tick from the stored cursors.
async fn sync_tapd(
    services: Services,
    client: TapdClient,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let catalog = services.catalog_now();
        match crate::workitems::sync::sync_all(services.pool(), &client, &catalog, crate::workitems::tapd::MAX_LIMIT)
            .await
        {
            Ok(reports) => {
                let items: usize = reports.iter().map(|r| r.items.len()).sum();
                tracing::info!(workspaces = reports.len(), items, "scheduled TAPD sync done");
            }
            Err(e) => tracing::warn!(error = %e, "scheduled TAPD sync failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Backfills GitLab issues of the live catalog's projects at start and then every `every`, until stopped.
/// A failed project is logged and the others still run; it is repeated at the next tick from its cursor.
async fn sync_gitlab_issues(
    services: Services,
    client: GitLabClient,
    rules: crate::workitems::gitlab::IssueRules,
    every: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    use crate::workitems::gitlab_sync;
    loop {
        let catalog = services.catalog_now();
        let mut issues = 0;
        for project in gitlab_sync::projects(&catalog) {
            let per_page = crate::gitlab::client::MAX_PER_PAGE;
            match gitlab_sync::sync_project(services.pool(), &client, &catalog, &rules, &project, per_page).await {
                Ok(r) => issues += r.issues.len(),
                Err(e) => tracing::warn!(error = %e, "scheduled GitLab issue sync failed"),
            }
        }
        tracing::info!(issues, "scheduled GitLab issue sync done");
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}

/// The web console of these settings: sign-in with GitLab when the OAuth application is configured
/// (redirect URI `TAO_PUBLIC_URL/ui/oauth/callback`), the role map shared with chat, `Secure` cookies
/// behind an https public URL.
fn web_console(settings: &Settings) -> anyhow::Result<std::sync::Arc<crate::web::Console>> {
    let public = settings.public_url.as_deref().map(|u| u.trim_end_matches('/').to_string());
    let oauth = match (&settings.gitlab_oauth, &settings.gitlab_url, &public) {
        (Some((id, secret)), Some(gitlab), Some(public)) => Some(crate::gitlab::oauth::OAuthApp {
            gitlab_url: gitlab.clone(),
            client_id: id.clone(),
            client_secret: secret.clone(),
            redirect_uri: format!("{public}/ui/oauth/callback"),
        }),
        (Some(_), _, _) => anyhow::bail!("sign-in with GitLab needs TAO_GITLAB_URL and TAO_PUBLIC_URL"),
        _ => None,
    };
    let secure = public.as_deref().is_some_and(|u| u.starts_with("https://"));
    let ttl = i64::try_from(settings.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let console =
        crate::web::Console::new(oauth, settings.discord_roles.clone(), ttl, secure).map_err(anyhow::Error::msg)?;
    Ok(std::sync::Arc::new(console))
}

#[cfg(test)]
mod tests {
    use super::Supervisor;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn stop_waits_for_jobs_that_finish_after_the_signal_and_aborts_the_rest() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let finished = Arc::new(AtomicBool::new(false));
        let mut jobs = Supervisor::default();
        let (done, mut stop) = (finished.clone(), rx.clone());
        jobs.spawn("slow to stop", async move {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            done.store(true, Ordering::SeqCst);
        });
        tx.send(true).unwrap();
        jobs.stop(Duration::from_secs(10)).await;
        assert!(finished.load(Ordering::SeqCst), "stop returned before the job had finished");

        // A job that ignores the signal is aborted at the limit (dropping it drops what it holds).
        let held = Arc::new(());
        let mut jobs = Supervisor::default();
        let mine = held.clone();
        jobs.spawn("stuck", async move {
            let _mine = mine;
            std::future::pending::<()>().await;
        });
        let started = tokio::time::Instant::now();
        jobs.stop(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(Arc::strong_count(&held), 1, "the stuck job was aborted");
    }

    #[tokio::test]
    async fn dropping_the_supervisor_aborts_its_jobs() {
        let held = Arc::new(());
        let mut jobs = Supervisor::default();
        let mine = held.clone();
        jobs.spawn("forever", async move {
            let _mine = mine;
            std::future::pending::<()>().await;
        });
        drop(jobs);
        for _ in 0..100 {
            if Arc::strong_count(&held) == 1 {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the job outlived its supervisor");
    }
}
