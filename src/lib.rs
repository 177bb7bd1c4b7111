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
//! config.rs      settings (flag = env var TAO_*), Secret (never prints)
//! telemetry.rs   tracing subscriber (TAO_LOG, TAO_LOG_FORMAT)
//! app.rs         App::build(settings) -> bound App; port(); run_until_stopped(shutdown)
//! service/       what front ends do: validate against the live catalog, authorize, change the store,
//!                audit; deploy.rs: deploy requests, plans, tasks, freezes, environment state
//! ci_templates/  the shared CI standard: ci-templates/*.hbs rendered per project, cached; CI schema lint
//! chat/          chat commands (pure): the Command grammar of /tao comments, Discord and CLI; help; errors;
//!                dispatch (authorize, act, audit, reply); discord/: the Discord adapter (signature, slash
//!                commands, REST client, progress edits, the gateway connection), endpoint in
//!                http/discord.rs
//! catalog/       domain: catalog model, names, versions, validation, dependency graph (pure, no I/O)
//! deploy/        plan (pure), run specs, registry digests, queue dispatcher, runner, drift; execution
//!                over SSH: sessions and quoting, remote docker, health gates, fan-out, deploy-images
//! gitlab/        GitLab client, webhook verification and envelope, typed event views, handlers, workers,
//!                branch policy on GitLab (MR checks, push/tag guard, audit and apply), work item links and
//!                issues from events, change sets of component versions from release tags (lead time)
//! http/          router, one file per area, one auth extractor, one error mapping; list.rs: every list as
//!                a JSON array or JSON lines; workitems.rs: a release's work items and where it is deployed
//! metrics/       Prometheus exposition, DORA from stored deploys and change sets, Grafana Infinity series,
//!                PNG charts and the pictures of `tao report` and chat
//! policy/        domain: branch model and merge rules -> Verdict { violations } (pure, table-tested)
//! store/         Pool (SQLite | PostgreSQL; SQLite WAL checkpoints in the background), migrations, one file
//!                per aggregate; intake.rs: group commit of webhook deliveries on SQLite
//! urlenc.rs      percent-encoding of URL segments (CLI and GitLab client)
//! workitems/     work items (TAPD stories and bugs, GitLab issues) with state history; references in MR
//!                titles, branches and commits (pure); the TAPD client and sync; the GitLab issue mapping
//!                and backfill
//! ```
//!
//! Layers point one way: `http` and `cli` call `service`, which uses `catalog`, `deploy` and `store`; the
//! domain (`catalog`, `chat`, `deploy::plan`, `deploy::spec`) does no I/O, and `catalog` depends on nothing
//! else in the crate.

#![warn(missing_docs)]

pub mod app;
pub mod catalog;
pub mod chat;
pub mod ci_templates;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod gitlab;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod urlenc;
pub mod workitems;
