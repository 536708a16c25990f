//! The operator terminal UI (DESIGN §6): not built yet; issue 5 builds it here.
