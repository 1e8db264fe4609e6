//! The agent loop's seam to `[budgets]`: before each model call it asks whether a limit is
//! spent, after each response it hands the response's usage over. The run implements it
//! (`crate::run::spend`), with the store's ledger and the run's events; the loop knows
//! neither.

use async_trait::async_trait;

use super::llm::Usage;
use crate::budget::Reading;
use crate::store::StoreError;

/// Checks and records one run's model spend.
#[async_trait]
pub trait SpendGuard: Send + Sync + std::fmt::Debug {
    /// Before a model call: the first limit at or over 100% (`crate::budget::over`), if any.
    /// Errors: the ledger could not be read (the run fails rather than spend unchecked).
    async fn over(&mut self) -> Result<Option<Reading>, StoreError>;
    /// After model turn `step` (1-based, counted over the whole run) answered with
    /// `usage`: records it (once per step) and warns of limits newly at 80%.
    async fn spent(&mut self, step: u32, usage: Usage) -> Result<(), StoreError>;
}
