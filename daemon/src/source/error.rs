//! Why a revision could not be read, and context for failures (what was being done).

/// Why a revision could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source is not what it should be (no such branch, not a directory, …).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Load(#[from] planner::load::LoadError),
    /// An operation failed (git, the file system), with what was being done.
    #[error("{context}: {detail}")]
    Failed { context: String, detail: String },
}

/// `SourceError::Invalid` from a format string.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::source::SourceError::Invalid(format!($($arg)*))
    };
}
pub(crate) use invalid;

/// Adds what was being done to a failure, as `anyhow::Context` does for binaries.
pub trait WithContext<T> {
    fn context_with<C: std::fmt::Display>(self, what: impl FnOnce() -> C)
    -> Result<T, SourceError>;
}

impl<T, E: std::fmt::Display> WithContext<T> for Result<T, E> {
    fn context_with<C: std::fmt::Display>(
        self,
        what: impl FnOnce() -> C,
    ) -> Result<T, SourceError> {
        self.map_err(|e| SourceError::Failed {
            context: what().to_string(),
            detail: e.to_string(),
        })
    }
}

impl<T> WithContext<T> for Option<T> {
    fn context_with<C: std::fmt::Display>(
        self,
        what: impl FnOnce() -> C,
    ) -> Result<T, SourceError> {
        self.ok_or_else(|| SourceError::Invalid(what().to_string()))
    }
}
