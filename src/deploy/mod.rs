//! The deploy engine: what to deploy and how it runs.
//!
//! Deciding: `spec` (the run spec stored with what runs), `plan` (pure diff and order), `prepare` (a
//! request and everything its planning reads: deployed state, templates, product versions, rollback
//! snapshots), `registry` (image digests). Queuing: `queue` (dispatcher, leases, stop requests) over
//! `store::task`. Executing: `runner` (one task: plan, connect, pull, replace, record, roll back; its
//! log in `tasklog`), `rollout` (the strategy that replaces one step's container and health-gates it:
//! today `recreate`) and `drift` (hosts vs record), built on the execution layer: one multiplexed SSH
//! session per host (`ssh`), remote `docker` commands (`docker`; validated image references in
//! `reference`), health gates (`health`), work on many hosts at once (`fanout`) and the phase-one
//! `tao deploy-images` flow (`images`). The execution layer takes validated values and reports what
//! happened; it never touches the store.
//!
//! Tasks are the only way anything is deployed; every front end (API, CLI, chat, CI) enqueues one.

pub mod docker;
pub mod drift;
pub mod fanout;
pub mod health;
pub mod images;
pub mod plan;
pub mod prepare;
pub mod proxy;
pub mod queue;
pub mod reference;
pub mod registry;
pub mod rollout;
pub mod runner;
pub mod spec;
pub mod ssh;
pub mod task;
pub mod tasklog;
