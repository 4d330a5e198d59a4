//! Who is calling the admin listener and what they may do: bearer tokens → a named caller
//! with a role (`admin.token` is the `admin`; `[[admin.tokens]]` name operators, auditors and
//! further admins), and the permission table every operations handler checks.
//!
//! | permission | operator | auditor | admin |
//! |------------|----------|---------|-------|
//! | `Read` (queues, records and dead letters masked, receipts, destinations, audit) | yes | yes | yes |
//! | `Reveal` (personal identifiers in clear; audited) | no | yes | yes |
//! | `Replay` (dead letters; a dry run needs only `Read`) | yes | no | yes |
//! | `Pause` (pause and resume destinations) | yes | no | yes |
//! | `Purge` (delete dead letters; a dry run needs only `Read`) | no | no | yes |
//!
//! Without any token configured the listener is open and every caller is `admin` (local
//! development), as before roles existed.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Role;
use crate::runtime::state::AppState;

/// What a handler needs the caller to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Reveal,
    Replay,
    Pause,
    /// Deleting dead letters destroys what an audit may ask for later: admins only.
    Purge,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::Read,
        Permission::Reveal,
        Permission::Replay,
        Permission::Pause,
        Permission::Purge,
    ];

    /// What showing stored data (records, dead letters, list entries) needs: unmasked
    /// (`reveal`) only for callers allowed to see personal data; masked, any reader.
    pub fn to_show(reveal: bool) -> Permission {
        if reveal { Permission::Reveal } else { Permission::Read }
    }
}

/// The permission table (also in the module doc and docs/console.md).
pub fn allows(role: Role, permission: Permission) -> bool {
    match permission {
        Permission::Read => true,
        Permission::Reveal => matches!(role, Role::Auditor | Role::Admin),
        Permission::Replay | Permission::Pause => matches!(role, Role::Operator | Role::Admin),
        Permission::Purge => role == Role::Admin,
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `admin` for the holder of `admin.token`, else the `[[admin.tokens]]` name.
    pub name: String,
    pub role: Role,
    /// The audit log's actor for what this caller does.
    pub actor: String,
}

impl Caller {
    pub fn may(&self, permission: Permission) -> bool {
        allows(self.role, permission)
    }
}

/// The caller behind a request's `Authorization: Bearer …`, if the token is known (or no
/// token is configured at all).
pub fn caller(state: &AppState, headers: &HeaderMap) -> Option<Caller> {
    let config = &state.config;
    if config.admin_token.is_none() && config.admin_tokens.is_empty() {
        return Some(Caller {
            name: "admin".into(),
            role: Role::Admin,
            actor: legacy_actor(headers),
        });
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?
        .as_bytes();
    // Every token is compared, so the time taken does not tell which one nearly matched.
    let mut found = None;
    if let Some(token) = &config.admin_token
        && constant_eq(given, token.expose().as_bytes())
    {
        found =
            Some(Caller { name: "admin".into(), role: Role::Admin, actor: legacy_actor(headers) });
    }
    for entry in &config.admin_tokens {
        if constant_eq(given, entry.token.expose().as_bytes()) && found.is_none() {
            found = Some(Caller {
                name: entry.name.clone(),
                role: entry.role,
                actor: format!("api:{}", entry.name),
            });
        }
    }
    found
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No known token: 401.
    Unauthenticated,
    /// The role lacks the permission: 403.
    Forbidden(Role, Permission),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Denied::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "admin token required".to_owned())
            }
            Denied::Forbidden(role, permission) => (
                StatusCode::FORBIDDEN,
                format!(
                    "role {} may not {}",
                    role.as_str(),
                    match permission {
                        Permission::Read => "read",
                        Permission::Reveal => "reveal personal identifiers",
                        Permission::Replay => "replay dead letters",
                        Permission::Pause => "pause or resume destinations",
                        Permission::Purge => "purge dead letters",
                    }
                ),
            ),
        };
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The caller, if allowed `permission`.
///
/// # Errors
///
/// No known token, or the caller's role lacks the permission; `into_response` is the answer.
pub fn require(
    state: &AppState,
    headers: &HeaderMap,
    permission: Permission,
) -> Result<Caller, Denied> {
    let caller = caller(state, headers).ok_or(Denied::Unauthenticated)?;
    if !caller.may(permission) {
        return Err(Denied::Forbidden(caller.role, permission));
    }
    Ok(caller)
}

/// The holder of the shared admin token names themselves in `X-Credgate-Actor` (the token
/// proves access, the header says which operator), else `admin-api`.
fn legacy_actor(headers: &HeaderMap) -> String {
    let name = headers
        .get("x-credgate-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.chars().take(100).collect::<String>());
    format!("api:{}", name.unwrap_or_else(|| "admin-api".to_owned()))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_act_auditors_reveal_admins_do_both() {
        let table: Vec<(Role, Vec<bool>)> = [Role::Operator, Role::Auditor, Role::Admin]
            .into_iter()
            .map(|role| (role, Permission::ALL.iter().map(|p| allows(role, *p)).collect()))
            .collect();
        assert_eq!(
            table,
            [
                // read, reveal, replay, pause, purge
                (Role::Operator, vec![true, false, true, true, false]),
                (Role::Auditor, vec![true, true, false, false, false]),
                (Role::Admin, vec![true, true, true, true, true]),
            ]
        );
    }

    #[test]
    fn tokens_are_compared_in_full() {
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
        assert!(!constant_eq(b"abc", b"abcd"));
    }
}
