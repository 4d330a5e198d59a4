//! Domain model: identifiers, rules and the official working-day calendar.
//!
//! `ids` and `rules` are pure (no IO, no clock): callers inject the receipt date and, for the
//! publication-lag rule, a working-day calendar through `rules::WorkingDays`.

pub mod calendar;
pub mod ids;
pub mod rules;
