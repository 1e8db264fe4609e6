//! One integration binary (tests/suite/*), sharing the support in tests/support.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
mod support;
