//! `renovate.json` rules (owned by the renovate work; placeholder).
