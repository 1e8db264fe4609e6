//! Tasks and revisions: what a thread (or `slipway run`) asks for.
//!
//! A [`Task`] is created once per request; each refinement adds a [`Revision`]. This module
//! owns the shapes and the naming rules (ids, branch names); it does no I/O.

use serde::{Deserialize, Serialize};

pub use crate::text::{cap_bytes, truncate_chars};

mod state;

/// Where a task came from, so reports go back to the right place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `slipway run` on the command line.
    Cli,
    /// A Slack thread: channel ID and the thread's root `ts`.
    Slack { channel: String, thread_ts: String },
}

/// The repo a task works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    /// `owner/name` for reports; for a local path, its directory name.
    pub name: String,
    /// Where to fetch from: a local path or a clone URL. Never contains credentials.
    pub source: String,
    /// The branch the change is based on.
    pub base: String,
    /// Where branches and PRs live; `local` for tasks stored before forges were per repo.
    #[serde(default)]
    pub forge: crate::repos::ForgeKind,
}

impl RepoRef {
    /// The configured repo `repo`, fetched from `source` (its clone URL or path).
    pub fn of(repo: &crate::repos::RepoConfig, source: String) -> Self {
        Self {
            name: repo.name.clone(),
            source,
            base: repo.base.clone(),
            forge: repo.forge,
        }
    }
}

/// One version of the task (`DESIGN.md` §2, "revision"), numbered from 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    pub number: u32,
    /// The instruction for this revision, as the requester wrote it.
    pub instructions: String,
    /// Trusted context (the requester's and approvers' other messages).
    #[serde(default)]
    pub context: Vec<String>,
    /// Untrusted context (everyone else): shown to the model as data, never as instructions.
    #[serde(default)]
    pub untrusted_context: Vec<String>,
    /// Links and file names collected from the thread.
    #[serde(default)]
    pub links: Vec<String>,
    /// Unix time, ms.
    pub created_ms: u64,
    /// Who wrote this revision's instruction (a Slack user ID, or the local user name).
    /// `None` means the task's requester: revision 1, and every revision stored before
    /// authors were recorded. Read it through [`Task::author_of`]. An author may not approve
    /// the change (`crate::actions::approval`), and the commit of a revision by someone
    /// other than the requester names them (`Revision-by`).
    #[serde(default)]
    pub author: Option<String>,
}

/// Lifecycle of a task as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    /// The last run produced a branch whose decision is not `halt`.
    Ready,
    Halted,
    Failed,
    /// A merge was asked of the forge and its outcome is not recorded yet (the intent is in
    /// [`Task::merging`]); a restart asks the forge what happened.
    Merging,
    Merged,
    Cancelled,
}

/// A merge in flight (`TaskState::Merging`), written before the forge is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeIntent {
    /// The commit that was tested and is being merged.
    pub tested: String,
    /// The state to go back to if the forge did not merge.
    pub from: TaskState,
    /// Who asked: the approver's user ID, or `slipway` for an auto-merge.
    pub actor: String,
    /// The run whose decision auto-merges, for an auto-merge.
    pub run_id: Option<String>,
    /// When the intent was written, unix ms.
    pub at_ms: u64,
}

/// What a revert task undoes (⏪ on a merged task's report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertOf {
    /// The merged task.
    pub task_id: String,
    /// Its PR, for the title and body.
    pub pr_url: Option<String>,
    /// The merge commit on the base (squash or merge commit, or the last rebased commit).
    pub merge_commit: String,
    /// How many commits the merge put on the base: 1 for squash and merge commits, the PR's
    /// commit count for rebase merges.
    pub commits: u32,
}

/// Which blueprint runs a task (`DESIGN.md` §2). The serde spelling is the report's and the
/// CLI's `--blueprint` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlueprintId {
    /// Implement a change asked for in words: the agent, checks ⇄ fix, gates, PR, CI.
    #[default]
    CodeChange,
    /// Set up the repo's environment and run its checks, no agent: does this repo build and
    /// test in the sandbox? Publishes nothing.
    ChecksOnly,
    /// Make the repo's environment snapshot ready and stop (`slipway env build`).
    EnvBuild,
    /// Bump dependencies with the ecosystems' own tools; the agent only when a bump breaks
    /// the checks. One task (one branch, one PR) per update group.
    DependencyUpdate,
}

impl BlueprintId {
    /// Every blueprint, in `--blueprint` order.
    pub const ALL: &[BlueprintId] = &[
        Self::CodeChange,
        Self::ChecksOnly,
        Self::EnvBuild,
        Self::DependencyUpdate,
    ];

    /// The name (`code_change`, `checks_only`, `env_build`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeChange => "code_change",
            Self::ChecksOnly => "checks_only",
            Self::EnvBuild => "env_build",
            Self::DependencyUpdate => "dependency_update",
        }
    }

    /// The known names, comma-separated, for error messages.
    pub fn known() -> String {
        Self::ALL
            .iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::str::FromStr for BlueprintId {
    type Err = String;

    /// Parses a `--blueprint` name; the error is the unknown name.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| s.to_string())
    }
}

impl std::fmt::Display for BlueprintId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task: a repo, a requester and its revisions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// 12 hex characters.
    pub id: String,
    pub repo: RepoRef,
    /// Slack user ID, or the local user name for `slipway run`.
    pub requester: String,
    pub origin: Origin,
    /// The task's branch, fixed at creation: `slipway/<short-id>-<slug>`.
    pub branch: String,
    pub revisions: Vec<Revision>,
    pub state: TaskState,
    /// Run IDs, oldest first.
    #[serde(default)]
    pub runs: Vec<String>,
    /// The PR URL once a forge opened one.
    #[serde(default)]
    pub pr_url: Option<String>,
    /// The PR number on the forge, once opened. When lost, the forge finds the PR by its head
    /// branch.
    #[serde(default)]
    pub pr_number: Option<u64>,
    /// The base's commit made by the merge, once merged (a revert starts from it).
    #[serde(default)]
    pub merge_commit: Option<String>,
    /// How many commits that merge put on the base (a revert undoes them all).
    #[serde(default)]
    pub merged_commits: u32,
    /// The Slack thread's permalink, for the PR body and the merge comment.
    #[serde(default)]
    pub thread_url: Option<String>,
    /// Set on a revert task: what it undoes.
    #[serde(default)]
    pub revert_of: Option<RevertOf>,
    /// The blueprint its runs use (tasks stored before blueprints were typed: `code_change`).
    #[serde(default)]
    pub blueprint: BlueprintId,
    /// Set while state is `Merging`: what merge was asked for, so a restart can finish
    /// recording it (or undo the intent) after asking the forge.
    #[serde(default)]
    pub merging: Option<MergeIntent>,
    /// Set on a `dependency_update` task: which updates it is for.
    #[serde(default)]
    pub deps: Option<crate::deps::DepsRequest>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Task {
    /// A new task at revision 1.
    pub fn new(repo: RepoRef, requester: &str, origin: Origin, instructions: &str) -> Self {
        let id = new_id();
        let now = now_ms();
        let branch = branch_name(&id, instructions);
        Self {
            id,
            repo,
            requester: requester.to_string(),
            origin,
            branch,
            revisions: vec![Revision {
                number: 1,
                instructions: instructions.to_string(),
                context: Vec::new(),
                untrusted_context: Vec::new(),
                links: Vec::new(),
                created_ms: now,
                author: Some(requester.to_string()),
            }],
            state: TaskState::Queued,
            runs: Vec::new(),
            pr_url: None,
            pr_number: None,
            merge_commit: None,
            merged_commits: 0,
            revert_of: None,
            thread_url: None,
            blueprint: BlueprintId::CodeChange,
            merging: None,
            deps: None,
            created_ms: now,
            updated_ms: now,
        }
    }

    /// The newest revision. A task always has at least one.
    pub fn current(&self) -> &Revision {
        // `Task::new` creates revision 1 and revisions are only ever appended.
        &self.revisions[self.revisions.len() - 1]
    }

    /// Who wrote revision `rev` of this task: its recorded author, else the requester.
    pub fn author_of<'a>(&'a self, rev: &'a Revision) -> &'a str {
        rev.author.as_deref().unwrap_or(&self.requester)
    }

    /// A one-line title for commits and PRs: the instruction's first line, at most 72 chars.
    pub fn title(&self) -> String {
        let first = self.revisions[0]
            .instructions
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("slipway change")
            .trim();
        truncate_chars(first, 72)
    }
}

/// A fresh 12-hex-character id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `slipway/<first 8 of id>-<slug>`: the slug is at most 5 lowercase ASCII words of the
/// instruction, so the name is a valid git ref whatever the text holds.
pub fn branch_name(id: &str, instructions: &str) -> String {
    let words: Vec<String> = instructions
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(5)
        .map(str::to_ascii_lowercase)
        .collect();
    let slug = truncate_chars(&words.join("-"), 40);
    let short = &id[..id.len().min(8)];
    if slug.is_empty() {
        format!("slipway/{short}")
    } else {
        format!("slipway/{short}-{}", slug.trim_end_matches('-'))
    }
}

/// A commit SHA shortened to 12 characters for messages (the whole string when shorter).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_valid_refs_whatever_the_text() {
        assert_eq!(
            branch_name("abcdef123456", "Fix the add() bug in calc.py, please!"),
            "slipway/abcdef12-fix-the-add-bug-in"
        );
        assert_eq!(
            branch_name("abcdef123456", "🚀 ünïcode ✨"),
            "slipway/abcdef12-n-code"
        );
        assert_eq!(branch_name("abcdef123456", "🚀✨"), "slipway/abcdef12");
    }

    #[test]
    fn capping_keeps_whole_characters_and_says_so() {
        assert_eq!(cap_bytes("héllo", 10), "héllo");
        let c = cap_bytes("héllo", 2);
        assert!(c.starts_with("h\n[result capped at 2 bytes of 6]"), "{c}");
    }

    #[test]
    fn titles_are_one_line_and_bounded() {
        let repo = RepoRef {
            name: "r".into(),
            source: "/r".into(),
            base: "main".into(),
            forge: Default::default(),
        };
        let t = Task::new(
            repo,
            "me",
            Origin::Cli,
            &format!("\n  {}\nsecond", "x".repeat(100)),
        );
        assert_eq!(t.title().len(), 72);
        assert_eq!(t.current().number, 1);
    }

    #[test]
    fn a_revision_stored_without_an_author_was_written_by_the_requester() {
        let repo = RepoRef {
            name: "r".into(),
            source: "/r".into(),
            base: "main".into(),
            forge: Default::default(),
        };
        let mut t = Task::new(repo, "U0ALICE", Origin::Cli, "fix it");
        assert_eq!(t.author_of(t.current()), "U0ALICE");
        // A task stored before authors were recorded still loads.
        let mut old = serde_json::to_value(&t).unwrap();
        old["revisions"][0]
            .as_object_mut()
            .unwrap()
            .remove("author");
        let old: Task = serde_json::from_value(old).unwrap();
        assert_eq!(old.revisions[0].author, None);
        assert_eq!(old.author_of(&old.revisions[0]), "U0ALICE");
        t.revisions.push(Revision {
            number: 2,
            author: Some("U0BOB".into()),
            ..t.revisions[0].clone()
        });
        assert_eq!(t.author_of(t.current()), "U0BOB");
    }
}
