//! Python: everything goes into one venv at `/env/venv`, made and filled with `uv` (the
//! default image carries it; a custom image without `uv` fails setup with "not found",
//! which names the program). The project is installed editable, so in the checks its
//! `.pth` points at `/workspace`, the real work tree, and a `src/` layout imports the
//! agent's edited code. The venv's `bin` comes first on `PATH`, so `python3 -m pytest` runs
//! the project's own pytest.
//!
//! Which way, first match wins:
//! 1. `uv.lock` → `uv sync --locked` (fails when the lock is out of date);
//! 2. `poetry.lock` (or a Poetry-only `pyproject.toml`) → Poetry, in a throwaway tool venv
//!    in setup's `HOME`, installing into `/env/venv`;
//! 3. an installable `pyproject.toml` (`[build-system]`), `setup.py` or `setup.cfg` →
//!    `uv pip install -e '.[extras]'`;
//! 4. a `pyproject.toml` with `[project]` but no build system → its requirements only;
//! 5. `requirements*.txt` alone → `uv pip install -r …`.
//!
//! Extras and dependency groups named `test`, `tests`, `testing` or `dev` (PEP 621
//! `[project.optional-dependencies]`, PEP 735 `[dependency-groups]`, Poetry groups) are
//! installed; requirement files with such names join the same resolution. When a check
//! runs pytest and nothing declares it, pytest is installed too.

use regex::Regex;
use toml::{Table, Value};

use super::{Ecosystem, Options};
use crate::env::{ENV_DIR, Result, Tree, VENV};

/// Extra and group names that hold what the tests need.
const TEST_NAMES: [&str; 4] = ["test", "tests", "testing", "dev"];

/// Stems of the files in `requirements/` that are installed.
const REQUIREMENTS_DIR_STEMS: [&str; 9] = [
    "base",
    "common",
    "requirements",
    "dev",
    "develop",
    "development",
    "test",
    "tests",
    "testing",
];

/// Where Poetry itself is installed during setup (the setup's throwaway `HOME`).
const POETRY_VENV: &str = "\"$HOME/.slipway-poetry\"";

/// The Python ecosystem, when the tree has a Python manifest.
pub(super) fn detect(tree: &Tree<'_>, opts: Options) -> Result<Option<Ecosystem>> {
    let pyproject = tree.toml("pyproject.toml")?;
    let reqs = requirement_files(tree)?;
    let setup_py = tree.is_file("setup.py")?;
    let setup_cfg = tree.is_file("setup.cfg")?;
    if pyproject.is_none() && reqs.is_empty() && !setup_py && !setup_cfg {
        return Ok(None);
    }
    let empty = Table::new();
    let py = pyproject.as_ref().unwrap_or(&empty);
    let project = py.get("project").and_then(Value::as_table);
    let poetry = table_at(py, &["tool", "poetry"]);
    let extras = pick(
        project
            .and_then(|p| p.get("optional-dependencies"))
            .and_then(Value::as_table)
            .into_iter()
            .chain(
                poetry
                    .and_then(|p| p.get("extras"))
                    .and_then(Value::as_table),
            ),
    );
    let groups = pick(py.get("dependency-groups").and_then(Value::as_table));
    let uv_lock = pyproject.is_some() && tree.is_file("uv.lock")?;
    let poetry_lock = pyproject.is_some() && tree.is_file("poetry.lock")?;

    let mut e = Ecosystem::default()
        .env(&[
            ("VIRTUAL_ENV", VENV),
            ("UV_PROJECT_ENVIRONMENT", VENV),
            // A Python uv downloads (for `requires-python`) must outlive setup's HOME.
            ("UV_PYTHON_INSTALL_DIR", &format!("{ENV_DIR}/python")),
            // uv's cache (setup's HOME) and /env are different file systems.
            ("UV_LINK_MODE", "copy"),
        ])
        .offline(&[("UV_OFFLINE", "1")]);
    e.path_prefix.push(format!("{VENV}/bin"));
    e.inputs_if_present(
        tree,
        &[
            "pyproject.toml",
            "uv.lock",
            "poetry.lock",
            "setup.py",
            "setup.cfg",
        ],
    )?;

    // What the chosen install declares, to know whether pytest must be added.
    let mut declared: Vec<String> = Vec::new();
    let mut pytest_after = false;
    if uv_lock {
        e.label = "python (uv.lock)".into();
        let mut cmd = "uv sync --locked".to_string();
        if table_at(py, &["tool", "uv", "workspace"]).is_some() {
            cmd.push_str(" --all-packages");
        }
        for x in &extras {
            cmd.push_str(&format!(" --extra {}", quote(x)));
        }
        for g in &groups {
            cmd.push_str(&format!(" --group {}", quote(g)));
        }
        e.setup.push(cmd);
        declared.extend(locked_names(tree, "uv.lock")?);
        pytest_after = true;
    } else if poetry_lock || (poetry.is_some() && project.is_none()) {
        e.label = format!(
            "python ({})",
            if poetry_lock {
                "poetry.lock"
            } else {
                "pyproject.toml"
            }
        );
        if !poetry_lock {
            e.notes.push(
                "python: no poetry.lock, so Poetry chooses dependency versions at setup".into(),
            );
        }
        let poetry_groups = pick(
            poetry
                .and_then(|p| p.get("group"))
                .and_then(Value::as_table)
                .into_iter()
                .chain(py.get("dependency-groups").and_then(Value::as_table)),
        );
        let mut install = format!(
            "POETRY_VIRTUALENVS_CREATE=false {POETRY_VENV}/bin/poetry install --no-interaction"
        );
        if !extras.is_empty() {
            install.push_str(&format!(" --extras {}", quote(&extras.join(" "))));
        }
        if !poetry_groups.is_empty() {
            install.push_str(&format!(" --with {}", quote(&poetry_groups.join(","))));
        }
        e.setup = vec![
            format!("uv venv --clear --seed {VENV}"),
            format!("uv venv --clear {POETRY_VENV}"),
            format!("uv pip install --python {POETRY_VENV} poetry"),
            install,
        ];
        declared.extend(locked_names(tree, "poetry.lock")?);
        pytest_after = true;
    } else {
        let installable = py.contains_key("build-system") || setup_py || setup_cfg;
        let mut args: Vec<String> = Vec::new();
        let mut extras = extras.clone();
        if installable {
            if !py.contains_key("build-system") {
                extras = setup_extras(tree)?;
            }
            let target = if extras.is_empty() {
                ".".to_string()
            } else {
                format!(".[{}]", extras.join(","))
            };
            args.push(format!("-e {}", quote(&target)));
        } else if project.is_some() {
            // No build system: the project is not a package; install what it requires.
            args.push("-r pyproject.toml".into());
            for x in &extras {
                args.push(format!("--extra {}", quote(x)));
            }
        }
        for g in &groups {
            args.push(format!("--group {}", quote(g)));
        }
        for r in &reqs {
            args.push(format!("-r {}", quote(r)));
        }
        e.label = format!(
            "python ({})",
            if py.contains_key("build-system") || (project.is_some() && !installable) {
                "pyproject.toml"
            } else if setup_py {
                "setup.py"
            } else if setup_cfg {
                "setup.cfg"
            } else if let Some(r) = reqs.first() {
                r.as_str()
            } else {
                "pyproject.toml"
            }
        );
        e.inputs.extend(reqs.iter().cloned());
        for r in &reqs {
            declared.extend(requirement_names(&tree.read(r)?.unwrap_or_default()));
        }
        declared.extend(pyproject_names(py, &extras, &groups));
        if opts.needs_pytest && !declared.iter().any(|n| n == "pytest") {
            args.push("pytest".into());
            e.notes.push(pytest_note());
        }
        e.setup.push(format!("uv venv --clear {VENV}"));
        if !args.is_empty() {
            e.setup.push(format!("uv pip install {}", args.join(" ")));
        }
    }
    if pytest_after && opts.needs_pytest && !declared.iter().any(|n| n == "pytest") {
        e.setup.push("uv pip install pytest".into());
        e.notes.push(pytest_note());
    }
    Ok(Some(e))
}

fn pytest_note() -> String {
    "python: the checks run pytest and the project does not declare it, so setup installs it".into()
}

fn quote(s: &str) -> String {
    // Names from TOML keys and repo file names; a NUL (which no shell can pass) is dropped.
    shlex::try_quote(&s.replace('\0', ""))
        .map(|c| c.into_owned())
        .unwrap_or_default()
}

fn table_at<'t>(t: &'t Table, path: &[&str]) -> Option<&'t Table> {
    let mut cur = t;
    for p in path {
        cur = cur.get(*p)?.as_table()?;
    }
    Some(cur)
}

/// PEP 503 normalized name: lower case, runs of `-`, `_` and `.` as one `-`.
fn normalize_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The keys of the tables whose normalized name is a test name, as written, in table order
/// (sorted), without duplicates.
fn pick<'t>(tables: impl IntoIterator<Item = &'t Table>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tables {
        for k in t.keys() {
            if TEST_NAMES.contains(&normalize_name(k).as_str()) && !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// Requirement files: `requirements*.txt` and `*-requirements.txt` at the root (not the
/// documentation ones), and the test/dev/base files in `requirements/`;
/// `requirements.txt` first, then by name.
fn requirement_files(tree: &Tree<'_>) -> Result<Vec<String>> {
    let mut out: Vec<String> = tree
        .files_in("")?
        .into_iter()
        .filter(|n| {
            let l = n.to_ascii_lowercase();
            l.ends_with(".txt")
                && (l.starts_with("requirements")
                    || l.ends_with("-requirements.txt")
                    || l.ends_with("_requirements.txt"))
                && !l.contains("doc")
        })
        .collect();
    out.sort_by_key(|n| (n != "requirements.txt", n.clone()));
    for n in tree.files_in("requirements")? {
        if let Some(stem) = n.strip_suffix(".txt")
            && REQUIREMENTS_DIR_STEMS.contains(&stem.to_ascii_lowercase().as_str())
        {
            out.push(format!("requirements/{n}"));
        }
    }
    Ok(out)
}

/// The extras `setup.cfg` (`[options.extras_require]`) or `setup.py` (`extras_require=`)
/// declare with a test name. `setup.py` is code, so this is a scan, not an evaluation: an
/// extra it misses is simply not installed.
fn setup_extras(tree: &Tree<'_>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    if let Some(cfg) = tree.read("setup.cfg")? {
        let mut in_section = false;
        for line in cfg.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                in_section = t == "[options.extras_require]";
                continue;
            }
            if in_section
                && !line.starts_with([' ', '\t'])
                && let Some((k, _)) = t.split_once('=')
            {
                let k = k.trim().to_string();
                if TEST_NAMES.contains(&normalize_name(&k).as_str()) && !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    if let Some(py) = tree.read("setup.py")?
        && let Some(at) = py.find("extras_require")
        && let Ok(re) = Regex::new(r#"["']?\b(tests?|testing|dev)\b["']?\s*[:=]\s*[\[(]"#)
    {
        for c in re.captures_iter(&py[at..]) {
            let k = c[1].to_string();
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    Ok(out)
}

/// Normalized names of the requirements in a requirements file's text.
fn requirement_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '-']))
        .filter_map(requirement_name)
        .collect()
}

/// The normalized project name a PEP 508 requirement starts with.
fn requirement_name(req: &str) -> Option<String> {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(req.len());
    (end > 0).then(|| normalize_name(&req[..end]))
}

/// Names a lockfile pins (`name = "…"` lines of `uv.lock` and `poetry.lock`).
fn locked_names(tree: &Tree<'_>, lock: &str) -> Result<Vec<String>> {
    Ok(tree
        .read(lock)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .map(normalize_name)
        .collect())
}

/// Names the installed parts of `pyproject.toml` require: `[project] dependencies`, the
/// chosen extras and groups (following `include-group`).
fn pyproject_names(py: &Table, extras: &[String], groups: &[String]) -> Vec<String> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(requirement_name)
                    .collect()
            })
            .unwrap_or_default()
    };
    let project = py.get("project").and_then(Value::as_table);
    let mut out = strings(project.and_then(|p| p.get("dependencies")));
    let optional = project
        .and_then(|p| p.get("optional-dependencies"))
        .and_then(Value::as_table);
    for x in extras {
        out.extend(strings(optional.and_then(|o| o.get(x))));
    }
    let all_groups = py.get("dependency-groups").and_then(Value::as_table);
    let mut todo: Vec<String> = groups.to_vec();
    let mut seen: Vec<String> = Vec::new();
    while let Some(g) = todo.pop() {
        if seen.contains(&g) {
            continue;
        }
        let entries = all_groups.and_then(|t| t.get(&g));
        out.extend(strings(entries));
        for inc in entries.and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = inc.get("include-group").and_then(Value::as_str) {
                todo.push(name.to_string());
            }
        }
        seen.push(g);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::write;
    use super::*;

    fn detect_with(root: &std::path::Path, needs_pytest: bool) -> Ecosystem {
        detect(
            &Tree::new(root),
            Options {
                allow_scripts: false,
                needs_pytest,
            },
        )
        .unwrap()
        .unwrap()
    }

    /// The shape of a `src/` layout project with a test extra and a modern pytest
    /// (`[tool.pytest]` is pytest 9's native table).
    const SRC_LAYOUT: &str = r#"[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "attrs-like"
version = "1.0.0"
requires-python = ">=3.9"
dependencies = ["packaging>=24"]

[project.optional-dependencies]
tests = ["pytest>=9", "hypothesis"]
docs = ["sphinx"]

[dependency-groups]
Dev = [{ include-group = "lint" }, "coverage[toml]"]
lint = ["ruff"]

[tool.pytest]
minversion = "9.0"
"#;

    #[test]
    fn a_pyproject_installs_editable_with_its_test_extra_and_groups() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "pyproject.toml", SRC_LAYOUT);
        write(d.path(), "requirements-dev.txt", "pre-commit\n");
        write(d.path(), "requirements-docs.txt", "sphinx\n");
        let e = detect_with(d.path(), true);
        assert_eq!(e.label, "python (pyproject.toml)");
        assert_eq!(
            e.setup,
            [
                "uv venv --clear /env/venv",
                "uv pip install -e '.[tests]' --group Dev -r requirements-dev.txt",
            ]
        );
        assert_eq!(e.inputs, ["pyproject.toml", "requirements-dev.txt"]);
        assert_eq!(e.env["VIRTUAL_ENV"], "/env/venv");
        assert_eq!(e.env["UV_PROJECT_ENVIRONMENT"], "/env/venv");
        assert_eq!(e.path_prefix, ["/env/venv/bin"]);
        assert!(e.notes.is_empty(), "pytest is declared: {:?}", e.notes);
    }

    #[test]
    fn pytest_is_added_only_when_checks_need_it_and_nothing_declares_it() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "pyproject.toml",
            "[project]\nname = \"tool\"\nversion = \"0.1\"\ndependencies = [\"click\"]\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n",
        );
        let e = detect_with(d.path(), true);
        // No build system: the project's requirements, not the project.
        assert_eq!(
            e.setup,
            [
                "uv venv --clear /env/venv",
                "uv pip install -r pyproject.toml pytest"
            ]
        );
        assert!(e.notes[0].contains("does not declare it"), "{:?}", e.notes);
        let e = detect_with(d.path(), false);
        assert_eq!(e.setup[1], "uv pip install -r pyproject.toml");
        // A tool-config-only pyproject: just a venv with pytest.
        write(
            d.path(),
            "pyproject.toml",
            "[tool.black]\nline-length = 100\n",
        );
        let e = detect_with(d.path(), true);
        assert_eq!(
            e.setup,
            ["uv venv --clear /env/venv", "uv pip install pytest"]
        );
    }

    #[test]
    fn a_uv_lock_syncs_strictly_with_test_extras_and_groups() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "pyproject.toml", SRC_LAYOUT);
        write(
            d.path(),
            "uv.lock",
            "version = 1\n\n[[package]]\nname = \"pytest\"\nversion = \"9.0.1\"\n",
        );
        let e = detect_with(d.path(), true);
        assert_eq!(e.label, "python (uv.lock)");
        assert_eq!(e.setup, ["uv sync --locked --extra tests --group Dev"]);
        assert_eq!(e.inputs, ["pyproject.toml", "uv.lock"]);
        // pytest not in the lock: installed after the sync.
        write(d.path(), "uv.lock", "version = 1\n");
        let e = detect_with(d.path(), true);
        assert_eq!(e.setup[1], "uv pip install pytest");
    }

    #[test]
    fn a_poetry_lock_installs_with_poetry_into_the_venv() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "pyproject.toml",
            r#"[tool.poetry]
name = "app"
version = "0.1.0"
packages = [{ include = "app", from = "src" }]

[tool.poetry.dependencies]
python = "^3.10"
httpx = "^0.27"

[tool.poetry.group.test]
optional = true

[tool.poetry.group.test.dependencies]
pytest = "^8.0"

[tool.poetry.extras]
dev = ["black"]

[build-system]
requires = ["poetry-core"]
build-backend = "poetry.core.masonry.api"
"#,
        );
        write(
            d.path(),
            "poetry.lock",
            "[[package]]\nname = \"pytest\"\nversion = \"8.3.3\"\n",
        );
        let e = detect_with(d.path(), true);
        assert_eq!(e.label, "python (poetry.lock)");
        assert_eq!(
            e.setup,
            [
                "uv venv --clear --seed /env/venv",
                "uv venv --clear \"$HOME/.slipway-poetry\"",
                "uv pip install --python \"$HOME/.slipway-poetry\" poetry",
                "POETRY_VIRTUALENVS_CREATE=false \"$HOME/.slipway-poetry\"/bin/poetry install --no-interaction --extras dev --with test",
            ]
        );
        assert_eq!(e.inputs, ["pyproject.toml", "poetry.lock"]);
    }

    #[test]
    fn requirements_files_alone_fill_a_venv() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "requirements.txt", "flask==3.0.3\n");
        write(
            d.path(),
            "requirements/test.txt",
            "-r ../requirements.txt\npytest==8.3.3\n",
        );
        write(d.path(), "requirements/docs.txt", "sphinx\n");
        write(d.path(), "dev-requirements.txt", "ruff\n");
        let e = detect_with(d.path(), true);
        assert_eq!(e.label, "python (requirements.txt)");
        assert_eq!(
            e.setup,
            [
                "uv venv --clear /env/venv",
                "uv pip install -r requirements.txt -r dev-requirements.txt -r requirements/test.txt",
            ]
        );
        assert_eq!(
            e.inputs,
            [
                "requirements.txt",
                "dev-requirements.txt",
                "requirements/test.txt"
            ]
        );
    }

    #[test]
    fn setup_py_and_setup_cfg_install_editable_with_test_extras() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "setup.py",
            "from setuptools import setup\n\nsetup(\n    name='legacy',\n    extras_require={\n        'tests': ['pytest', 'mock'],\n        'docs': ['sphinx'],\n    },\n)\n",
        );
        let e = detect_with(d.path(), true);
        assert_eq!(e.label, "python (setup.py)");
        assert_eq!(
            e.setup,
            [
                "uv venv --clear /env/venv",
                "uv pip install -e '.[tests]' pytest"
            ]
        );
        std::fs::remove_file(d.path().join("setup.py")).unwrap();
        write(
            d.path(),
            "setup.cfg",
            "[metadata]\nname = legacy\n\n[options.extras_require]\ntesting =\n    pytest>=6\ndocs = sphinx\n",
        );
        let e = detect_with(d.path(), false);
        assert_eq!(e.label, "python (setup.cfg)");
        assert_eq!(e.setup[1], "uv pip install -e '.[testing]'");
    }

    #[test]
    fn an_invalid_pyproject_names_the_line() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "pyproject.toml", "[project]\nname = \"x\n");
        let err = detect(&Tree::new(d.path()), Options::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid pyproject.toml: line 2"),
            "{err}"
        );
    }
}
