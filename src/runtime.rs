//! The running service: AMQP and HTTP ingest, per-destination delivery, observability, and
//! the supervisor that reconnects after broker failures and drains on shutdown.
//!
//! Only this module (with `broker`, `store` and `sinks`) touches the network; the pipeline it
//! calls is pure.

pub mod access;
pub mod admin_ops;
pub mod app;
pub mod breaker;
pub mod console;
pub mod console_api;
pub mod delivery;
pub mod http;
pub mod ingest;
pub mod lifecycle;
pub mod lifecycle_api;
pub mod lifecycle_timer;
pub mod metrics;
pub mod ops;
pub mod retention;
pub mod scorecard;
pub mod sinks;
pub mod state;
