//! The integration-test binary (one, as matklad recommends): offline pipeline checks over the
//! shipped configuration, and end-to-end and fault tests against a real RabbitMQ.

#[allow(dead_code, unreachable_pub)]
mod support;

mod config_and_fixtures;
mod end_to_end;
