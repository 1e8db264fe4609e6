//! Manifest and lockfile scanning (owned by the scan work; placeholder).
