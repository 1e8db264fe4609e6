//! Python: `requirements*.txt` at the root, `pyproject.toml` (PEP 621, PEP 735 dependency
//! groups, uv's legacy dev-dependencies) with `uv.lock`, and uv workspace members.
//!
//! Protocol facts: PEP 508 requirement strings (`name[extra] spec ; marker`, or
//! `name @ url`); uv.lock is TOML with `[[package]] name = … version = …` and names in
//! PEP 503 normalized form.

use std::collections::BTreeMap;

use super::{Ctx, Scan, ScanError, normalize_pypi};
use crate::deps::{Dependency, Ecosystem, version};

pub(super) fn scan(ctx: &Ctx, out: &mut Scan) -> Result<(), ScanError> {
    requirements(ctx, out)?;
    let Some(root) = ctx.toml("pyproject.toml")? else {
        return Ok(());
    };
    let root_lock = lock(ctx, "")?;
    pyproject("", &root, root_lock.as_ref(), out);
    let members = root
        .get("tool")
        .and_then(|t| t.get("uv"))
        .and_then(|t| t.get("workspace"));
    let strings = |key: &str| -> Vec<String> {
        members
            .and_then(|w| w.get(key))
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    for dir in ctx.members(
        "",
        &strings("members"),
        &strings("exclude"),
        "pyproject.toml",
    ) {
        let file = Ctx::rel(&dir, "pyproject.toml");
        if let Some(t) = ctx.toml(&file)? {
            let own = lock(ctx, &dir)?;
            pyproject(&dir, &t, own.as_ref().or(root_lock.as_ref()), out);
        }
    }
    Ok(())
}

/// A parsed `uv.lock`: where it is, normalized name → versions it locks from an index,
/// and the names it takes from elsewhere (`source = { editable | git | path | … }`).
struct Lock {
    file: String,
    versions: BTreeMap<String, Vec<String>>,
    elsewhere: std::collections::BTreeSet<String>,
}

fn lock(ctx: &Ctx, dir: &str) -> Result<Option<Lock>, ScanError> {
    let file = Ctx::rel(dir, "uv.lock");
    let Some(t) = ctx.toml(&file)? else {
        return Ok(None);
    };
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut elsewhere = std::collections::BTreeSet::new();
    let packages = t.get("package").and_then(toml::Value::as_array);
    for p in packages.into_iter().flatten() {
        let Some(n) = p.get("name").and_then(toml::Value::as_str) else {
            continue;
        };
        let indexed = p.get("source").is_none_or(|s| s.get("registry").is_some());
        match p.get("version").and_then(toml::Value::as_str) {
            Some(v) if indexed => versions
                .entry(normalize_pypi(n))
                .or_default()
                .push(v.to_string()),
            _ => {
                elsewhere.insert(normalize_pypi(n));
            }
        }
    }
    Ok(Some(Lock {
        file,
        versions,
        elsewhere,
    }))
}

fn pyproject(dir: &str, t: &toml::Table, lock: Option<&Lock>, out: &mut Scan) {
    let manifest = Ctx::rel(dir, "pyproject.toml");
    let mut reqs: Vec<(String, bool)> = Vec::new();
    let strs = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let project = t.get("project");
    reqs.extend(
        strs(project.and_then(|p| p.get("dependencies")))
            .into_iter()
            .map(|r| (r, false)),
    );
    if let Some(opt) = project
        .and_then(|p| p.get("optional-dependencies"))
        .and_then(toml::Value::as_table)
    {
        for v in opt.values() {
            reqs.extend(strs(Some(v)).into_iter().map(|r| (r, false)));
        }
    }
    if let Some(groups) = t.get("dependency-groups").and_then(toml::Value::as_table) {
        for v in groups.values() {
            // `{include-group = "…"}` entries are tables and name no package.
            reqs.extend(strs(Some(v)).into_iter().map(|r| (r, true)));
        }
    }
    let uv = t.get("tool").and_then(|x| x.get("uv"));
    let uv_dev = uv.and_then(|x| x.get("dev-dependencies"));
    // `[tool.uv.sources]` takes these from a workspace member, a path, git or a URL.
    let sourced: Vec<String> = uv
        .and_then(|x| x.get("sources"))
        .and_then(toml::Value::as_table)
        .map(|s| s.keys().map(|k| normalize_pypi(k)).collect())
        .unwrap_or_default();
    reqs.extend(strs(uv_dev).into_iter().map(|r| (r, true)));
    if lock.is_none() && !reqs.is_empty() {
        out.warnings.push(format!(
            "{manifest}: no uv.lock next to it or at the root; only exact `==` pins are updated (run `uv lock` and commit uv.lock to cover the rest)"
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (req, dev) in reqs {
        let Some(r) = parse_requirement(&req) else {
            out.warnings.push(format!(
                "{manifest}: `{req}` is not a PEP 508 requirement; skipped"
            ));
            continue;
        };
        let Spec::Registry(spec) = r.spec else {
            out.warnings.push(format!(
                "{manifest}: `{}` comes from a URL, not the index; not updated",
                r.name
            ));
            continue;
        };
        if !seen.insert((r.name.clone(), dev)) {
            continue;
        }
        if sourced.contains(&r.name) || lock.is_some_and(|l| l.elsewhere.contains(&r.name)) {
            out.warnings.push(format!(
                "{manifest}: `{}` comes from a workspace member, path or git (tool.uv.sources / uv.lock), not the index; not updated",
                r.name
            ));
            continue;
        }
        let locked = lock.and_then(|l| l.versions.get(&r.name)).and_then(|vs| {
            vs.iter()
                .find(|v| version::satisfies(Ecosystem::Pypi, &spec, v) == Some(true))
                .or(vs.first())
                .cloned()
        });
        let current = match (locked, exact_pin(&spec)) {
            (Some(v), _) => v,
            (None, Some(pin)) => pin,
            (None, None) => {
                if lock.is_some() {
                    out.warnings.push(format!(
                        "{manifest}: `{}` is not in uv.lock (an extra or marker not locked?); skipped",
                        r.name
                    ));
                }
                continue;
            }
        };
        out.deps.push(Dependency {
            name: r.name,
            ecosystem: Ecosystem::Pypi,
            current,
            requirement: (!spec.is_empty()).then_some(spec),
            manifest: manifest.clone(),
            lockfile: lock.map(|l| l.file.clone()),
            dev,
            indirect: false,
        });
    }
}

fn requirements(ctx: &Ctx, out: &mut Scan) -> Result<(), ScanError> {
    let mut files: Vec<String> = std::fs::read_dir(ctx.root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("requirements") && n.ends_with(".txt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for file in files {
        let Some(text) = ctx.read(&file)? else {
            continue;
        };
        requirements_file(&file, &text, out);
    }
    Ok(())
}

/// One requirements file. Pins (`name==1.2.3`) become dependencies; `-r`/`-c` includes,
/// editables and URLs are skipped with a warning; other options are ignored.
pub(super) fn requirements_file(file: &str, text: &str, out: &mut Scan) {
    let dev = file.contains("dev") || file.contains("test");
    let joined = text.replace("\\\n", " ");
    for (i, raw) in joined.lines().enumerate() {
        let line = match raw.find(" #") {
            Some(at) => &raw[..at],
            None if raw.trim_start().starts_with('#') => "",
            None => raw,
        };
        // `--hash=…` options follow the requirement on its own line.
        let line = line.split(" --").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        if let Some(opt) = line.strip_prefix('-') {
            let word = opt.split([' ', '=']).next().unwrap_or("");
            if matches!(
                word,
                "r" | "-requirement" | "c" | "-constraint" | "e" | "-editable"
            ) || word.starts_with('r')
                || word.starts_with('e')
                || word.starts_with('c')
            {
                out.warnings.push(format!(
                    "{file}:{n}: `{line}` is not followed (includes, constraints and editables are not scanned); skipped"
                ));
            }
            continue;
        }
        let Some(r) = parse_requirement(line) else {
            out.warnings.push(format!(
                "{file}:{n}: `{line}` is not a requirement slipway reads; skipped"
            ));
            continue;
        };
        let Spec::Registry(spec) = r.spec else {
            out.warnings.push(format!(
                "{file}:{n}: `{}` comes from a URL, not the index; not updated",
                r.name
            ));
            continue;
        };
        let Some(current) = exact_pin(&spec) else {
            out.warnings.push(format!(
                "{file}:{n}: `{line}` is not pinned with `==` and no lockfile pins it; skipped"
            ));
            continue;
        };
        out.deps.push(Dependency {
            name: r.name,
            ecosystem: Ecosystem::Pypi,
            current,
            requirement: Some(spec),
            manifest: file.to_string(),
            lockfile: None,
            dev,
            indirect: false,
        });
    }
}

/// Where a requirement's package comes from.
enum Spec {
    /// The index, with this PEP 440 specifier (empty: any version).
    Registry(String),
    /// A direct URL (`name @ https://…`, a bare URL or path).
    Url,
}

struct Requirement {
    name: String,
    spec: Spec,
}

/// Reads a PEP 508 requirement's name and version specifier; extras and markers are
/// dropped. `None` when it does not start with a name.
fn parse_requirement(s: &str) -> Option<Requirement> {
    let s = s.split(';').next().unwrap_or("").trim();
    if s.contains("://") || s.starts_with('.') || s.starts_with('/') {
        let name = s.split('@').next().unwrap_or("").trim();
        let named = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.[] ".contains(c));
        let name = if named {
            normalize_pypi(name.split('[').next().unwrap_or(name).trim())
        } else {
            s.to_string()
        };
        return Some(Requirement {
            name,
            spec: Spec::Url,
        });
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut rest = s[end..].trim();
    if rest.starts_with('[') {
        rest = rest.split_once(']').map(|(_, r)| r.trim())?;
    }
    if rest.starts_with('@') {
        return Some(Requirement {
            name: normalize_pypi(name),
            spec: Spec::Url,
        });
    }
    let rest = rest.trim_start_matches('(').trim_end_matches(')').trim();
    if !rest.is_empty() && !rest.starts_with(['=', '<', '>', '~', '!']) {
        return None;
    }
    Some(Requirement {
        name: normalize_pypi(name),
        spec: Spec::Registry(rest.replace(' ', "")),
    })
}

/// The version of an exact pin (`==1.2.3`, `===1.2.3`), not a wildcard or a range.
fn exact_pin(spec: &str) -> Option<String> {
    if spec.contains(',') || spec.contains('*') {
        return None;
    }
    let v = spec
        .strip_prefix("===")
        .or_else(|| spec.strip_prefix("=="))?;
    version::is_valid(Ecosystem::Pypi, v).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_strings() {
        let r = parse_requirement("Requests[socks] >= 2.31, <3 ; python_version >= '3.8'").unwrap();
        assert_eq!(r.name, "requests");
        assert!(matches!(r.spec, Spec::Registry(s) if s == ">=2.31,<3"));
        let r = parse_requirement("typing_extensions").unwrap();
        assert!(matches!(r.spec, Spec::Registry(s) if s.is_empty()));
        assert_eq!(r.name, "typing-extensions");
        let r = parse_requirement("pkg @ https://example.com/pkg.whl").unwrap();
        assert!(matches!(r.spec, Spec::Url));
        assert!(parse_requirement("==1.0").is_none());
        assert_eq!(exact_pin("==1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(exact_pin("==1.*"), None);
        assert_eq!(exact_pin(">=1"), None);
    }

    #[test]
    fn requirements_files_pin_and_warn() {
        let mut out = Scan::default();
        let text = "# top\nflask==3.0.3  # web\n-r base.txt\n-e ./local\nrequests>=2\n\
                    git+https://github.com/x/y.git#egg=y\nclick==8.1.7 \\\n    --hash=sha256:abc\n";
        requirements_file("requirements-dev.txt", text, &mut out);
        let names: Vec<_> = out
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.current.as_str(), d.dev))
            .collect();
        assert_eq!(names, [("flask", "3.0.3", true), ("click", "8.1.7", true)]);
        assert_eq!(out.warnings.len(), 4, "{:?}", out.warnings);
        assert!(out.warnings[0].starts_with("requirements-dev.txt:3: `-r base.txt`"));
        assert!(out.warnings[2].contains("not pinned"));
    }
}
