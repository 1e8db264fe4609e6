//! Tests of devcontainer.json reading.
use super::*;

fn write(root: &std::path::Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A devcontainer.json shaped like the ones the Dev Containers templates generate:
/// comments, trailing commas, features and customizations.
const PYTHON_TEMPLATE: &str = r#"// For format details, see https://aka.ms/devcontainer.json.
{
	"name": "Python 3",
	// Or use a Dockerfile or Docker Compose file.
	"image": "mcr.microsoft.com/devcontainers/python:1-3.12-bullseye",
	"features": {
		"ghcr.io/devcontainers/features/node:1": {},
	},
	/* Use 'forwardPorts' to make a list of ports inside the container available locally. */
	"forwardPorts": [8000],
	"postCreateCommand": "pip3 install --user -r requirements.txt",
	"containerEnv": {
		"APP_ENV": "test",
		"DATA_DIR": "${containerWorkspaceFolder}/data",
		"TOKEN": "${localEnv:GITHUB_TOKEN}",
	},
	"customizations": {
		"vscode": { "extensions": ["ms-python.python",], },
	},
	"remoteUser": "vscode",
	"workspaceFolder": "/workspaces/app",
}
"#;

#[test]
fn comments_trailing_commas_and_unsupported_keys_are_read_with_notes() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), ".devcontainer/devcontainer.json", PYTHON_TEMPLATE);
    let tree = Tree::new(d.path());
    let rel = find(&tree).unwrap().unwrap();
    let dc = load(&tree, rel).unwrap();
    assert_eq!(
        dc.image,
        Some(ImageSpec::Named(
            "mcr.microsoft.com/devcontainers/python:1-3.12-bullseye".into()
        ))
    );
    assert_eq!(dc.setup, ["pip3 install --user -r requirements.txt"]);
    assert_eq!(dc.env["APP_ENV"], "test");
    assert_eq!(dc.env["DATA_DIR"], "/workspace/data");
    // The host's environment never leaks in.
    assert_eq!(dc.env["TOKEN"], "");
    let notes = dc.notes.join("\n");
    assert!(
        notes.contains("not supported, ignored: customizations, features, forwardPorts"),
        "{notes}"
    );
    assert!(
        notes.contains("remoteUser \"vscode\" is not used"),
        "{notes}"
    );
    assert!(
        notes.contains("workspaceFolder \"/workspaces/app\" is not used"),
        "{notes}"
    );
    assert!(notes.contains("localEnv:GITHUB_TOKEN"), "{notes}");
    assert_eq!(dc.inputs, [".devcontainer/devcontainer.json"]);
}

#[test]
fn a_dockerfile_build_resolves_paths_from_the_files_folder() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".devcontainer/devcontainer.json",
        r#"{
  "build": {
// The Dockerfile sits next to this file; the context is the repo.
"dockerfile": "Dockerfile",
"context": "..",
"args": { "VARIANT": "3.12", "NODE_VERSION": "${localEnv:NODE_VERSION:22}" },
"target": "dev",
  },
  "image": "ignored:latest",
}"#,
    );
    write(
        d.path(),
        ".devcontainer/Dockerfile",
        "FROM debian:bookworm\n",
    );
    let tree = Tree::new(d.path());
    let dc = load(&tree, ".devcontainer/devcontainer.json").unwrap();
    assert_eq!(
        dc.image,
        Some(ImageSpec::Dockerfile {
            dockerfile: ".devcontainer/Dockerfile".into(),
            context: ".".into(),
            args: [("NODE_VERSION", "22"), ("VARIANT", "3.12")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        })
    );
    assert_eq!(
        dc.inputs,
        [
            ".devcontainer/devcontainer.json",
            ".devcontainer/Dockerfile"
        ]
    );
    let notes = dc.notes.join("\n");
    assert!(
        notes.contains("build options not supported, ignored: target"),
        "{notes}"
    );
    assert!(notes.contains("`image` is not used"), "{notes}");
}

#[test]
fn a_dockerfile_that_is_missing_or_outside_the_repo_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".devcontainer.json",
        r#"{"build": {"dockerfile": "Dockerfile.dev"}}"#,
    );
    let tree = Tree::new(d.path());
    let err = load(&tree, ".devcontainer.json").unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid .devcontainer.json: build.dockerfile: Dockerfile.dev does not exist in the repository"
    );
    write(
        d.path(),
        ".devcontainer.json",
        r#"{"build": {"dockerfile": "../../etc/Dockerfile"}}"#,
    );
    let err = load(&tree, ".devcontainer.json").unwrap_err().to_string();
    assert!(err.contains("leads out of the repository"), "{err}");
}

#[test]
fn lifecycle_commands_run_in_the_specs_order_in_all_three_forms() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".devcontainer/devcontainer.json",
        r#"{
  "image": "node:22",
  "postCreateCommand": {
"server": "npm ci",
"db": ["sh", "-c", "echo it's ${containerEnv:HOME}"],
  },
  "onCreateCommand": ["pip", "install", "-e", ".[test]"],
  "updateContentCommand": "make deps",
  "postStartCommand": "npm start",
  "initializeCommand": "docker login",
}"#,
    );
    let tree = Tree::new(d.path());
    let dc = load(&tree, ".devcontainer/devcontainer.json").unwrap();
    assert_eq!(
        dc.setup,
        [
            "pip install -e '.[test]'",
            "make deps",
            // Object form: name order (db before server); an argv is quoted whole.
            // (a container variable in an argv is passed as written)
            r#"sh -c "echo it's "'${containerEnv:HOME}'"#,
            "npm ci",
        ]
    );
    let notes = dc.notes.join("\n");
    assert!(
        notes.contains("2 named commands run one after another, in name order: db, server"),
        "{notes}"
    );
    assert!(notes.contains("initializeCommand is never run"), "{notes}");
    assert!(notes.contains("postStartCommand is not run"), "{notes}");
}

#[test]
fn a_string_command_keeps_shell_syntax_and_maps_container_variables() {
    let mut notes = vec![];
    assert_eq!(
        subst(
            "cd ${containerWorkspaceFolder} && echo ${containerEnv:PATH} ${containerEnv:X:1}",
            Mode::Shell,
            &mut notes
        )
        .unwrap(),
        "cd /workspace && echo ${PATH} ${X:-1}"
    );
    assert_eq!(
        subst("${containerEnv:PATH}", Mode::Literal, &mut notes),
        None
    );
    assert_eq!(
        subst("${unknown} $HOME", Mode::Literal, &mut notes).unwrap(),
        "${unknown} $HOME"
    );
}

#[test]
fn path_entries_become_a_prefix() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".devcontainer.json",
        r#"{"image": "x", "containerEnv": {"PATH": "/opt/tool/bin:${containerEnv:PATH}", "NAME": "${containerEnv:USER}"}}"#,
    );
    let dc = load(&Tree::new(d.path()), ".devcontainer.json").unwrap();
    assert_eq!(dc.path_prefix, ["/opt/tool/bin"]);
    assert!(!dc.env.contains_key("PATH"));
    assert!(!dc.env.contains_key("NAME"));
    assert!(
        dc.notes
            .iter()
            .any(|n| n.contains("containerEnv.NAME is not set"))
    );
}

#[test]
fn invalid_json_names_the_file_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".devcontainer/devcontainer.json",
        "{\n  // a comment is fine\n  \"image\": \"x\"\n  \"postCreateCommand\": \"make\"\n}\n",
    );
    let err = load(&Tree::new(d.path()), ".devcontainer/devcontainer.json").unwrap_err();
    let EnvError::Syntax {
        file, line, column, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(file, ".devcontainer/devcontainer.json");
    // The comma is missing at the end of line 3.
    assert_eq!((*line, *column), (3, 15));
    assert!(
        err.to_string()
            .starts_with("invalid .devcontainer/devcontainer.json: line 3, column 15: "),
        "{err}"
    );
    write(d.path(), ".devcontainer/devcontainer.json", "[1, 2]");
    let err = load(&Tree::new(d.path()), ".devcontainer/devcontainer.json").unwrap_err();
    assert!(err.to_string().contains("must be a JSON object"), "{err}");
    write(
        d.path(),
        ".devcontainer/devcontainer.json",
        r#"{"postCreateCommand": 42}"#,
    );
    let err = load(&Tree::new(d.path()), ".devcontainer/devcontainer.json").unwrap_err();
    assert!(
        err.to_string()
            .contains("postCreateCommand: must be a string"),
        "{err}"
    );
}

/// Found by the fuzz property `path_entries_are_directories`: the container's own PATH twice
/// (or inside an entry) was added as a directory holding NUL bytes.
#[test]
fn an_entry_holding_the_containers_path_is_not_a_directory() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        ".devcontainer.json",
        r#"{"image": "debian", "containerEnv": {"PATH": "${containerEnv:PATH}${containerEnv:PATH}:/opt/x$PATH:/opt/bin"}}"#,
    );
    let dc = load(&Tree::new(d.path()), ".devcontainer.json").unwrap();
    assert_eq!(dc.path_prefix, ["/opt/bin"]);
}
