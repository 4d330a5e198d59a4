//! Configuration: the files integrators write (`config/credgate.toml`, `config/routes.toml`,
//! `adapters/*.toml`), compiled together with the catalog into the runtime configuration.
//!
//! `raw` mirrors the files; `compile` validates and resolves them, collecting every problem;
//! `secrets` resolves `${env:NAME}` / `${file:path}` references.

pub mod compile;
pub mod raw;
pub mod secrets;

pub use compile::{Adapter, AdminToken, CompiledConfig, ConfigError, Destination, LoadOptions};
pub use raw::Role;
