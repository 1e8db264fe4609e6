//! `devcontainer.json`, read as the Dev Containers spec describes it
//! (containers.dev/implementors/json_reference): the image (`image`, or `build.dockerfile` +
//! `build.context` + `build.args`), the lifecycle commands that set the container up
//! (`onCreateCommand`, `updateContentCommand`, `postCreateCommand`, in that order) and the
//! environment (`containerEnv`, `remoteEnv`).
//!
//! The file is JSON with comments and trailing commas. What slipway cannot honour is
//! ignored with a note, never an error: features, mounts, ports, compose, customizations,
//! a user or workspace folder of its own (the work tree is always at `/workspace` and
//! commands run as the image's user). `initializeCommand` runs on the host in the spec, so
//! it never runs here. `${localEnv:…}` is never read from the host: its default (or nothing)
//! is used.
//!
//! Owns reading one devcontainer file; it must not decide precedence (that is `resolve`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{EnvError, ImageSpec, Result, Tree, WORKSPACE, normalize};

/// Where a devcontainer file may be, in the order they are looked for.
pub(super) const PATHS: [&str; 2] = [".devcontainer/devcontainer.json", ".devcontainer.json"];

/// The lifecycle commands that prepare a container, in the spec's order. The later ones
/// (`postStartCommand`, `postAttachCommand`) run on every start or attach in the spec.
const SETUP_COMMANDS: [&str; 3] = [
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
];

/// Keys that are read (or deliberately skipped with their own note).
const KNOWN: &[&str] = &[
    "$schema",
    "name",
    "image",
    "build",
    "dockerFile",
    "context",
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "initializeCommand",
    "postStartCommand",
    "postAttachCommand",
    "containerEnv",
    "remoteEnv",
    "remoteUser",
    "containerUser",
    "workspaceFolder",
    "workspaceMount",
    "dockerComposeFile",
    "service",
    "runServices",
];

/// What one devcontainer file contributes to the plan.
#[derive(Debug, Default)]
pub(super) struct Devcontainer {
    /// The file, repo-relative.
    pub path: String,
    /// The image it names or builds; `None` when it names neither.
    pub image: Option<ImageSpec>,
    /// Its lifecycle commands as shell commands, in order.
    pub setup: Vec<String>,
    /// `containerEnv` then `remoteEnv` (PATH excluded: see `path_prefix`).
    pub env: BTreeMap<String, String>,
    /// Directories its `PATH` entries add in front of the container's.
    pub path_prefix: Vec<String>,
    /// The file itself and its Dockerfile.
    pub inputs: Vec<String>,
    /// What was ignored or adapted, for the setup gate.
    pub notes: Vec<String>,
}

/// The first devcontainer file present, if any.
pub(super) fn find(tree: &Tree<'_>) -> Result<Option<&'static str>> {
    for p in PATHS {
        if tree.is_file(p)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// Reads the devcontainer file at `rel`. Errors name the file and, for syntax, the line
/// and column.
pub(super) fn load(tree: &Tree<'_>, rel: &str) -> Result<Devcontainer> {
    let text = tree.read(rel)?.unwrap_or_default();
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        ..Default::default()
    };
    let value: Value =
        jsonc_parser::parse_to_serde_value(&text, &options).map_err(|e| EnvError::Syntax {
            file: rel.into(),
            line: e.line_display(),
            column: e.column_display(),
            message: e.kind().to_string(),
        })?;
    let Value::Object(obj) = value else {
        return Err(invalid(rel, "(file)", "must be a JSON object"));
    };
    let mut dc = Devcontainer {
        path: rel.into(),
        inputs: vec![rel.into()],
        ..Default::default()
    };
    // The folder paths in the file are relative to ("" for the repo root).
    let folder = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
    dc.image = image(tree, rel, folder, &obj, &mut dc)?;
    for key in SETUP_COMMANDS {
        if let Some(v) = obj.get(key) {
            let cmds = commands(rel, key, v, &mut dc.notes)?;
            dc.setup.extend(cmds);
        }
    }
    for key in ["containerEnv", "remoteEnv"] {
        if let Some(v) = obj.get(key) {
            environment(rel, key, v, &mut dc)?;
        }
    }
    notes_for_the_rest(&obj, &mut dc.notes);
    Ok(dc)
}

fn invalid(file: &str, key: &str, message: &str) -> EnvError {
    EnvError::Invalid {
        file: file.into(),
        key: key.into(),
        message: message.into(),
    }
}

fn string<'v>(file: &str, key: &str, v: &'v Value) -> Result<&'v str> {
    v.as_str()
        .ok_or_else(|| invalid(file, key, "must be a string"))
}

/// `image`, or a Dockerfile build (`build.dockerfile`, or the older top-level `dockerFile`).
fn image(
    tree: &Tree<'_>,
    rel: &str,
    folder: &str,
    obj: &Map<String, Value>,
    dc: &mut Devcontainer,
) -> Result<Option<ImageSpec>> {
    let build = match obj.get("build") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(b)) => b.clone(),
        Some(_) => return Err(invalid(rel, "build", "must be an object")),
    };
    let (dockerfile_key, dockerfile) = match (build.get("dockerfile"), obj.get("dockerFile")) {
        (Some(v), _) => (
            "build.dockerfile",
            Some(string(rel, "build.dockerfile", v)?),
        ),
        (None, Some(v)) => ("dockerFile", Some(string(rel, "dockerFile", v)?)),
        (None, None) => ("build.dockerfile", None),
    };
    let Some(dockerfile) = dockerfile else {
        if !build.is_empty() {
            dc.notes
                .push(format!("{rel}: `build` without `dockerfile` is ignored"));
        }
        if let Some(v) = obj.get("image") {
            let name =
                subst(string(rel, "image", v)?, Mode::Literal, &mut dc.notes).unwrap_or_default();
            if name.trim().is_empty() {
                return Err(invalid(rel, "image", "must name an image"));
            }
            return Ok(Some(ImageSpec::Named(name)));
        }
        if obj.contains_key("dockerComposeFile") {
            dc.notes.push(format!(
                "{rel}: Docker Compose (`dockerComposeFile`) is not supported; the default image is used"
            ));
        }
        return Ok(None);
    };
    if obj.contains_key("image") {
        dc.notes.push(format!(
            "{rel}: `image` is not used because `{dockerfile_key}` builds the image"
        ));
    }
    let in_folder = |p: &str| {
        if folder.is_empty() {
            p.to_string()
        } else {
            format!("{folder}/{p}")
        }
    };
    let file = normalize(&in_folder(dockerfile)).ok_or_else(|| EnvError::Unsafe {
        file: rel.into(),
        reason: format!("{dockerfile_key} {dockerfile:?} leads out of the repository"),
    })?;
    if !tree.is_file(&file)? {
        return Err(invalid(
            rel,
            dockerfile_key,
            &format!("{file} does not exist in the repository"),
        ));
    }
    let (context_key, context) = match (build.get("context"), obj.get("context")) {
        (Some(v), _) => ("build.context", string(rel, "build.context", v)?),
        (None, Some(v)) => ("context", string(rel, "context", v)?),
        (None, None) => ("build.context", "."),
    };
    let context_dir = normalize(&in_folder(context)).ok_or_else(|| EnvError::Unsafe {
        file: rel.into(),
        reason: format!("{context_key} {context:?} leads out of the repository"),
    })?;
    if !tree.is_dir(&context_dir)? {
        return Err(invalid(
            rel,
            context_key,
            &format!("{context_dir} is not a directory in the repository"),
        ));
    }
    let mut args = BTreeMap::new();
    match build.get("args") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => {
            for (k, v) in a {
                let key = format!("build.args.{k}");
                let raw = string(rel, &key, v)?;
                if let Some(v) = subst(raw, Mode::Literal, &mut dc.notes) {
                    args.insert(k.clone(), v);
                }
            }
        }
        Some(_) => return Err(invalid(rel, "build.args", "must be an object of strings")),
    }
    let mut ignored: Vec<&str> = build
        .keys()
        .map(String::as_str)
        .filter(|k| !["dockerfile", "context", "args"].contains(k))
        .collect();
    ignored.sort_unstable();
    if !ignored.is_empty() {
        dc.notes.push(format!(
            "{rel}: build options not supported, ignored: {}",
            ignored.join(", ")
        ));
    }
    dc.inputs.push(file.clone());
    Ok(Some(ImageSpec::Dockerfile {
        dockerfile: file,
        context: context_dir,
        args,
    }))
}

/// One lifecycle command: a string (run by the shell), an array (one program and its
/// arguments, quoted into one shell command) or an object of named commands of either kind
/// (the spec runs those in parallel; here they run one after another, in name order).
fn commands(rel: &str, key: &str, v: &Value, notes: &mut Vec<String>) -> Result<Vec<String>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(named) => {
            let mut out = Vec::new();
            for (name, c) in named {
                let k = format!("{key}.{name}");
                match c {
                    Value::String(_) | Value::Array(_) => {
                        out.extend(one_command(rel, &k, c, notes)?);
                    }
                    _ => return Err(invalid(rel, &k, "must be a string or an array of strings")),
                }
            }
            if named.len() > 1 {
                notes.push(format!(
                    "{rel}: {key}'s {} named commands run one after another, in name order: {}",
                    named.len(),
                    named.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            Ok(out)
        }
        _ => one_command(rel, key, v, notes),
    }
}

fn one_command(rel: &str, key: &str, v: &Value, notes: &mut Vec<String>) -> Result<Vec<String>> {
    match v {
        Value::String(s) => {
            let s = subst(s, Mode::Shell, notes).unwrap_or_default();
            Ok(if s.trim().is_empty() { vec![] } else { vec![s] })
        }
        Value::Array(argv) => {
            let mut words = Vec::new();
            for (i, w) in argv.iter().enumerate() {
                let w = string(rel, &format!("{key}[{i}]"), w)?;
                let word = subst(w, Mode::Literal, notes).unwrap_or_else(|| {
                    notes.push(format!(
                        "{rel}: {key}[{i}] refers to a container variable and is passed as written"
                    ));
                    w.to_string()
                });
                words.push(word);
            }
            if words.is_empty() {
                return Ok(vec![]);
            }
            let cmd = shlex::try_join(words.iter().map(String::as_str))
                .map_err(|e| invalid(rel, key, &e.to_string()))?;
            Ok(vec![cmd])
        }
        _ => Err(invalid(
            rel,
            key,
            "must be a string, an array of strings or an object of named commands",
        )),
    }
}

/// `containerEnv` / `remoteEnv`: string values by name. `PATH` is not set as is: its
/// entries other than the container's own `PATH` go in front of the sandbox's `PATH`.
fn environment(rel: &str, key: &str, v: &Value, dc: &mut Devcontainer) -> Result<()> {
    let Value::Object(vars) = v else {
        return Err(invalid(rel, key, "must be an object of strings"));
    };
    for (name, value) in vars {
        let k = format!("{key}.{name}");
        if value.is_null() {
            // remoteEnv: null unsets a variable; nothing to add.
            continue;
        }
        let raw = string(rel, &k, value)?;
        if name == "PATH" {
            // The container's own PATH (which has a `:` inside) becomes a NUL first.
            let mut raw = raw.to_string();
            for own in ["${containerEnv:PATH}", "${PATH}", "$PATH"] {
                raw = raw.replace(own, "\0");
            }
            let added: Vec<String> = raw
                .split(':')
                // An entry holding the container's PATH (`${PATH}${PATH}`, `/x$PATH`) is
                // not a directory, and an environment variable cannot hold a NUL byte.
                .filter(|p| !p.is_empty() && !p.contains('\0'))
                .filter_map(|p| subst(p, Mode::Literal, &mut dc.notes))
                .collect();
            if !added.is_empty() {
                dc.notes.push(format!(
                    "{rel}: {k} adds {} in front of the sandbox's PATH",
                    added.join(":")
                ));
            }
            dc.path_prefix.extend(added);
            continue;
        }
        match subst(raw, Mode::Literal, &mut dc.notes) {
            Some(val) => {
                dc.env.insert(name.clone(), val);
            }
            None => dc.notes.push(format!(
                "{rel}: {k} is not set: it refers to another container variable"
            )),
        }
    }
    Ok(())
}

/// Whether a value is run by a shell (which can expand `$NAME` itself) or used literally.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Shell,
    Literal,
}

/// Replaces the spec's `${…}` variables: the workspace folder is `/workspace`; `localEnv`
/// (the host's environment) is never read, its default or nothing is used; `containerEnv`
/// becomes the shell's own `${NAME}` in a command, and makes a literal value unusable
/// (`None`). Unknown variables stay as written.
fn subst(s: &str, mode: Mode, notes: &mut Vec<String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let var = &rest[start + 2..start + len];
        let (kind, arg) = var.split_once(':').unwrap_or((var, ""));
        match kind {
            "containerWorkspaceFolder" | "localWorkspaceFolder" => out.push_str(WORKSPACE),
            "containerWorkspaceFolderBasename" | "localWorkspaceFolderBasename" => {
                out.push_str("workspace")
            }
            "localEnv" => {
                let (name, default) = arg.split_once(':').unwrap_or((arg, ""));
                let note = format!(
                    "${{localEnv:{name}}} is not read from slipway's host; {}",
                    if default.is_empty() {
                        "it is empty".to_string()
                    } else {
                        format!("its default {default:?} is used")
                    }
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
                out.push_str(default);
            }
            "containerEnv" if mode == Mode::Shell => {
                let (name, default) = arg.split_once(':').unwrap_or((arg, ""));
                if default.is_empty() {
                    out.push_str(&format!("${{{name}}}"));
                } else {
                    out.push_str(&format!("${{{name}:-{default}}}"));
                }
            }
            "containerEnv" => return None,
            _ => out.push_str(&rest[start..start + len + 1]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Notes for the keys slipway reads but does not follow, and for every key it ignores.
fn notes_for_the_rest(obj: &Map<String, Value>, notes: &mut Vec<String>) {
    let str_of = |k: &str| obj.get(k).and_then(Value::as_str);
    for key in ["remoteUser", "containerUser"] {
        if let Some(u) = str_of(key) {
            notes.push(format!(
                "{key} {u:?} is not used: setup, checks and the agent run as the image's own user"
            ));
        }
    }
    if let Some(w) = str_of("workspaceFolder").filter(|w| *w != WORKSPACE) {
        notes.push(format!(
            "workspaceFolder {w:?} is not used: the work tree is always at {WORKSPACE}"
        ));
    }
    if obj.contains_key("workspaceMount") {
        notes.push(format!(
            "workspaceMount is not used: the work tree is always mounted at {WORKSPACE}"
        ));
    }
    if obj.contains_key("initializeCommand") {
        notes.push(
            "initializeCommand is never run: the spec runs it on the host, outside any sandbox"
                .into(),
        );
    }
    for key in ["postStartCommand", "postAttachCommand"] {
        if obj.contains_key(key) {
            notes.push(format!(
                "{key} is not run: setup runs once (onCreate, updateContent, postCreate) and its result is reused"
            ));
        }
    }
    let ignored: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !ignored.is_empty() {
        notes.push(format!("not supported, ignored: {}", ignored.join(", ")));
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
