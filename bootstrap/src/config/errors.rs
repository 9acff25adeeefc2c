//! The errors of seeds.toml: one [`KeyError`] per bad key, collected by [`KeyErrors`]
//! across every section, and [`ConfigError`], why the file could not be loaded.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::MAX_DURATION_SECS;

/// One invalid setting: the dotted key (`bootstrap.static_peers[0]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The key path, e.g. `network.name`, `bootstrap.dns_seeds[2]`.
    pub key: String,
    /// The problem, e.g. `invalid type: string "x", expected u16`.
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why seeds.toml could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML (the message carries line and column).
    #[error("{0}")]
    Syntax(String),
    /// A key that seeds.toml does not define, e.g. `unknown key bootstrap.foo`.
    #[error("unknown key {key}")]
    UnknownKey {
        /// The dotted key path.
        key: String,
    },
    /// One or more values of the wrong type or failing validation, each naming its key;
    /// displayed as `key: message` entries joined by `; `.
    #[error("{}", join(.0))]
    Invalid(Vec<KeyError>),
}

fn join(errors: &[KeyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    /// The keys this error names (empty for [`ConfigError::Io`] and [`ConfigError::Syntax`]).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            ConfigError::Io { .. } | ConfigError::Syntax(_) => Vec::new(),
            ConfigError::UnknownKey { key } => vec![key.as_str()],
            ConfigError::Invalid(errors) => errors.iter().map(|e| e.key.as_str()).collect(),
        }
    }
}

/// Collects validation errors, each naming its key, across every section of a file.
#[derive(Debug, Default)]
pub struct KeyErrors(Vec<KeyError>);

impl KeyErrors {
    /// Returns `value`, recording `key` as invalid (`must be between {min} and {max}, got
    /// {value}`) when it lies outside `min..=max`.
    pub fn range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        key: &str,
        value: T,
        min: T,
        max: T,
    ) -> T {
        if value < min || value > max {
            self.push(key, format!("must be between {min} and {max}, got {value}"));
        }
        value
    }

    /// Records that `key` (dotted, e.g. `da.batch_max_bytes`) is invalid because of
    /// `message`.
    pub fn push(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.0.push(KeyError {
            key: key.into(),
            message: message.to_string(),
        });
    }

    /// Consumes the collection: `Ok(value)` when no error was recorded, otherwise
    /// [`ConfigError::Invalid`] with the errors in the order they were pushed.
    ///
    /// # Errors
    /// As described.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::Invalid(self.0))
        }
    }

    pub(super) fn secs(&mut self, key: &str, secs: u64) -> Duration {
        if secs == 0 || secs > MAX_DURATION_SECS {
            self.push(
                format!("bootstrap.{key}"),
                format!("must be between 1 and {MAX_DURATION_SECS} seconds, got {secs}"),
            );
        }
        Duration::from_secs(secs)
    }
}
