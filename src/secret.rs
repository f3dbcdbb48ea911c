//! Secrets as a type: their `Debug` and `Display` never show the value, and the
//! only way in is through a reference (`*_env`, `*_file`) resolved at load time.

use std::{fmt, path::Path};

/// A secret value. Deliberately has no `Display`, `Serialize` or `PartialEq`.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into().into_boxed_slice())
    }

    /// The raw bytes, for code that must use the secret (MACs, upstream headers).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a secret comes from. Exactly one source must be given.
pub enum SecretSource<'a> {
    Inline(&'a str),
    Env(&'a str),
    File(&'a Path),
}

/// Why a secret reference could not be resolved. Never contains the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0:?} is not set")]
    EnvMissing(String),
    #[error("environment variable {0:?} is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("cannot read secret file {path:?}: {reason}")]
    File { path: String, reason: String },
    #[error("secret is empty")]
    Empty,
}

impl SecretSource<'_> {
    /// Reads the secret. File contents lose one trailing newline, as written by
    /// `echo` or most editors; an empty secret is always an error.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Inline(v) => v.as_bytes().to_vec(),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) => v.into_bytes(),
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretError::EnvMissing(name.to_string()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::EnvNotUnicode(name.to_string()))
                }
            },
            SecretSource::File(path) => {
                let mut v = std::fs::read(path).map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    reason: e.kind().to_string(),
                })?;
                if v.ends_with(b"\n") {
                    v.pop();
                    if v.ends_with(b"\r") {
                        v.pop();
                    }
                }
                v
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn file_secret_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(SecretSource::File(&p).resolve().unwrap().expose(), b"abc");
    }

    #[test]
    fn missing_and_empty_secrets_are_errors() {
        let e = SecretSource::Env("SCOPEGATE_TEST_SURELY_UNSET")
            .resolve()
            .unwrap_err();
        assert!(e.to_string().contains("is not set"));
        assert!(matches!(
            SecretSource::Inline("").resolve(),
            Err(SecretError::Empty)
        ));
    }
}
