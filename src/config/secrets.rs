//! Secret references: configuration never holds a secret inline, only `${env:NAME}` or
//! `${file:path}` (relative to the config directory). Resolved values are wrapped so that
//! `Debug` never prints them.

use std::fmt;
use std::path::Path;

/// A resolved secret; `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A reference as written in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
}

/// Parses a reference.
///
/// # Errors
///
/// The value is not of the form `${env:NAME}` or `${file:path}` (an inline secret).
pub fn parse_ref(value: &str) -> Result<SecretRef, String> {
    let inner = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')).ok_or_else(|| {
        "secrets must be `${env:NAME}` or `${file:path}`, never inline".to_owned()
    })?;
    if let Some(name) = inner.strip_prefix("env:") {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`{value}`: bad environment variable name"));
        }
        return Ok(SecretRef::Env(name.to_owned()));
    }
    if let Some(path) = inner.strip_prefix("file:") {
        if path.is_empty() {
            return Err(format!("`{value}`: empty file path"));
        }
        return Ok(SecretRef::File(path.to_owned()));
    }
    Err(format!("`{value}`: unknown secret source (use env: or file:)"))
}

/// Resolves a reference.
///
/// # Errors
///
/// The variable is unset or the file unreadable.
pub fn resolve(reference: &SecretRef, config_dir: &Path) -> Result<Secret, String> {
    match reference {
        SecretRef::Env(name) => std::env::var(name)
            .map(Secret)
            .map_err(|_| format!("environment variable {name} is not set")),
        SecretRef::File(path) => {
            let full = config_dir.join(path);
            std::fs::read_to_string(&full)
                .map(|s| Secret(s.trim_end().to_owned()))
                .map_err(|e| format!("cannot read secret file {}: {e}", full.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secrets_are_refused() {
        assert!(parse_ref("hunter2").is_err());
        assert_eq!(parse_ref("${env:KEY_1}"), Ok(SecretRef::Env("KEY_1".into())));
        assert_eq!(parse_ref("${file:secrets/a.key}"), Ok(SecretRef::File("secrets/a.key".into())));
        assert!(parse_ref("${vault:x}").is_err());
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
