//! Registry lookups (owned by the registry work; placeholder).
