//! Classification of a change into the contract's classes, from its paths and line counts,
//! with the evidence. Order matters: the riskiest class that matches wins.
//!
//! Pure over the changes and diff it is handed: it must not read the work tree, run anything
//! or decide (that is `decide`).

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::report::Classification;
use crate::workspace::FileChange;

/// A class and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub class: Classification,
    pub evidence: String,
}

fn set(globs: &[&str]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        if let Ok(g) = Glob::new(g) {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

const SECURITY: &[&str] = &[
    "**/auth/**",
    "**/security/**",
    "**/payments/**",
    "**/crypto/**",
    "**/*auth*.*",
    "**/*password*",
    "**/*secret*",
    "**/*token*",
    "**/permissions/**",
    "**/acl/**",
];
const MIGRATION: &[&str] = &[
    "**/migrations/**",
    "**/migrate/**",
    "**/*.sql",
    "**/alembic/**",
    "db/schema.rb",
];
const INFRA: &[&str] = &[
    ".github/**",
    ".gitlab-ci.yml",
    ".circleci/**",
    "Jenkinsfile",
    ".buildkite/**",
    "**/Dockerfile",
    "**/Dockerfile.*",
    "**/docker-compose*.yml",
    "**/*.tf",
    "**/*.tfvars",
    "deploy/**",
    "k8s/**",
    "helm/**",
    "charts/**",
    "infra/**",
    "terraform/**",
];
const MANIFESTS: &[&str] = &[
    "**/Cargo.toml",
    "**/Cargo.lock",
    "**/package.json",
    "**/package-lock.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/requirements*.txt",
    "**/poetry.lock",
    "**/Pipfile",
    "**/Pipfile.lock",
    "**/pyproject.toml",
    "**/uv.lock",
    "**/go.mod",
    "**/go.sum",
    "**/Gemfile",
    "**/Gemfile.lock",
    "**/pom.xml",
    "**/build.gradle*",
    "**/composer.json",
    "**/composer.lock",
];
const DOCS: &[&str] = &[
    "**/*.md",
    "**/*.rst",
    "**/*.adoc",
    "docs/**",
    "doc/**",
    "**/LICENSE*",
    "**/CHANGELOG*",
];
/// Lockfiles: pinned resolutions (a manifest without one may change scripts or config).
const LOCKFILES: &[&str] = &[
    "**/Cargo.lock",
    "**/package-lock.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/requirements*.txt",
    "**/poetry.lock",
    "**/Pipfile.lock",
    "**/uv.lock",
    "**/go.sum",
    "**/Gemfile.lock",
    "**/composer.lock",
];
const TESTS: &[&str] = &[
    "tests/**",
    "test/**",
    "**/tests/**",
    "**/test/**",
    "**/__tests__/**",
    "**/test_*.py",
    "**/*_test.py",
    "**/*_test.go",
    "**/*.test.*",
    "**/*.spec.*",
    "spec/**",
    "**/conftest.py",
];
const CONFIG: &[&str] = &[
    "**/*.toml",
    "**/*.yaml",
    "**/*.yml",
    "**/*.ini",
    "**/*.cfg",
    "**/*.conf",
    "**/*.json",
    "**/.env*",
    "**/*.properties",
];

/// Code that touches authentication, authorisation, cryptography, secrets handling, TLS
/// verification or command/SQL execution: a change to such lines is `security` wherever the
/// file lives. Matched case-insensitively on changed (added or removed) lines of code files.
const SECURITY_CODE: &str = r"(?i)\b(authenticat\w*|authori[sz]\w*|is_admin|isadmin|permission\w*|password\w*|passwd|csrf|xss|jwt|oauth\w*|session_?token|api_?key|secret_?key|private_?key|bcrypt|scrypt|argon2|pbkdf2|hmac|sha1|md5|hashlib|crypto\w*|cipher\w*|encrypt\w*|decrypt\w*|verify\s*=\s*false|insecure_?skip_?verify|ssl_?verify|tls\w*|x509|certificate\w*|sanitiz\w*|escape_?html|shell\s*=\s*true|os\.system|subprocess|eval\s*\(|exec\s*\(|pickle\.loads|yaml\.load\s*\(|deserializ\w*|chmod|setuid|sudo|cors|allow_?origin)\b";

/// Files whose lines count as code for [`SECURITY_CODE`] (not docs, not lockfiles).
fn is_code(path: &str) -> bool {
    let ext = path.rsplit('.').next().unwrap_or("");
    matches!(
        ext,
        "py" | "rs"
            | "go"
            | "js"
            | "jsx"
            | "ts"
            | "tsx"
            | "java"
            | "kt"
            | "rb"
            | "php"
            | "cs"
            | "c"
            | "cc"
            | "cpp"
            | "h"
            | "hpp"
            | "swift"
            | "scala"
            | "sh"
            | "sql"
    )
}

/// The first changed line of code that looks security-sensitive, as `path: line`.
pub fn security_sensitive_line(diff: &str) -> Option<String> {
    let re = regex::Regex::new(SECURITY_CODE).ok()?;
    let mut path = String::new();
    let mut in_header = false;
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            in_header = true;
            continue;
        }
        if in_header {
            if let Some(p) = line.strip_prefix("+++ ") {
                path = crate::workspace::unquote_path(p)
                    .trim_start_matches("b/")
                    .to_string();
            } else if let Some(p) = line.strip_prefix("--- ")
                && p != "/dev/null"
            {
                path = crate::workspace::unquote_path(p)
                    .trim_start_matches("a/")
                    .to_string();
            }
            if line.starts_with("@@") {
                in_header = false;
            }
            continue;
        }
        let changed = line.strip_prefix('+').or_else(|| line.strip_prefix('-'));
        if let Some(text) = changed
            && is_code(&path)
            && let Some(m) = re.find(text)
        {
            return Some(format!("{path}: `{}` in a changed line", m.as_str()));
        }
    }
    None
}

/// Classifies `changes`. `whitespace_only` is true when the diff ignoring whitespace is empty;
/// `diff` (the unified diff) lets security-sensitive code count wherever it lives.
pub fn classify(changes: &[FileChange], whitespace_only: bool, diff: &str) -> Classified {
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    let any = |g: &GlobSet| paths.iter().find(|p| g.is_match(p)).copied();
    let all = |g: &GlobSet| !paths.is_empty() && paths.iter().all(|p| g.is_match(p));
    let c = |class, evidence: String| Classified { class, evidence };
    if paths.is_empty() {
        return c(Classification::Refactor, "no files changed".into());
    }
    if let Some(p) = any(&set(SECURITY)) {
        return c(
            Classification::Security,
            format!("{p} is a security-sensitive path"),
        );
    }
    if let Some(evidence) = security_sensitive_line(diff) {
        return c(
            Classification::Security,
            format!("security-sensitive code: {evidence}"),
        );
    }
    if let Some(p) = any(&set(MIGRATION)) {
        return c(Classification::Migration, format!("{p} is a migration"));
    }
    if let Some(p) = any(&set(INFRA)) {
        return c(
            Classification::Infra,
            format!("{p} is CI or infrastructure"),
        );
    }
    if all(&set(MANIFESTS)) && any(&set(LOCKFILES)).is_some() {
        return c(
            Classification::DependencyUpdate,
            "only manifests and lockfiles changed".into(),
        );
    }
    if all(&set(MANIFESTS)) {
        return c(
            Classification::Config,
            "manifests changed without a lockfile: scripts or settings, not only versions".into(),
        );
    }
    if all(&set(DOCS)) {
        return c(Classification::Docs, "only documentation changed".into());
    }
    if all(&set(TESTS)) {
        return c(Classification::Tests, "only tests changed".into());
    }
    if whitespace_only {
        return c(
            Classification::Formatting,
            "the diff is whitespace only".into(),
        );
    }
    if all(&set(CONFIG)) {
        return c(
            Classification::Config,
            "only configuration files changed".into(),
        );
    }
    let added: usize = changes.iter().map(|c| c.added).sum();
    let deleted: usize = changes.iter().map(|c| c.deleted).sum();
    let new_files = changes
        .iter()
        .filter(|c| c.deleted == 0 && c.added > 0)
        .count();
    // Heuristic: a change that mostly adds lines adds behaviour; one that rewrites about as
    // much as it adds reshapes existing code.
    if added > deleted * 2 + 5 {
        c(
            Classification::Feature,
            format!("{added} lines added against {deleted} deleted ({new_files} files only grew)"),
        )
    } else {
        c(
            Classification::Refactor,
            format!("{added} lines added against {deleted} deleted: existing code reshaped"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(path: &str, added: usize, deleted: usize) -> FileChange {
        FileChange::modified(path, added, deleted)
    }

    #[test]
    fn security_sensitive_code_is_security_wherever_it_lives() {
        let diff = "diff --git a/app/util.py b/app/util.py\n--- a/app/util.py\n+++ b/app/util.py\n@@ -1 +1 @@\n-    requests.get(url, verify=True)\n+    requests.get(url, verify=False)\n";
        let c = classify(&[ch("app/util.py", 1, 1)], false, diff);
        assert_eq!(c.class, Classification::Security);
        assert!(
            c.evidence.contains("app/util.py") && c.evidence.contains("verify=False"),
            "{}",
            c.evidence
        );
        let docs = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-x\n+set the password in the vault\n";
        assert_eq!(
            classify(&[ch("README.md", 1, 1)], false, docs).class,
            Classification::Docs,
            "prose is not code"
        );
        let plain = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-    return a - b\n+    return a + b\n";
        assert_eq!(
            classify(&[ch("calc.py", 1, 1)], false, plain).class,
            Classification::Refactor
        );
    }

    #[test]
    fn security_sensitive_code_counts_in_a_file_whose_name_has_a_space() {
        // git ends a `---`/`+++` name holding a space with a TAB.
        let diff = "diff --git a/app/u v.py b/app/u v.py\nindex 73cdb8b..744dd7e 100644\n--- a/app/u v.py\t\n+++ b/app/u v.py\t\n@@ -1 +1,2 @@\n a=1\n+requests.get(u, verify=False)\n";
        let c = classify(&[ch("app/u v.py", 1, 0)], false, diff);
        assert_eq!(c.class, Classification::Security, "{}", c.evidence);
        assert!(c.evidence.contains("app/u v.py: "), "{}", c.evidence);
    }

    #[test]
    fn manifests_without_a_lockfile_are_config_and_txt_is_not_docs() {
        assert_eq!(
            classify(&[ch("package.json", 1, 1)], false, "").class,
            Classification::Config
        );
        assert_eq!(
            classify(
                &[ch("package.json", 1, 1), ch("package-lock.json", 9, 9)],
                false,
                ""
            )
            .class,
            Classification::DependencyUpdate
        );
        assert_ne!(
            classify(
                &[ch("requirements.txt", 1, 1), ch("README.md", 1, 0)],
                false,
                ""
            )
            .class,
            Classification::Docs
        );
        assert_ne!(
            classify(&[ch("CMakeLists.txt", 1, 1)], false, "").class,
            Classification::Docs
        );
    }

    #[test]
    fn classes_follow_the_riskiest_path() {
        assert_eq!(
            classify(&[ch("src/auth/login.py", 1, 1)], false, "").class,
            Classification::Security
        );
        assert_eq!(
            classify(&[ch("Cargo.lock", 10, 10)], false, "").class,
            Classification::DependencyUpdate
        );
        assert_eq!(
            classify(&[ch("README.md", 3, 0), ch("docs/a.rst", 1, 0)], false, "").class,
            Classification::Docs
        );
        assert_eq!(
            classify(&[ch("tests/test_calc.py", 3, 0)], false, "").class,
            Classification::Tests
        );
        assert_eq!(
            classify(&[ch("app/db/migrations/0002.py", 3, 0)], false, "").class,
            Classification::Migration
        );
        assert_eq!(
            classify(&[ch(".github/workflows/ci.yml", 3, 0)], false, "").class,
            Classification::Infra
        );
        assert_eq!(
            classify(&[ch("calc.py", 2, 2)], true, "").class,
            Classification::Formatting
        );
        assert_eq!(
            classify(&[ch("calc.py", 1, 1)], false, "").class,
            Classification::Refactor
        );
        assert_eq!(
            classify(&[ch("calc.py", 40, 1)], false, "").class,
            Classification::Feature
        );
    }
}
