//! The daemon's log: a tracing subscriber whose filter can be replaced and whose file can be
//! reopened while it runs (SIGHUP, issue 14 §5).
//!
//! * The filter is `--log-level` when given, else `RUST_LOG` when set, else seeds.toml's
//!   `[log] level`, else `info`; a SIGHUP re-reads `[log] level` (when neither of the first
//!   two is set).
//! * `--log-format json` writes one JSON object per line (timestamp, level, target, fields),
//!   for log shippers; `text` (the default) is the human form.
//! * With `--log-file PATH` lines are appended to PATH (created mode 0640 if missing, no
//!   colour codes); a SIGHUP reopens it, so logrotate can move the file away and signal.
//!   Without it they go to stderr, with colour only when stderr is a terminal.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Why the log could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter does not parse.
    #[error("invalid log level {level:?}: {reason}")]
    Filter {
        /// The filter given.
        level: String,
        /// What the parser said.
        reason: String,
    },
    /// The log file cannot be opened.
    #[error("cannot open the log file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The subscriber could not be installed or changed.
    #[error("log setup: {0}")]
    Setup(String),
}

/// Parses a tracing filter (`info`, `warn,dsdn_p2p=debug`, …).
///
/// # Errors
/// [`LogError::Filter`] naming the filter and the parser's reason.
pub fn parse_filter(level: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(level).map_err(|e| LogError::Filter {
        level: level.to_owned(),
        reason: e.to_string(),
    })
}

/// The form of log lines (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// An append-only log file that can be reopened at the same path.
#[derive(Clone, Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open_append(path: &Path) -> Result<File, LogError> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o640);
    }
    o.open(path).map_err(|source| LogError::File {
        path: path.to_owned(),
        source,
    })
}

impl LogFile {
    /// Opens (creating if missing) `path` for appending.
    ///
    /// # Errors
    /// [`LogError::File`].
    pub fn open(path: &Path) -> Result<Self, LogError> {
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    /// Opens the path again (after logrotate moved the old file away); the old file is
    /// closed once the new one is in place. On error the old file stays in use.
    ///
    /// # Errors
    /// [`LogError::File`].
    pub fn reopen(&self) -> Result<(), LogError> {
        let new = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = new;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A writer of one log line to a [`LogFile`].
pub struct LogFileWriter(Arc<Mutex<File>>);

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.file.clone())
    }
}

/// The installed log: what a SIGHUP may change.
#[derive(Clone)]
pub struct Log {
    filter: reload::Handle<EnvFilter, Registry>,
    file: Option<LogFile>,
    from_env: bool,
    level: Arc<Mutex<String>>,
}

impl Log {
    /// Installs the global subscriber: filter from `fixed` (`--log-level`), else `RUST_LOG`,
    /// else `level` (`[log] level`), else `info`; lines in `format` to `file` when given,
    /// else stderr.
    ///
    /// # Errors
    /// [`LogError`] when the filter does not parse, the file cannot be opened or a
    /// subscriber is already installed.
    pub fn init(
        fixed: Option<&str>,
        level: Option<&str>,
        file: Option<&Path>,
        format: LogFormat,
    ) -> Result<Self, LogError> {
        let env = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
        let fixed = fixed.map(str::to_owned).or(env);
        let from_env = fixed.is_some();
        let text = fixed
            .or_else(|| level.map(str::to_owned))
            .unwrap_or_else(|| "info".to_owned());
        let (filter, handle) = reload::Layer::new(parse_filter(&text)?);
        let file = file.map(LogFile::open).transpose()?;
        type Filtered =
            tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
        let lines: Box<dyn Layer<Filtered> + Send + Sync> = match (&file, format) {
            (Some(f), LogFormat::Text) => tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(f.clone())
                .boxed(),
            (Some(f), LogFormat::Json) => tracing_subscriber::fmt::layer()
                .json()
                .with_writer(f.clone())
                .boxed(),
            (None, LogFormat::Text) => tracing_subscriber::fmt::layer()
                .with_ansi(io::stderr().is_terminal())
                .with_writer(io::stderr)
                .boxed(),
            (None, LogFormat::Json) => tracing_subscriber::fmt::layer()
                .json()
                .with_writer(io::stderr)
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(lines)
            .try_init()
            .map_err(|e| LogError::Setup(e.to_string()))?;
        Ok(Self {
            filter: handle,
            file,
            from_env,
            level: Arc::new(Mutex::new(text)),
        })
    }

    /// Reopens the log file, if there is one (SIGHUP). Errors are logged, and the old file
    /// stays in use.
    pub fn reopen(&self) {
        if let Some(f) = &self.file {
            match f.reopen() {
                Ok(()) => tracing::info!(file = %f.path().display(), "log file reopened"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot reopen the log file; still writing to the old one")
                }
            }
        }
    }

    /// Applies a new `[log] level` (SIGHUP); `None` means `info`. Returns the change as
    /// `"log level: old -> new"` when there was one; `--log-level` or `RUST_LOG`, when set,
    /// wins.
    ///
    /// # Errors
    /// [`LogError::Filter`] (nothing changes) or [`LogError::Setup`].
    pub fn set_level(&self, level: Option<&str>) -> Result<Option<String>, LogError> {
        if self.from_env {
            return Ok(None);
        }
        let new = level.unwrap_or("info").to_owned();
        let mut cur = self.level.lock().unwrap_or_else(PoisonError::into_inner);
        if *cur == new {
            return Ok(None);
        }
        let filter = parse_filter(&new)?;
        self.filter
            .reload(filter)
            .map_err(|e| LogError::Setup(e.to_string()))?;
        let change = format!("log level: {} -> {new}", *cur);
        *cur = new;
        Ok(Some(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked() {
        assert!(parse_filter("info,dsdn_p2p=debug").is_ok());
        let e = parse_filter("info,=[").unwrap_err().to_string();
        assert!(e.contains("invalid log level"), "{e}");
    }

    #[test]
    fn a_log_file_is_reopened_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dsdnd.log");
        let f = LogFile::open(&path).unwrap();
        f.make_writer().write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("dsdnd.log.1")).unwrap();
        f.make_writer().write_all(b"two\n").unwrap();
        f.reopen().unwrap();
        f.make_writer().write_all(b"three\n").unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("dsdnd.log.1")).unwrap();
        assert_eq!(rotated, "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}
