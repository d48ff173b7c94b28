//! The one error type of the library. Each variant is a failure class that
//! the C ABI maps to its own status code, so callers can react without
//! parsing messages.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in a file a format error was found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file, when the text came from one.
    pub path: Option<String>,
    /// 1-based line number, when known.
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{p}:{l}: "),
            (Some(p), None) => write!(f, "{p}: "),
            (None, Some(l)) => write!(f, "line {l}: "),
            (None, None) => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A structure that cannot be relaxed as given (NaN, singular cell,
    /// overlapping atoms, unknown element, ...).
    #[error("invalid structure: {0}")]
    InvalidStructure(String),
    /// A file whose content does not follow its format.
    #[error("{location}{message}")]
    Format { location: Location, message: String },
    /// The operating system refused a file operation.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A bad argument or option (unknown format name, bad JSON option, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A model directory whose config or weights do not fit together.
    #[error("model: {0}")]
    Model(String),
    /// A device that was asked for but is not available.
    #[error("device: {0}")]
    Device(String),
    /// An error raised inside libtorch.
    #[error("libtorch: {0}")]
    Torch(tch::TchError),
}

impl From<tch::TchError> for Error {
    /// libtorch's errors, except the operating system's refusals while tch
    /// reads or writes a file (a full disk while a checkpoint is written):
    /// those are I/O errors on that file.
    fn from(error: tch::TchError) -> Self {
        match error {
            tch::TchError::SafeTensorError {
                path,
                err: safetensors::SafeTensorError::IoError(source),
            } => Error::Io { path, source },
            other => Error::Torch(other),
        }
    }
}

impl Error {
    /// A format error without a known file yet; readers add the path.
    pub fn format(line: Option<usize>, message: impl Into<String>) -> Self {
        Error::Format {
            location: Location { path: None, line },
            message: message.into(),
        }
    }

    /// Attaches a file name to a format error (other errors pass through).
    pub fn in_file(self, path: &str) -> Self {
        match self {
            Error::Format {
                mut location,
                message,
            } => {
                if location.path.is_none() {
                    location.path = Some(path.to_string());
                }
                Error::Format { location, message }
            }
            Error::InvalidStructure(message) => Error::Format {
                location: Location {
                    path: Some(path.to_string()),
                    line: None,
                },
                message: format!("invalid structure: {message}"),
            },
            other => other,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
