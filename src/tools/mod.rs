//! Tools the agent may call: the built-ins, path confinement, and the prefetch that decides
//! which ≤ k tools a run is offered. (The MCP tool registry plugs in here.)

pub mod builtins;
pub mod guard;
pub mod paths;

use crate::agent::llm::ToolSpec;

/// Built-ins every `code_change` run needs, whatever k is: without them the agent can
/// neither change code nor end.
pub const REQUIRED: &[&str] = &[
    builtins::FINISH,
    builtins::READ_FILE,
    builtins::EDIT_FILE,
    builtins::RUN,
];

/// The tools offered to one run, at most `k` (contract: default 15, built-ins included).
/// Today the candidates are the built-ins; required ones come first when k is smaller.
pub fn prefetch(k: usize) -> Vec<ToolSpec> {
    let mut specs = builtins::specs();
    specs.sort_by_key(|s| !REQUIRED.contains(&s.name.as_str()));
    // Config validation keeps k ≥ REQUIRED.len(), so this never cuts a required tool.
    specs.truncate(k.max(REQUIRED.len()));
    // Keep the contract's order for the model.
    specs.sort_by_key(|s| builtins::NAMES.iter().position(|n| *n == s.name));
    specs
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_never_drops_required_tools() {
        let names: Vec<String> = super::prefetch(2).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["read_file", "edit_file", "run", "finish"]);
        assert_eq!(super::prefetch(15).len(), 7);
    }
}
