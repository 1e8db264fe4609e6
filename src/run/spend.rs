//! [`Meter`]: the run's [`SpendGuard`]. It records each model response's spend in the
//! store's ledger (task, requester per UTC day, repo per UTC day) as it happens, tells
//! observers the run's cost so far ([`RunEvent::Cost`]) and, once per run per limit, that a
//! `[budgets]` limit reached 80% ([`RunEvent::BudgetWarning`]); before each model call it
//! reads the ledger, so spend of the task's other revisions and of the requester's and
//! repo's other runs today counts too.

use std::collections::HashSet;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::events::RunEvent;
use crate::agent::SpendGuard;
use crate::agent::llm::settings::LlmPrices;
use crate::agent::llm::{Usage, cost_usd};
use crate::budget::{self, BudgetsConfig, Level, Limit, Reading, Spend};
use crate::store::{SpendKeys, Store, StoreError};
use crate::task::now_ms;

/// One run's spend meter (see the module docs).
pub struct Meter {
    store: Store,
    keys: SpendKeys,
    run_id: String,
    limits: BudgetsConfig,
    prices: LlmPrices,
    events: Option<mpsc::Sender<RunEvent>>,
    /// Limits already warned of in this run.
    warned: HashSet<Limit>,
    /// This run's usage so far.
    usage: Usage,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("keys", &self.keys)
            .field("run_id", &self.run_id)
            .field("limits", &self.limits)
            .field("usage", &self.usage)
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// A meter for run `run_id` of the task `keys` names, with `[budgets]` `limits` and
    /// `[llm]` `prices`, telling `events` (when given).
    pub fn new(
        store: Store,
        keys: SpendKeys,
        run_id: &str,
        limits: BudgetsConfig,
        prices: LlmPrices,
        events: Option<mpsc::Sender<RunEvent>>,
    ) -> Self {
        Self {
            store,
            keys,
            run_id: run_id.to_string(),
            limits,
            prices,
            events,
            warned: HashSet::new(),
            usage: Usage::default(),
        }
    }

    fn readings(&self) -> Result<Vec<Reading>, StoreError> {
        let totals = self.store.spend(&self.keys, &budget::utc_day(now_ms()))?;
        Ok(budget::assess(&self.limits, &totals))
    }

    async fn emit(&self, e: RunEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e).await;
        }
    }
}

#[async_trait]
impl SpendGuard for Meter {
    async fn over(&mut self) -> Result<Option<Reading>, StoreError> {
        let totals = self.store.spend(&self.keys, &budget::utc_day(now_ms()))?;
        let over = budget::over(&self.limits, &totals);
        if let Some(r) = &over {
            tracing::info!(
                run_id = self.run_id,
                limit = r.limit.key(),
                spent = r.spent,
                max = r.max,
                "budget spent: the agent stops"
            );
        }
        Ok(over)
    }

    async fn spent(&mut self, step: u32, usage: Usage) -> Result<(), StoreError> {
        let add = Spend {
            usd: cost_usd(usage, &self.prices),
            tokens: usage.input_tokens + usage.output_tokens,
        };
        self.usage.input_tokens += usage.input_tokens;
        self.usage.output_tokens += usage.output_tokens;
        let day = budget::utc_day(now_ms());
        let entry = format!("{}/{step}", self.run_id);
        self.store
            .record_spend(&self.keys, &day, &entry, add)
            .await?;
        self.emit(RunEvent::Cost {
            usd: cost_usd(self.usage, &self.prices),
            tokens: self.usage.input_tokens + self.usage.output_tokens,
        })
        .await;
        for r in self.readings()? {
            if r.level() >= Level::Warn && self.warned.insert(r.limit) {
                self.emit(RunEvent::BudgetWarning {
                    limit: r.limit,
                    spent: r.spent,
                    max: r.max,
                })
                .await;
            }
        }
        Ok(())
    }
}
