//! credgate: a data-exchange gateway for public-resource trading credit supervision.
//!
//! Platforms send documents in their own formats; credgate decodes, maps, validates and routes
//! them as canonical catalog records and delivers every copy at least once. See
//! `ARCHITECTURE.md` for the data flow, the code map and the invariants.

pub mod broker;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod decode;
pub mod demo;
pub mod domain;
pub mod encode;
mod fasthash;
pub mod fixtures;
pub mod import;
pub mod lifecycle;
pub mod map;
pub mod pipeline;
pub mod record;
pub mod retention;
pub mod route;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod testkit;
pub mod validate;
