//! The module graph of `src/`, checked on every `cargo test`: which top-level module of the
//! crate refers to which, and whether those references form a cycle.
//!
//! Owns only this check. It reads the sources with `syn` and never builds or runs slipway.
//!
//! A reference is any of:
//! - a `use` of `crate::x…`, or of `super::…` that climbs out of the file's top-level module;
//! - a `crate::x::…` or climbing `super::…` path anywhere in code (types, expressions,
//!   patterns, trait bounds), and the same token sequence inside macro invocations.
//!
//! Code under `#[cfg(test)]` is left out: unit tests may reach across modules without the
//! shipped crate depending on it. `src/main.rs` is the binary crate and counts as a module
//! named `main` that refers to the library through `slipway::x`.
//!
//! A cycle is reported as the shortest cycle through each edge whose target can reach back
//! to its source, written from its alphabetically first module (`a → b → a`), with the file
//! and line of one reference per edge.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// Import cycles between top-level modules that are tolerated: none. The architecture issue
/// removed the last ones (config sections moved to their subsystems, `ToolSpec` to `tools`,
/// the web state built by the wiring). The test fails on any cycle, and on an entry here
/// that is no longer a cycle.
const KNOWN_CYCLES: &[&str] = &[];

/// One reference from a file to a top-level module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct At {
    file: String,
    line: usize,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The graph between top-level modules: `from → to → first reference (by file, line)`.
type Graph = BTreeMap<String, BTreeMap<String, At>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`gates/policy.rs` → `["gates", "policy"]`,
/// `agent/llm/mod.rs` → `["agent", "llm"]`); `None` for the crate roots.
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.trim_end_matches(".rs").to_string();
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem);
    }
    Some(parts)
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string() == "test")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Collects the references of one file.
struct Refs<'a> {
    file: String,
    /// The module the visitor is in (the file's, plus inline `mod` blocks).
    module: Vec<String>,
    /// Top-level modules of the crate.
    known: &'a BTreeSet<String>,
    /// `slipway::x` counts as a reference (the binary crate).
    extern_name: Option<&'a str>,
    found: Vec<(String, At)>,
}

impl Refs<'_> {
    /// The top-level module `segments` names, seen from `self.module`, when it is another
    /// top-level module of the crate.
    fn resolve(&self, segments: &[String]) -> Option<String> {
        let first = segments.first()?;
        let target = if first == "crate" || Some(first.as_str()) == self.extern_name {
            segments.get(1)?.clone()
        } else if first == "super" {
            let up = segments.iter().take_while(|s| *s == "super").count();
            let base = self.module.get(..self.module.len().checked_sub(up)?)?;
            match base.first() {
                Some(top) => top.clone(),
                None => segments.get(up)?.clone(),
            }
        } else {
            return None;
        };
        let own = self.module.first();
        (self.known.contains(&target) && own != Some(&target)).then_some(target)
    }

    fn add(&mut self, segments: &[String], span: Span) {
        if let Some(to) = self.resolve(segments) {
            let at = At {
                file: self.file.clone(),
                line: span.start().line,
            };
            self.found.push((to, at));
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>, span: Option<Span>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix, span.or(Some(p.ident.span())));
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident, span),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident, span),
            syn::UseTree::Glob(g) => {
                let s = span.unwrap_or_else(|| g.star_token.spans[0]);
                self.add(&prefix.clone(), s);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix, span);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], ident: &syn::Ident, span: Option<Span>) {
        let mut full = prefix.to_vec();
        full.push(ident.to_string());
        self.add(&full, span.unwrap_or_else(|| ident.span()));
    }

    /// `crate :: x`, `super :: …` and `slipway :: x` inside a macro's tokens.
    fn tokens(&mut self, ts: TokenStream) {
        let tokens: Vec<TokenTree> = ts.into_iter().collect();
        for (i, t) in tokens.iter().enumerate() {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) => {
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (tokens.get(j), tokens.get(j + 1))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        match tokens.get(j + 2) {
                            Some(TokenTree::Ident(next)) => segments.push(next.to_string()),
                            _ => break,
                        }
                        j += 3;
                    }
                    let after_colons = i >= 2
                        && matches!((&tokens[i - 2], &tokens[i - 1]),
                            (TokenTree::Punct(a), TokenTree::Punct(b)) if a.as_char() == ':' && b.as_char() == ':');
                    if segments.len() > 1 && !after_colons {
                        self.add(&segments, id.span());
                    }
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_cfg_test(item_attrs(item)) {
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.module.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.module.pop();
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Fn(f) => &f.attrs[..],
            syn::ImplItem::Const(c) => &c.attrs[..],
            syn::ImplItem::Type(t) => &t.attrs[..],
            _ => &[],
        };
        if !is_cfg_test(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&u.tree, &mut Vec::new(), None);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = p.segments.first() {
            self.add(&segments, first.ident.span());
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }
}

/// Parses every `src/**/*.rs` and returns the graph between top-level modules.
fn module_graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let known: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(f.strip_prefix(&src).ok()?)?.first().cloned())
        .collect();
    let mut graph = Graph::new();
    for name in &known {
        graph.entry(name.clone()).or_default();
    }
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let (module, extern_name) = match module_path(rel) {
            Some(m) => (m, None),
            None if rel == Path::new("main.rs") => (vec!["main".to_string()], Some("slipway")),
            None => continue,
        };
        let text = std::fs::read_to_string(f).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| {
            panic!(
                "{}:{}: cannot parse: {e}",
                f.display(),
                e.span().start().line
            )
        });
        let mut refs = Refs {
            file: f.strip_prefix(root).unwrap().display().to_string(),
            module: module.clone(),
            known: &known,
            extern_name,
            found: Vec::new(),
        };
        refs.visit_file(&ast);
        let from = graph.entry(module[0].clone()).or_default();
        for (to, at) in refs.found {
            let slot = from.entry(to).or_insert_with(|| at.clone());
            if at < *slot {
                *slot = at;
            }
        }
    }
    graph
}

/// The shortest path from `from` to `to` (both included), neighbours taken in name order.
fn shortest_path(g: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while at != from {
                at = prev[at];
                path.push(at.to_string());
            }
            path.reverse();
            return Some(path);
        }
        for next in g.get(n).into_iter().flat_map(|e| e.keys()) {
            if seen.insert(next.as_str()) {
                prev.insert(next.as_str(), n);
                queue.push_back(next.as_str());
            }
        }
    }
    None
}

/// For each edge `a → b` where `b` reaches back to `a`: the shortest cycle through it,
/// rotated to start at its alphabetically first module. Keys are `a → b → a`.
fn cycles(g: &Graph) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (a, edges) in g {
        for b in edges.keys() {
            let Some(back) = shortest_path(g, b, a) else {
                continue;
            };
            let mut ring: Vec<String> = std::iter::once(a.clone())
                .chain(back.into_iter().take_while(|n| n != a))
                .collect();
            let first = ring
                .iter()
                .enumerate()
                .min_by_key(|(_, n)| n.as_str())
                .map(|(i, _)| i)
                .unwrap();
            ring.rotate_left(first);
            ring.push(ring[0].clone());
            out.insert(ring.join(" → "), ring);
        }
    }
    out
}

/// A cycle with one reference per edge.
fn explain(g: &Graph, ring: &[String]) -> String {
    let mut s = ring.join(" → ");
    for w in ring.windows(2) {
        let _ = write!(s, "\n    {} → {}: {}", w[0], w[1], g[&w[0]][&w[1]]);
    }
    s
}

/// Strongly connected components in dependency order: each group refers only to groups
/// listed before it (and to itself, when it is a cycle).
fn layers(g: &Graph) -> Vec<BTreeSet<String>> {
    let reach = |a: &str, b: &str| shortest_path(g, a, b).is_some();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for n in g.keys() {
        if groups.iter().any(|c| c.contains(n)) {
            continue;
        }
        groups.push(
            g.keys()
                .filter(|m| reach(n, m) && reach(m, n))
                .cloned()
                .collect(),
        );
    }
    let mut order = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    while !groups.is_empty() {
        let i = groups
            .iter()
            .position(|c| {
                c.iter()
                    .flat_map(|n| g[n].keys())
                    .all(|m| c.contains(m) || done.contains(m))
            })
            .unwrap();
        let c = groups.remove(i);
        done.extend(c.iter().cloned());
        order.push(c);
    }
    order
}

#[test]
fn the_module_graph_has_no_new_cycles() {
    let g = module_graph();
    assert!(g.contains_key("gates") && g.contains_key("workspace"));
    let found = cycles(&g);
    let known: BTreeSet<&str> = KNOWN_CYCLES.iter().copied().collect();
    let new: Vec<String> = found
        .iter()
        .filter(|(k, _)| !known.contains(k.as_str()))
        .map(|(_, ring)| explain(&g, ring))
        .collect();
    let gone: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| !found.contains_key(*k))
        .collect();

    let mut report = String::from("module graph, dependencies first");
    for c in layers(&g) {
        let names: Vec<&str> = c.iter().map(String::as_str).collect();
        let _ = match names.as_slice() {
            [one] => write!(report, "\n  {one}"),
            many => write!(report, "\n  cycle {{{}}}", many.join(", ")),
        };
    }
    println!("{report}");
    for ring in found.values() {
        println!("cycle {}", explain(&g, ring));
    }

    let mut problems = String::new();
    if !new.is_empty() {
        let _ = write!(
            problems,
            "new import cycle(s) between top-level modules; break them instead of allowlisting:\n{}\n",
            new.join("\n")
        );
    }
    if !gone.is_empty() {
        let _ = write!(
            problems,
            "these KNOWN_CYCLES no longer exist; delete them from the list:\n{}\n",
            gone.join("\n")
        );
    }
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn references_are_found_in_uses_paths_and_macros() {
    let known: BTreeSet<String> = ["config", "gates", "agent", "report"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let src = r#"
        use crate::config::Config;
        use super::super::agent::AgentEnd;
        use super::checks::X;
        fn f() -> crate::report::Gate { todo!() }
        fn g() { let _ = matches!(x, crate::report::Decision::Halt); }
        #[cfg(test)]
        mod tests { use crate::agent::Z; }
    "#;
    let ast = syn::parse_file(src).unwrap();
    let mut refs = Refs {
        file: "src/gates/policy.rs".into(),
        module: vec!["gates".into(), "policy".into()],
        known: &known,
        extern_name: None,
        found: Vec::new(),
    };
    refs.visit_file(&ast);
    let got: Vec<(String, usize)> = refs
        .found
        .into_iter()
        .map(|(to, at)| (to, at.line))
        .collect();
    assert_eq!(
        got,
        vec![
            ("config".to_string(), 2),
            ("agent".to_string(), 3),
            ("report".to_string(), 5),
            ("report".to_string(), 6),
        ]
    );
}

#[test]
fn each_edge_inside_a_cycle_gives_its_shortest_cycle() {
    let at = |line| At {
        file: "src/x.rs".into(),
        line,
    };
    let mut g = Graph::new();
    for (a, b, line) in [
        ("b", "a", 1),
        ("a", "b", 2),
        ("b", "c", 3),
        ("c", "a", 4),
        ("c", "d", 5),
    ] {
        g.entry(a.to_string())
            .or_default()
            .insert(b.to_string(), at(line));
        g.entry(b.to_string()).or_default();
    }
    let found: Vec<String> = cycles(&g).into_keys().collect();
    assert_eq!(found, vec!["a → b → a", "a → b → c → a"]);
    let order: Vec<Vec<String>> = layers(&g)
        .into_iter()
        .map(|c| c.into_iter().collect())
        .collect();
    assert_eq!(order, vec![vec!["d"], vec!["a", "b", "c"]]);
    let ring: Vec<String> = ["a", "b", "a"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        explain(&g, &ring),
        "a → b → a\n    a → b: src/x.rs:2\n    b → a: src/x.rs:1"
    );
}
