//! Applying updates with the ecosystems' own tools (placeholder).
