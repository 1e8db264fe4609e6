//! From lookups and rules to groups (placeholder).
