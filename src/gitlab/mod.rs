//! GitLab, the adapter only: the REST client, webhook intake rules, typed views of payloads, the event
//! handler contract (`handlers`), the workers that run the registered handlers over stored events, and
//! the webhook sync of `tao gitlab hooks sync`. What Tao does with an event is a feature's, each in its
//! own module (`crate::enforcement`, `crate::chat::mr_comment`, `crate::workitems::link_events`,
//! `crate::workitems::issue_events`, `crate::metrics::changes`), registered in `crate::app::event_handlers`.
//!
//! Flow (docs/DESIGN.md §3): `http::webhook` verifies and stores a delivery (`webhook`, `store::event`), acks,
//! and rings the [`worker::EventQueue`]; a worker claims events in order per object, parses the typed
//! view (`events`) and runs the registered [`handlers`]. Nothing in here knows about axum.

pub mod client;
pub mod events;
pub mod handlers;
pub mod hook_sync;
pub mod oauth;
pub mod webhook;
pub mod worker;
