//! The deploy engine: plan (pure diff and order), queue (durable tasks, environment leases, workers),
//! runner (executes a plan over SSH and Docker), and the run spec stored with what runs.
//!
//! Tasks are the only way anything is deployed; every front end (API, CLI, chat, CI) enqueues one.

pub mod plan;
pub mod queue;
pub mod registry;
pub mod spec;
