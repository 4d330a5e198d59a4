//! The open transaction of either backend, so the submodules' commit functions are one plain
//! function each instead of one per backend: SQL text is the same on both, only the
//! connection type differs.

/// A connection inside a transaction, of either backend.
#[derive(Debug)]
pub(super) enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

/// What `store::commit` holds while it applies a batch.
pub(super) trait Tx: Send {
    fn conn(&mut self) -> Conn<'_>;
}

impl Tx for sqlx::Transaction<'_, sqlx::Sqlite> {
    fn conn(&mut self) -> Conn<'_> {
        Conn::Sqlite(self)
    }
}

impl Tx for sqlx::Transaction<'_, sqlx::Postgres> {
    fn conn(&mut self) -> Conn<'_> {
        Conn::Postgres(self)
    }
}

/// Runs `$body` with `$c` bound to the concrete connection (`&mut SqliteConnection` or
/// `&mut PgConnection`); the body is compiled once per backend.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::backend::Conn::Sqlite($c) => $body,
            $crate::store::backend::Conn::Postgres($c) => $body,
        }
    };
}
pub(super) use on_conn;

/// Now, as every timestamp of the store is written (RFC 3339, +08:00, milliseconds), so that
/// text order is time order.
pub(super) fn now() -> String {
    crate::pipeline::rfc3339_shanghai(jiff::Timestamp::now())
}

/// A user-given instant (`2026-11-23T10:00:00+08:00`, `2026-11-23`) in the store's text form.
///
/// # Errors
///
/// The text is neither an RFC 3339 timestamp nor a date.
pub fn parse_instant(text: &str) -> Result<String, String> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(crate::pipeline::rfc3339_shanghai(ts));
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>()
        && let Ok(zoned) = date.to_zoned(crate::pipeline::shanghai())
    {
        return Ok(crate::pipeline::rfc3339_shanghai(zoned.timestamp()));
    }
    Err(format!("`{text}` is neither an RFC 3339 timestamp nor a date (YYYY-MM-DD)"))
}
