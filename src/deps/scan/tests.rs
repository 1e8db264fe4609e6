//! Whole-repo scans over small trees written to a temp dir.

use super::*;

fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn a_manifest_that_does_not_parse_names_the_file_and_line() {
    let dir = repo(&[("Cargo.toml", "[package]\nname = \"x\"\nversion = \n")]);
    let err = scan(dir.path()).unwrap_err().to_string();
    assert!(err.starts_with("Cargo.toml cannot be parsed"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    let dir = repo(&[("package.json", "{\"dependencies\": {\"a\": \"1.0.0\",}}")]);
    let err = scan(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with("package.json cannot be parsed") && err.contains("line 1 column"),
        "{err}"
    );
}

#[test]
fn workspaces_are_followed_and_paths_are_relative_to_the_root() {
    let dir = repo(&[
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"crates/*\"]\nexclude = [\"crates/skip\"]\n[workspace.dependencies]\nserde = \"1\"\n",
        ),
        (
            "crates/a/Cargo.toml",
            "[package]\nname = \"a\"\n[dependencies]\nserde = { workspace = true }\nlog = \"=0.4.20\"\n[dev-dependencies]\nb = { path = \"../b\" }\n",
        ),
        (
            "crates/skip/Cargo.toml",
            "[dependencies]\nrand = \"=0.8.5\"\n",
        ),
        (
            "package.json",
            "{\"workspaces\": [\"packages/*\"], \"devDependencies\": {\"typescript\": \"5.6.3\"}}",
        ),
        (
            "packages/ui/package.json",
            "{\"name\": \"@acme/ui\", \"dependencies\": {\"react\": \"18.3.1\", \"@acme/core\": \"*\"}}",
        ),
        ("packages/core/package.json", "{\"name\": \"@acme/core\"}"),
    ]);
    let s = scan(dir.path()).unwrap();
    let got: Vec<_> = s
        .deps
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.current.as_str(),
                d.manifest.as_str(),
                d.dev,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("typescript", "5.6.3", "package.json", true),
            ("react", "18.3.1", "packages/ui/package.json", false),
            ("log", "0.4.20", "crates/a/Cargo.toml", false),
        ],
        "serde has no lock and no exact pin; crates/skip is excluded; warnings: {:?}",
        s.warnings
    );
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("no package-lock.json"))
    );
    assert!(s.warnings.iter().any(|w| w.contains("no Cargo.lock")));
}

#[test]
fn pyproject_with_uv_lock() {
    let dir = repo(&[
        (
            "pyproject.toml",
            "[project]\nname = \"app\"\ndependencies = [\"Requests>=2.31\", \"attrs\"]\n[project.optional-dependencies]\ncli = [\"click>=8\"]\n[dependency-groups]\ndev = [\"pytest>=8\", {include-group = \"lint\"}]\nlint = [\"ruff==0.6.9\"]\n",
        ),
        (
            "uv.lock",
            "version = 1\n[[package]]\nname = \"requests\"\nversion = \"2.32.3\"\n[[package]]\nname = \"click\"\nversion = \"8.1.7\"\n[[package]]\nname = \"pytest\"\nversion = \"8.3.3\"\n[[package]]\nname = \"ruff\"\nversion = \"0.6.9\"\n",
        ),
    ]);
    let s = scan(dir.path()).unwrap();
    let got: Vec<_> = s
        .deps
        .iter()
        .map(|d| {
            (
                d.name.as_str(),
                d.current.as_str(),
                d.dev,
                d.lockfile.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("requests", "2.32.3", false, Some("uv.lock")),
            ("click", "8.1.7", false, Some("uv.lock")),
            ("pytest", "8.3.3", true, Some("uv.lock")),
            ("ruff", "0.6.9", true, Some("uv.lock")),
        ]
    );
    assert_eq!(s.warnings.len(), 1, "attrs is not locked: {:?}", s.warnings);
    assert!(s.warnings[0].contains("`attrs`"));
}
