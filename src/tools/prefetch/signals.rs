//! Repo signals: what a checkout's top-level files say about the ecosystems a task touches
//! (`package.json` → npm, `.github/workflows` → GitHub, …).
//!
//! Owns reading those names from the work tree; it must not read file contents.

/// What the repo looks like, for repo signals.
#[derive(Debug, Clone, Default)]
pub struct RepoSignals {
    /// Top-level file and directory names, plus a few known nested paths that exist.
    pub files: Vec<String>,
}

impl RepoSignals {
    /// Reads signals from a checkout.
    pub fn from_dir(root: &std::path::Path) -> Self {
        let mut files: Vec<String> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for nested in [".github/workflows", ".buildkite", "k8s", "helm", "charts"] {
            if root.join(nested).exists() {
                files.push(nested.to_string());
            }
        }
        files.sort();
        Self { files }
    }

    /// (evidence, server-name word) pairs this repo suggests.
    pub(super) fn hints(&self) -> Vec<(String, &'static str)> {
        const MAP: &[(&str, &str)] = &[
            ("package.json", "npm"),
            ("pom.xml", "maven"),
            ("build.gradle", "maven"),
            ("Dockerfile", "docker"),
            ("docker-compose.yml", "docker"),
            (".github/workflows", "github"),
            (".buildkite", "buildkite"),
            ("k8s", "kubectl"),
            ("helm", "kubectl"),
            ("charts", "kubectl"),
        ];
        let mut out = Vec::new();
        for f in &self.files {
            if let Some((_, server)) = MAP.iter().find(|(k, _)| k == f) {
                out.push((format!("repo has {f}"), *server));
            }
            if f.ends_with(".csproj") || f.ends_with(".sln") {
                out.push((format!("repo has {f}"), "dotnet"));
            }
            if f.ends_with(".sqlite") || f.ends_with(".db") {
                out.push((format!("repo has {f}"), "sqlite"));
            }
        }
        // One hint per ecosystem.
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|(_, w)| seen.insert(*w));
        out
    }
}
