//! Text for tool ranking: tokens (camelCase, snake_case and kebab-case split; lowercase;
//! stop words dropped; light suffix stemming) and the engineering synonyms a Slack request
//! uses for what tool descriptions say ("PR" for pull request, "k8s" for Kubernetes).

/// Words that carry no intent in a request or a description.
const STOP: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "for",
    "with",
    "by",
    "at",
    "from",
    "is",
    "are",
    "be",
    "it",
    "this",
    "that",
    "these",
    "those",
    "as",
    "we",
    "i",
    "you",
    "me",
    "my",
    "our",
    "your",
    "can",
    "could",
    "would",
    "should",
    "please",
    "pls",
    "plz",
    "hey",
    "hi",
    "thanks",
    "thx",
    "just",
    "some",
    "any",
    "all",
    "into",
    "about",
    "what",
    "which",
    "who",
    "how",
    "when",
    "where",
    "why",
    "do",
    "does",
    "did",
    "done",
    "get",
    "got",
    "use",
    "using",
    "need",
    "needs",
    "want",
    "make",
    "let",
    "lets",
    "also",
    "so",
    "if",
    "then",
    "there",
    "here",
    "up",
    "out",
    "not",
    "no",
    "yes",
    "ok",
    "okay",
    "will",
    "was",
    "were",
    "been",
    "has",
    "have",
    "had",
    "its",
    "them",
    "they",
    "their",
    "us",
    "one",
    "via",
    "per",
    "than",
    "too",
    "very",
    "bot",
    "slipway",
    "someone",
    "something",
    "anything",
    "asap",
    "quick",
    "quickly",
    "real",
    "actually",
    "maybe",
    "e",
    "g",
    "etc",
];

/// Request words → what tool texts say instead. Each expansion is added at reduced weight.
const SYNONYMS: &[(&str, &[&str])] = &[
    ("pr", &["pull", "request"]),
    ("prs", &["pull", "request"]),
    ("mr", &["pull", "request", "merge"]),
    ("repo", &["repository"]),
    ("repos", &["repository"]),
    ("k8s", &["kubernetes", "kubectl", "cluster"]),
    ("kube", &["kubernetes", "kubectl"]),
    ("pod", &["kubernetes"]),
    ("db", &["database"]),
    ("sql", &["query", "database"]),
    ("deps", &["dependency", "package"]),
    ("dep", &["dependency", "package"]),
    ("ci", &["workflow", "pipeline", "build", "action"]),
    ("pipeline", &["build", "workflow"]),
    ("ticket", &["issue"]),
    ("bug", &["issue"]),
    ("crash", &["error", "issue", "exception"]),
    ("exception", &["error", "issue"]),
    ("stacktrace", &["error", "event"]),
    ("logs", &["log"]),
    ("deploy", &["deployment", "rollout"]),
    ("container", &["docker"]),
    ("doc", &["documentation"]),
    ("docs", &["documentation"]),
    ("spreadsheet", &["excel", "workbook", "sheet"]),
    ("xlsx", &["excel", "workbook"]),
    ("docx", &["word", "document"]),
    ("diagram", &["mermaid", "chart"]),
    ("flowchart", &["mermaid", "diagram"]),
    ("cypher", &["neo4j", "graph"]),
    ("vuln", &["vulnerability", "security"]),
    ("cve", &["vulnerability", "security"]),
    ("npm", &["package", "node"]),
    ("maven", &["java", "dependency", "artifact"]),
    ("csharp", &["dotnet", "type"]),
    ("changelog", &["release", "commit"]),
    ("diff", &["change", "compare"]),
    ("commits", &["commit", "log", "history"]),
    ("history", &["log", "commit"]),
    ("review", &["review", "comment"]),
    ("approve", &["review"]),
    ("gh", &["github"]),
    ("folder", &["directory"]),
    ("dir", &["directory"]),
    ("mkdir", &["create", "directory"]),
    ("ls", &["list", "directory"]),
    ("rename", &["move"]),
    ("grep", &["search"]),
    ("find", &["search"]),
    ("lookup", &["search"]),
    ("fetch", &["get", "retrieve"]),
    ("show", &["get", "list"]),
    ("check", &["get", "status"]),
    ("stale", &["list", "old"]),
    ("trending", &["trending", "popular"]),
    ("component", &["component", "ui"]),
    ("table", &["table"]),
    ("schema", &["describe", "table"]),
];

fn is_stop(w: &str) -> bool {
    STOP.contains(&w)
}

/// Light suffix stemming, the same for requests and tool texts.
pub fn stem(w: &str) -> String {
    let n = w.len();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..n - 3]);
    }
    if n > 5
        && (w.ends_with("sses") || w.ends_with("ches") || w.ends_with("shes") || w.ends_with("xes"))
    {
        return w[..n - 2].to_string();
    }
    if n > 5 && w.ends_with("ing") {
        return w[..n - 3].to_string();
    }
    if n > 4 && w.ends_with("ed") && !w.ends_with("eed") {
        return w[..n - 2].to_string();
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        return w[..n - 1].to_string();
    }
    w.to_string()
}

/// Splits camelCase boundaries, then lowercases and splits on anything not alphanumeric.
fn words(text: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(text.len() + 8);
    let mut prev_lower = false;
    for c in text.chars() {
        if c.is_uppercase() && prev_lower {
            spaced.push(' ');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        spaced.push(c);
    }
    spaced
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Index terms of a text: words minus stop words, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| w.len() > 1 && !is_stop(w))
        .map(|w| stem(&w))
        .collect()
}

/// Query terms with weights: each word 1.0, each synonym expansion 0.5. At most `max`
/// terms are kept (a huge task text must not make ranking slow).
pub fn query_terms(text: &str, max: usize) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let add = |t: String, w: f64, out: &mut Vec<(String, f64)>| {
        if let Some(e) = out.iter_mut().find(|(x, _)| *x == t) {
            e.1 = e.1.max(w);
        } else {
            out.push((t, w));
        }
    };
    for w in words(text)
        .into_iter()
        .filter(|w| w.len() > 1 && !is_stop(w))
    {
        if out.len() >= max {
            break;
        }
        if let Some((_, exp)) = SYNONYMS.iter().find(|(k, _)| *k == w) {
            for e in *exp {
                add(stem(e), 0.5, &mut out);
            }
        }
        add(stem(&w), 1.0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_words_split_and_stem_alike() {
        assert_eq!(terms("list_pull_requests"), ["list", "pull", "request"]);
        assert_eq!(terms("getIssueComments"), ["issue", "comment"]);
        assert_eq!(terms("Lists the repositories"), ["list", "repository"]);
        assert_eq!(stem("running"), "runn");
        assert_eq!(stem("status"), "status");
    }

    #[test]
    fn synonyms_expand_at_half_weight() {
        let q = query_terms("can you open a PR for the k8s fix", 100);
        assert!(q.contains(&("pull".into(), 0.5)));
        assert!(q.iter().any(|(t, w)| *t == stem("kubernetes") && *w == 0.5));
        assert!(q.contains(&("pr".into(), 1.0)));
        assert!(query_terms(&"word ".repeat(10_000), 50).len() <= 50);
    }
}
