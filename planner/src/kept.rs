//! A value kept across analyses by the copies of a cached resource (`load::ParseCache`): the
//! first analysis fills it, later ones read it. The cell does not know what it holds (the
//! snapshot keeps a resource's canonical spec in it, `snapshot.rs`), so the model can hold one
//! without depending on the modules that fill it.

use std::any::Any;
use std::sync::{Arc, OnceLock};

/// Off (a resource not in a cache), or a cell shared by every copy of a cached resource.
#[derive(Clone, Default)]
pub struct KeptCell(Option<Arc<OnceLock<Box<dyn Any + Send + Sync>>>>);

impl KeptCell {
    /// A cell that keeps what it is given.
    pub fn kept() -> KeptCell {
        KeptCell(Some(Arc::default()))
    }

    /// Whether this cell keeps anything at all.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// What was kept, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_ref()?.get()?.downcast_ref()
    }

    /// Keeps `value` if nothing was kept yet (only the first is kept).
    pub fn keep<T: Any + Send + Sync>(&self, value: T) {
        if let Some(cell) = &self.0 {
            let _ = cell.set(Box::new(value));
        }
    }
}

impl std::fmt::Debug for KeptCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.0 {
            None => "off",
            Some(cell) if cell.get().is_some() => "kept",
            Some(_) => "empty",
        };
        write!(f, "KeptCell({state})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_cell_is_shared_by_its_copies_and_keeps_the_first_value() {
        let off = KeptCell::default();
        off.keep(1u32);
        assert_eq!(off.get::<u32>(), None);
        let cell = KeptCell::kept();
        let copy = cell.clone();
        copy.keep(7u32);
        cell.keep(8u32);
        assert_eq!(cell.get::<u32>(), Some(&7));
        assert_eq!(
            cell.get::<String>(),
            None,
            "another type is not what was kept"
        );
    }
}
