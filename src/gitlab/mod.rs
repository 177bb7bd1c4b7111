//! GitLab: the REST client, webhook intake rules, typed views of payloads, the handlers that react to
//! stored events, the workers that run them, the webhook sync of `tao gitlab hooks sync`, and branch
//! policy on GitLab (`policy`: MR checks, push and tag guard, project audit and apply), work item links
//! from MR titles, branches and commit messages (`workitem_links`), and issues as work items
//! (`workitem_issues`).
//!
//! Flow (DESIGN.md §3): `http::webhook` verifies and stores a delivery (`webhook`, `store::event`), acks,
//! and rings the [`worker::EventQueue`]; a worker claims events in order per object, parses the typed
//! view (`events`) and runs the registered [`handlers`]. Nothing in here knows about axum.

pub mod changes;
pub mod chat;
pub mod client;
pub mod events;
pub mod handlers;
pub mod hook_sync;
pub mod policy;
pub mod webhook;
pub mod worker;
pub mod workitem_issues;
pub mod workitem_links;
