//! One integration binary (tests/suite/*), sharing the support in tests/support.

mod suite;
mod support;
