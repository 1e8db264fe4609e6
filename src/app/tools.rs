//! `slipway tools`: list, explain and evaluate the tool registry and its prefetch.

use std::process::ExitCode;
use std::sync::Arc;

use slipway::config::Config;

use super::usage;
use crate::ToolsAction;

pub async fn cmd_tools(cfg: Arc<Config>, action: ToolsAction) -> anyhow::Result<ExitCode> {
    use slipway::tools::{builtins, eval, prefetch};
    let k_given = match &action {
        ToolsAction::Explain { k, .. } | ToolsAction::Eval { k, .. } => *k,
        ToolsAction::List { .. } => None,
    };
    if let Some(k) = k_given
        && k < builtins::NAMES.len()
    {
        return usage(format!(
            "--k {k} is too small: the {} built-ins are always offered",
            builtins::NAMES.len()
        ));
    }
    match action {
        ToolsAction::List { json, catalogs } => {
            let (reg, hub) = slipway::tools::load_registry(&cfg, &catalogs, true).await;
            hub.close().await;
            for p in &reg.problems {
                eprintln!("warning: {p}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(reg.entries())?);
            } else {
                for e in reg.entries() {
                    let mut flags = Vec::new();
                    if e.read_only == Some(true) {
                        flags.push("read-only");
                    }
                    if e.is_destructive() {
                        flags.push("destructive");
                    }
                    let first = e.description.lines().next().unwrap_or("");
                    println!(
                        "{:<48} {:<28} {:<22} {}",
                        e.name,
                        e.server.as_deref().unwrap_or("(built-in)"),
                        flags.join(","),
                        slipway::task::truncate_chars(first, 80)
                    );
                }
                eprintln!(
                    "{} tools from {} servers",
                    reg.entries().len(),
                    reg.servers().len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ToolsAction::Explain {
            catalogs,
            k,
            json,
            task,
        } => {
            let (reg, hub) = slipway::tools::load_registry(&cfg, &catalogs, true).await;
            hub.close().await;
            let text = task.join(" ");
            let signals = std::env::current_dir()
                .map(|d| prefetch::RepoSignals::from_dir(&d))
                .unwrap_or_default();
            let index = prefetch::Index::new(&reg);
            let sel = index.select(&prefetch::Request {
                task: &text,
                repo: Some(&signals),
                k: k.unwrap_or(cfg.file.prefetch.k),
                always: builtins::NAMES,
                allow_destructive: cfg.file.prefetch.allow_destructive,
                ..Default::default()
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&sel)?);
                return Ok(ExitCode::SUCCESS);
            }
            for (i, p) in sel.picks.iter().enumerate() {
                println!(
                    "{:>2}. {:<44} {:>7.2}  {}",
                    i + 1,
                    p.name,
                    p.score,
                    p.server.as_deref().unwrap_or("(built-in)")
                );
                for e in &p.evidence {
                    println!("      · {e}");
                }
            }
            for (name, why) in &sel.withheld {
                println!("    withheld {name}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ToolsAction::Eval {
            file,
            catalogs,
            k,
            json,
        } => {
            let cases = match eval::read_cases(&file) {
                Ok(c) => c,
                Err(e) => return usage(e),
            };
            let (reg, _) = slipway::tools::load_registry(&cfg, &catalogs, false).await;
            for p in &reg.problems {
                eprintln!("warning: {p}");
            }
            let m = eval::evaluate(
                &reg,
                &cases,
                k.unwrap_or(cfg.file.prefetch.k),
                builtins::NAMES,
            );
            if json {
                println!("{}", serde_json::to_string(&m)?);
            } else {
                let k = m.k;
                let with = eval::mean_prefetch_tokens(&reg, &cases, k, builtins::NAMES);
                let all = eval::definition_tokens(&reg, None);
                eprintln!(
                    "tool definitions per request (characters ÷ 4): {with} tokens with prefetch at k={k}, {all} with all {} tools ({:.0}% fewer)",
                    reg.entries().len(),
                    100.0 * (1.0 - with as f64 / all.max(1) as f64)
                );
                println!(
                    "k={} queries={} recall={:.4} completeness={:.4} mrr={:.4} ndcg={:.4} ({} tools)",
                    m.k,
                    m.queries,
                    m.recall,
                    m.completeness,
                    m.mrr,
                    m.ndcg,
                    reg.entries().len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
