//! The integration-test binary (one, as matklad recommends): offline pipeline checks over the
//! shipped configuration, and end-to-end and fault tests against a real RabbitMQ.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

mod alarms;
mod breaker;
mod config_and_fixtures;
mod console_ui;
mod end_to_end;
mod faults;
mod import;
mod instances;
mod lifecycle_e2e;
mod penalty_life;
mod store;
mod store_e2e;
