//! Scenarios: what load to generate and what to measure. Each one uses a
//! driver to talk to the system under test and returns a [`crate::report::Report`].

pub mod catchup;
pub mod publish;
mod publish_task;
pub mod queues;
pub mod tiering;
