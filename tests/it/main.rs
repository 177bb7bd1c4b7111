//! Tao's integration tests, in one binary to keep link time down.
//!
//! `support` holds the harness (databases on both backends, `spawn_app`); each other module covers one
//! area through Tao's real surfaces (HTTP on port 0, the built `tao` binary, the store).

mod api;
mod browser_smoke;
mod cfd;
mod chat_mr;
mod ci;
mod ci_deploy;
mod ci_e2e;
mod ci_rules;
mod cli;
mod deploy;
mod discord;
mod discord_gateway;
mod discord_picture;
mod event_store;
mod events;
mod exec;
mod faults;
mod floors;
mod fuzz;
mod gitlab;
mod gitlab_issues;
mod gitlab_mr;
mod gitlab_repo;
mod harness;
mod lead_time;
mod lists;
mod metrics;
mod migration;
mod notify;
mod policy;
mod policy_audit;
mod queue;
mod rollout;
mod store;
mod support;
mod tapd;
mod web;
mod webhook;
