//! `[[schedules]]` (owned by the schedules work; placeholder).
