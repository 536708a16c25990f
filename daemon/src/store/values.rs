//! Values and rows as both store backends see them, and the parameter syntax PostgreSQL is
//! given. The connection (`sql.rs`) and the PostgreSQL client (`postgres.rs`) both build on it.

use super::{Result, StoreError};

/// A value bound to a parameter or read from a column. Booleans are stored as integers (0, 1)
/// in both engines.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// Turns a Rust value into a [`Value`]; implemented for references too, so `args!` borrows.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// The parameters of one statement: `args![a, b]` borrows each expression.
macro_rules! args {
    () => { &[] as &[$crate::store::values::Value] };
    ($($e:expr),+ $(,)?) => {
        &[$($crate::store::values::ToValue::to_value(&$e)),+][..]
    };
}
pub(crate) use args;

/// One result row.
#[derive(Debug)]
pub(crate) struct Row(pub(crate) Vec<Value>);

/// Reads a column into a Rust type; a value of another type is corrupt data, never a panic.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<i64> {
        match value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<bool> {
        i64::from_value(value).map(|i| i != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<f64> {
        match value {
            Value::Real(r) => Some(*r),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<String> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Option<T>> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl Row {
    /// A text column, borrowed: what is parsed as JSON need not be copied first.
    pub(crate) fn text(&self, index: usize) -> Result<&str> {
        match self.0.get(index) {
            Some(Value::Text(s)) => Ok(s),
            value => Err(StoreError::Corrupt(format!(
                "column {index} holds {value:?}, not text"
            ))),
        }
    }

    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self.0.get(index).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "column {index} holds {value:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// `?N` parameters as PostgreSQL's `$N`, outside string literals and quoted names.
pub(crate) fn postgres_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_for_postgres_outside_literals() {
        assert_eq!(
            postgres_parameters("SELECT '?1', \"a?2\" FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', \"a?2\" FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn a_column_of_another_type_is_corrupt_data() {
        let row = Row(vec![Value::Text("x".into()), Value::Null, Value::Int(1)]);
        assert!(matches!(row.get::<i64>(0), Err(StoreError::Corrupt(_))));
        assert_eq!(row.get::<Option<i64>>(1).unwrap(), None);
        assert!(row.get::<bool>(2).unwrap());
        assert!(matches!(row.get::<String>(7), Err(StoreError::Corrupt(_))));
    }
}
