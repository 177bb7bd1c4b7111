//! Tao: a GitLab-native DevOps service and chat bot.
//!
//! A team ships a product made of components, each a GitLab project delivered as a container image;
//! Tao keeps the catalog of products, components and environments as code, records immutable product
//! versions, deploys them over SSH and Docker through a durable queue, stores every GitLab event, serves
//! the shared CI standard, enforces branch policy, answers chat (Discord, MR comments) and serves
//! delivery data (work items, DORA, cumulative flow) to Prometheus, Grafana, pandas and chat.
//!
//! # Layout
//!
//! ```text
//! main.rs        the binary: parse the CLI, init telemetry, call cli::run
//! cli/           clap commands; offline ones open the store, online ones are HTTP clients of the server
//! config/        settings (flag = env var TAO_*), Secret (never prints); plain data of the Discord role
//!                map, GitLab issue rules and TAPD credentials
//! telemetry.rs   tracing subscriber (TAO_LOG, TAO_LOG_FORMAT)
//! app.rs         App::build(settings) -> bound App; port(); run_until_stopped(shutdown)
//! service/       what front ends do: validate against the live catalog, authorize, change the store,
//!                audit; deploy.rs: deploy requests, plans, tasks, freezes, environment state; records.rs:
//!                reading what was recorded (audit, events, metrics, pictures, a version's work items)
//! ci_templates/  the shared CI standard: ci-templates/*.hbs rendered per project, cached; CI schema lint
//! chat/          chat commands (pure): the Command grammar of /tao comments, Discord and CLI; help; errors;
//!                dispatch (authorize, act, audit, reply); mr_comment.rs: the `/tao` MR-comment transport;
//!                discord/: the Discord adapter (signature, slash commands, REST client, progress edits,
//!                the gateway connection), endpoint in http/discord.rs
//! notify.rs      the notification outbox: task events to chat (MR notes, Discord), retried, durable
//! catalog/       domain: catalog model, names, versions, validation, dependency graph (pure, no I/O);
//!                access.rs: chat users, access levels and API token scopes; release.rs: product versions and their parts
//! deploy/        plan (pure), run specs, task kinds and statuses (pure), prepare (a request and what its
//!                planning reads), registry digests, queue dispatcher, runner/ (orchestration, container
//!                specs, rollback, recording), rollout/ (how a step replaces a container: recreate,
//!                blue-green), proxy.rs (the per-host HAProxy blue-green switches), task log, drift and
//!                orphans; execution over SSH: sessions and quoting, remote docker, health gates,
//!                fan-out, deploy-images
//! gitlab/        the GitLab adapter only: client, webhook verification and envelope, typed event views,
//!                the event handler contract (handlers.rs), the workers that run handlers, hook sync
//! enforcement/   branch policy enforced on GitLab: MR checks and note, push/tag guard, audit and apply,
//!                reconcile (an event handler; the pure rules are policy/)
//! web/           the web console: pages under / and /ui/ (overview, environments, deploy with its plan,
//!                tasks with a live log, release and work-item boards, policy, delivery), sign-in with
//!                GitLab OAuth or an API token, sessions and CSRF; templates and assets embedded
//! http/          router, one file per area, one auth extractor, one error mapping; list.rs: every list as
//!                a JSON array or JSON lines; workitems.rs: a release's work items and where it is deployed
//! metrics/       Prometheus exposition, DORA from stored deploys and change sets, Grafana Infinity series,
//!                PNG charts and the pictures of `tao report` and chat; counters.rs: process counters;
//!                changes.rs: change sets of component versions from release tags (lead time)
//! policy/        domain: branch model and merge rules -> Verdict { violations } (pure, table-tested)
//! store/         Pool (SQLite | PostgreSQL; SQLite WAL checkpoints in the background), migrations, one file
//!                per aggregate; intake.rs: group commit of webhook deliveries on SQLite
//! urlenc.rs      percent-encoding of URL segments (CLI and GitLab client)
//! workitems/     work items (TAPD stories and bugs, GitLab issues) with state history; references in MR
//!                titles, branches and commits (pure); the TAPD client and sync; the GitLab issue mapping
//!                and backfill; the event handlers of issues (issue_events.rs) and links (link_events.rs)
//! ```
//!
//! # Floors
//!
//! Every file sits on one floor and imports (by `crate::` or `super::` path) only from its own floor or
//! lower ones; `tests/it/floors.rs` reads this table and checks every import of `src/` against it (the
//! longest matching path wins; a directory entry ends in `/`; a line without a number continues the floor
//! above). Where a module re-exports a lower floor's type for old paths, code imports it from where it
//! lives.
//!
//! ```text
//! 0  urlenc.rs telemetry.rs metrics/counters.rs
//! 1  catalog/ policy/ ci_templates/ chat/ workitems/mod.rs workitems/links.rs deploy/plan.rs deploy/spec.rs
//!    deploy/task.rs metrics/chart.rs
//! 2  config.rs config/
//! 3  store/
//! 4  gitlab/ deploy/ workitems/tapd.rs chat/discord/client.rs chat/discord/verify.rs
//! 5  notify.rs gitlab/handlers.rs
//! 6  deploy/queue.rs deploy/runner/ deploy/rollout/ deploy/tasklog.rs deploy/drift.rs gitlab/worker.rs enforcement/ metrics/ workitems/
//! 7  service/
//! 8  chat/dispatch.rs chat/mr_comment.rs chat/picture.rs
//! 9  http/ web/ chat/discord/
//! 10 cli/ app.rs main.rs lib.rs
//! ```
//!
//! In words: 0 plain helpers; 1 the domain (pure: no I/O); 2 settings (plain data); 3 the store; 4 the
//! clients of the outside world (GitLab, SSH and Docker, registries, TAPD, Discord's REST API) and the
//! preparation of a deploy plan; 5 the notification outbox and the GitLab event handler contract
//! (`gitlab/handlers.rs`, which hands each handler the notifier); 6 the engines and the features that
//! react to GitLab events (deploy queue and runner, the event workers, branch policy enforced on GitLab,
//! metrics and change sets, work-item sync and hooks); 7 `service`, what every front end calls; 8 chat
//! dispatch and the MR-comment transport; 9 the adapters (HTTP, the Discord endpoint and gateway); 10
//! the binary, the CLI and the wiring in `app.rs`.

#![warn(missing_docs)]

pub mod app;
pub mod catalog;
pub mod chat;
pub mod ci_templates;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod enforcement;
pub mod gitlab;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod urlenc;
pub mod web;
pub mod workitems;
