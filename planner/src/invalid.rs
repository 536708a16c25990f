//! The error of a value written in a form platformd does not accept (a duration, a schedule, a
//! time zone, an address): its message says what was expected. A leaf of the planner.

/// A value in a form platformd does not accept; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl From<String> for InvalidValue {
    fn from(message: String) -> InvalidValue {
        InvalidValue(message)
    }
}

impl From<&str> for InvalidValue {
    fn from(message: &str) -> InvalidValue {
        InvalidValue(message.to_string())
    }
}
