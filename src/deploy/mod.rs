//! Deploying containers to hosts over SSH.
//!
//! Owns the execution layer: one multiplexed SSH session per host (`ssh`), the remote `docker` commands
//! run through it (`docker`; validated image references in `reference`), health gates (`health`), work
//! on many hosts at once (`fanout`) and the phase-one `tao deploy-images` flow (`images`). Must not
//! decide *what* to deploy (that is the planner's job) nor touch the store: these modules take validated
//! values and report what happened.

pub mod docker;
pub mod fanout;
pub mod health;
pub mod images;
pub mod reference;
pub mod ssh;
