//! The tool registry: every tool slipway knows, from three sources: the built-ins, catalog
//! files (MCP `tools/list` results, `DESIGN.md` §3 "Tool catalogs"), and live MCP servers.
//!
//! Naming: a tool keeps its bare name when it is unique; a name that occurs on more than one
//! server, or equals a built-in's, becomes `server__tool` (built-ins always keep theirs).
//! A catalog's server name is its file name without `.json`. Bad catalogs (invalid JSON, a
//! missing name, a schema that is not an object, a duplicate name inside one catalog) are
//! reported by file and entry and skipped; they never stop loading.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::builtins;

/// Longest tool name the model APIs accept (Anthropic and OpenAI: 64 characters of
/// `[a-zA-Z0-9_-]`).
pub const MAX_NAME: usize = 64;
/// Largest tool description accepted, bytes (every offered tool's text goes to the model).
pub const MAX_DESCRIPTION: usize = 8 * 1024;
/// Largest input schema accepted, bytes of JSON.
pub const MAX_SCHEMA: usize = 32 * 1024;

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolSource {
    Builtin,
    Catalog {
        file: PathBuf,
    },
    /// A configured `[[mcp_servers]]` entry, discovered live.
    Live,
}

/// One tool as the registry holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolEntry {
    /// The name the model sees: bare, or `server__tool` when it collides.
    pub name: String,
    /// The name on its server.
    pub original: String,
    /// `None` for built-ins.
    pub server: Option<String>,
    pub description: String,
    pub input_schema: Value,
    /// MCP annotations (`readOnlyHint`, `destructiveHint`), when the server gave them.
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
    pub source: ToolSource,
    /// Served from the host (a host-side or URL server): may have network and credentials.
    pub host_side: bool,
}

impl ToolEntry {
    /// Whether policy must withhold it by default: only an explicit `destructiveHint: true`
    /// counts (MCP leaves the hint unset on most tools, and a read-only tool is never
    /// destructive).
    pub fn is_destructive(&self) -> bool {
        self.destructive == Some(true) && self.read_only != Some(true)
    }

    /// Whether policy withholds it unless destructive tools are allowed. A host-side tool
    /// reaches the network with credentials, so there the MCP defaults apply: anything not
    /// marked `readOnlyHint: true` may be destructive (it could push, merge or delete, which
    /// the agent never does). Elsewhere (catalogs, sandboxed servers) only an explicit
    /// `destructiveHint: true` counts.
    pub fn withheld_by_default(&self) -> bool {
        self.is_destructive() || (self.host_side && self.read_only != Some(true))
    }
}

/// A catalog problem, reported and skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogProblem {
    pub file: String,
    /// The entry index (and name, when it has one); `None` for the whole file.
    pub entry: Option<String>,
    pub message: String,
}

impl std::fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entry {
            Some(e) => write!(f, "{}: entry {e}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A tool before naming: what a catalog file or a live server offers.
#[derive(Debug, Clone)]
pub struct RawTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub read_only: Option<bool>,
    pub destructive: Option<bool>,
}

/// All known tools.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<ToolEntry>,
    pub problems: Vec<CatalogProblem>,
    /// What it was built from, so a run can extend it with its sandboxed servers.
    sources: Vec<ServerTools>,
}

/// A server's tools and where they came from.
#[derive(Debug, Clone)]
pub struct ServerTools {
    pub server: String,
    pub source: ToolSource,
    pub tools: Vec<RawTool>,
    /// Reached from the host.
    pub host_side: bool,
}

/// `[A-Za-z0-9_-]` only, so `server__tool` is a valid tool name.
pub fn sanitize_server(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// Reads one catalog file into raw tools, reporting problems.
pub fn read_catalog(path: &Path, problems: &mut Vec<CatalogProblem>) -> Option<ServerTools> {
    let file = path.display().to_string();
    let problem = |entry: Option<String>, message: String| CatalogProblem {
        file: file.clone(),
        entry,
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(problem(None, format!("cannot read: {e}")));
            return None;
        }
    };
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            problems.push(problem(None, format!("invalid JSON: {e}")));
            return None;
        }
    };
    let Some(list) = v.get("tools").and_then(Value::as_array) else {
        problems.push(problem(
            None,
            "no `tools` array (expected an MCP tools/list result)".into(),
        ));
        return None;
    };
    let server = sanitize_server(
        &path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut tools = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let Some(name) = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
        else {
            problems.push(problem(Some(format!("#{i}")), "missing `name`".into()));
            continue;
        };
        let label = Some(format!("#{i} ({name})"));
        let schema = t
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "object"}));
        let schema = params_list_to_schema(&schema).unwrap_or(schema);
        if !schema.is_object() {
            problems.push(problem(label, "`inputSchema` is not an object".into()));
            continue;
        }
        if let Some(first) = seen.get(name) {
            problems.push(problem(
                label,
                format!("duplicate name (first at #{first}); kept the first"),
            ));
            continue;
        }
        seen.insert(name.to_string(), i);
        let ann = t.get("annotations");
        tools.push(RawTool {
            name: name.to_string(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            input_schema: schema,
            read_only: ann
                .and_then(|a| a.get("readOnlyHint"))
                .and_then(Value::as_bool),
            destructive: ann
                .and_then(|a| a.get("destructiveHint"))
                .and_then(Value::as_bool),
        });
    }
    Some(ServerTools {
        server,
        source: ToolSource::Catalog {
            file: path.to_path_buf(),
        },
        tools,
        host_side: false,
    })
}

/// The Docker MCP registry's `tools.json` lists parameters as `[{"name", "type", "desc"}]`
/// instead of a JSON Schema; that shape becomes the equivalent object schema. `None` for
/// anything else.
fn params_list_to_schema(v: &Value) -> Option<Value> {
    let list = v.as_array()?;
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for p in list {
        let name = p.get("name")?.as_str()?;
        let mut prop = serde_json::Map::new();
        prop.insert(
            "type".into(),
            p.get("type")
                .cloned()
                .unwrap_or_else(|| Value::String("string".into())),
        );
        if let Some(d) = p.get("desc").or_else(|| p.get("description")) {
            prop.insert("description".into(), d.clone());
        }
        if p.get("optional").and_then(Value::as_bool) != Some(true) {
            required.push(Value::String(name.to_string()));
        }
        properties.insert(name.to_string(), Value::Object(prop));
    }
    Some(serde_json::json!({"type": "object", "properties": properties, "required": required}))
}

/// Expands catalog globs (relative to the working directory); a glob that matches nothing is
/// reported.
pub fn expand_globs(globs: &[String], problems: &mut Vec<CatalogProblem>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for g in globs {
        let path = Path::new(g);
        let (dir, pattern) = match (path.parent(), path.file_name()) {
            (Some(d), Some(f)) => (
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                },
                f.to_string_lossy().into_owned(),
            ),
            _ => continue,
        };
        let Ok(matcher) = globset::Glob::new(&pattern).map(|g| g.compile_matcher()) else {
            problems.push(CatalogProblem {
                file: g.clone(),
                entry: None,
                message: "invalid glob".into(),
            });
            continue;
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.file_name().is_some_and(|f| matcher.is_match(f)))
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

impl Registry {
    /// The built-ins only.
    pub fn builtins() -> Self {
        Self::build(Vec::new(), Vec::new())
    }

    /// Loads catalog files plus live servers' tools.
    pub fn load(catalogs: &[PathBuf], live: Vec<ServerTools>) -> Self {
        let mut problems = Vec::new();
        let mut servers: Vec<ServerTools> = catalogs
            .iter()
            .filter_map(|p| read_catalog(p, &mut problems))
            .collect();
        servers.extend(live);
        Self::build(servers, problems)
    }

    /// This registry plus more servers (a run's sandboxed MCP servers). Names are decided
    /// again over the whole set.
    pub fn extended(&self, more: Vec<ServerTools>, problems: Vec<CatalogProblem>) -> Self {
        let mut servers = self.sources.clone();
        servers.extend(more);
        let mut all = self.problems.clone();
        all.extend(problems);
        Self::build(servers, all)
    }

    fn build(servers: Vec<ServerTools>, mut problems: Vec<CatalogProblem>) -> Self {
        let mut entries: Vec<ToolEntry> = builtins::specs()
            .into_iter()
            .map(|s| ToolEntry {
                name: s.name.clone(),
                original: s.name,
                server: None,
                description: s.description,
                input_schema: s.input_schema,
                read_only: None,
                destructive: None,
                source: ToolSource::Builtin,
                host_side: false,
            })
            .collect();
        // How many servers offer each name; built-in names count as taken.
        let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &servers {
            for t in &s.tools {
                *owners.entry(t.name.as_str()).or_default() += 1;
            }
        }
        let mut taken: std::collections::HashSet<String> =
            entries.iter().map(|e| e.name.clone()).collect();
        let mut seen_servers: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for s in &servers {
            if !seen_servers.insert(s.server.as_str()) {
                problems.push(CatalogProblem {
                    file: s.server.clone(),
                    entry: None,
                    message: "another catalog or server has the same name; skipped (rename one)"
                        .into(),
                });
                continue;
            }
            for t in &s.tools {
                let schema_len = t.input_schema.to_string().len();
                if t.description.len() > MAX_DESCRIPTION
                    || schema_len > MAX_SCHEMA
                    || t.name.contains("__")
                {
                    problems.push(CatalogProblem {
                        file: s.server.clone(),
                        entry: Some(t.name.clone()),
                        message: format!(
                            "skipped: description {} bytes (max {MAX_DESCRIPTION}), schema {schema_len} bytes (max {MAX_SCHEMA}), or a name with `__` (reserved for namespacing)",
                            t.description.len()
                        ),
                    });
                    continue;
                }
                let collides = owners.get(t.name.as_str()).copied().unwrap_or(0) > 1
                    || builtins::NAMES.contains(&t.name.as_str());
                let name = if collides {
                    format!("{}__{}", s.server, t.name)
                } else {
                    t.name.clone()
                };
                if name.len() > MAX_NAME
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    problems.push(CatalogProblem {
                        file: s.server.clone(),
                        entry: Some(t.name.clone()),
                        message: format!("tool name {name:?} is not a valid model tool name (≤ {MAX_NAME} of [A-Za-z0-9_-]); skipped"),
                    });
                    continue;
                }
                if !taken.insert(name.clone()) {
                    problems.push(CatalogProblem {
                        file: s.server.clone(),
                        entry: Some(t.name.clone()),
                        message: format!("{name} is already registered by another source; skipped"),
                    });
                    continue;
                }
                entries.push(ToolEntry {
                    name,
                    original: t.name.clone(),
                    server: Some(s.server.clone()),
                    description: t.description.clone(),
                    input_schema: t.input_schema.clone(),
                    read_only: t.read_only,
                    destructive: t.destructive,
                    source: s.source.clone(),
                    host_side: s.host_side,
                });
            }
        }
        Self {
            entries,
            problems,
            sources: servers,
        }
    }

    pub fn entries(&self) -> &[ToolEntry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&ToolEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Server names, sorted.
    pub fn servers(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self
            .entries
            .iter()
            .filter_map(|e| e.server.as_deref())
            .collect();
        s.sort();
        s.dedup();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn collisions_are_namespaced_and_bad_entries_reported() {
        let d = tempfile::tempdir().unwrap();
        let a = write(
            d.path(),
            "alpha.json",
            r#"{"tools":[{"name":"read_file","inputSchema":{"type":"object"}},{"name":"shared","description":"a"},{"name":"only_a","annotations":{"destructiveHint":true}},{"description":"no name"},{"name":"bad","inputSchema":[1]},{"name":"only_a"}]}"#,
        );
        let b = write(
            d.path(),
            "beta server.json",
            r##"{"tools":[{"name":"shared","description":"b","inputSchema":{"oneOf":[{"$ref":"#/$defs/x"}],"$defs":{"x":{"type":"object"}}}}]}"##,
        );
        let c = write(d.path(), "broken.json", "{not json");
        let r = Registry::load(&[a, b, c], Vec::new());
        let names: Vec<&str> = r.entries().iter().map(|e| e.name.as_str()).collect();
        assert!(names.contains(&"read_file"), "the built-in keeps its name");
        assert!(names.contains(&"alpha__read_file"));
        assert!(names.contains(&"alpha__shared") && names.contains(&"beta-server__shared"));
        assert!(names.contains(&"only_a"));
        assert!(r.get("only_a").unwrap().is_destructive());
        let problems: Vec<String> = r.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("alpha.json: entry #3: missing `name`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("#4 (bad)") && p.contains("not an object"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("#5 (only_a)") && p.contains("duplicate"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("broken.json") && p.contains("invalid JSON"))
        );
    }
}
