//! Go: `go.mod` at the root and in `go.work`'s `use` directories.
//!
//! Protocol facts (the Go modules reference, "go.mod files"): line-oriented; a directive
//! is a verb and arguments, or a verb and a parenthesised block of argument lines;
//! `//` starts a comment, and `// indirect` on a require line marks a dependency that only
//! other dependencies need. `replace old [v] => new [v]` swaps a module for another
//! source. The version in `require` is the minimum the build selects (go.sum holds
//! checksums, not versions), so go.mod itself is the version record.

use super::{Ctx, Scan, ScanError};
use crate::deps::{Dependency, Ecosystem};

pub(super) fn scan(ctx: &Ctx, out: &mut Scan) -> Result<(), ScanError> {
    let mut dirs = vec![String::new()];
    if let Some(work) = ctx.read("go.work")? {
        let lines = directives("go.work", &work)?;
        for (verb, args, _) in lines {
            if verb == "use"
                && let Some(d) = args.first()
            {
                let d = d.trim_start_matches("./").trim_end_matches('/').to_string();
                if d != "." && !d.is_empty() && !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
    }
    for dir in dirs {
        let file = Ctx::rel(&dir, "go.mod");
        let Some(text) = ctx.read(&file)? else {
            continue;
        };
        let sum = Ctx::rel(&dir, "go.sum");
        let lockfile = ctx.exists(&sum).then_some(sum);
        gomod(&file, &text, lockfile, out)?;
    }
    Ok(())
}

/// One go.mod's requirements, `replace`d modules left out with a warning.
pub(super) fn gomod(
    file: &str,
    text: &str,
    lockfile: Option<String>,
    out: &mut Scan,
) -> Result<(), ScanError> {
    let lines = directives(file, text)?;
    let replaced: Vec<&str> = lines
        .iter()
        .filter(|(verb, _, _)| verb == "replace")
        .filter_map(|(_, args, _)| args.first().map(String::as_str))
        .collect();
    for (verb, args, comment) in &lines {
        if verb != "require" {
            continue;
        }
        let [path, ver] = args.as_slice() else {
            continue;
        };
        if replaced.contains(&path.as_str()) {
            out.warnings.push(format!(
                "{file}: `{path}` is replaced (a `replace` directive); not updated"
            ));
            continue;
        }
        out.deps.push(Dependency {
            name: path.clone(),
            ecosystem: Ecosystem::Go,
            current: ver.clone(),
            requirement: Some(ver.clone()),
            manifest: file.to_string(),
            lockfile: lockfile.clone(),
            dev: false,
            indirect: comment.split(';').any(|c| c.trim() == "indirect"),
        });
    }
    Ok(())
}

/// (verb, arguments, trailing comment) for each directive line, blocks flattened.
type Line = (String, Vec<String>, String);

fn directives(file: &str, text: &str) -> Result<Vec<Line>, ScanError> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let (code, comment) = match raw.find("//") {
            Some(at) => (&raw[..at], raw[at + 2..].trim()),
            None => (raw, ""),
        };
        let words: Vec<String> = code
            .split_whitespace()
            .map(|w| w.trim_matches(['"', '`']).to_string())
            .collect();
        let bad = |what: &str| ScanError::Parse {
            file: file.to_string(),
            detail: format!("{what} at line {}, column 1: `{}`", i + 1, raw.trim()),
        };
        match (&block, words.as_slice()) {
            (_, []) => {}
            (Some(_), [close]) if close == ")" => block = None,
            (Some(verb), args) => {
                check(verb, args).map_err(&bad)?;
                out.push((verb.clone(), args.to_vec(), comment.to_string()));
            }
            (None, [verb, open]) if open == "(" => block = Some(verb.clone()),
            (None, [verb, args @ ..]) => {
                check(verb, args).map_err(&bad)?;
                out.push((verb.clone(), args.to_vec(), comment.to_string()));
            }
        }
    }
    match block {
        Some(verb) => Err(ScanError::Parse {
            file: file.to_string(),
            detail: format!("the `{verb} (` block is never closed with `)`"),
        }),
        None => Ok(out),
    }
}

fn check(verb: &str, args: &[String]) -> Result<(), &'static str> {
    match verb {
        "require" if args.len() != 2 => Err("a require line needs a module path and a version"),
        "replace" if !args.iter().any(|a| a == "=>") => Err("a replace line needs `=>`"),
        "module" | "go" | "toolchain" | "godebug" | "require" | "replace" | "exclude"
        | "retract" | "use" | "tool" | "ignore" => Ok(()),
        _ => Err("unknown directive"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_indirect_and_replaced() {
        let text = "module example.com/m\n\ngo 1.22\n\nrequire (\n\tgithub.com/a/b v1.2.3\n\t\
                    github.com/c/d v0.4.0 // indirect\n\tgithub.com/e/f v2.0.0+incompatible\n)\n\
                    require golang.org/x/text v0.28.0\n\nreplace github.com/e/f => ../f\n";
        let mut out = Scan::default();
        gomod("go.mod", text, Some("go.sum".into()), &mut out).unwrap();
        let got: Vec<_> = out
            .deps
            .iter()
            .map(|d| (d.name.as_str(), d.current.as_str(), d.indirect))
            .collect();
        assert_eq!(
            got,
            [
                ("github.com/a/b", "v1.2.3", false),
                ("github.com/c/d", "v0.4.0", true),
                ("golang.org/x/text", "v0.28.0", false)
            ]
        );
        assert_eq!(out.warnings.len(), 1);
    }

    #[test]
    fn a_broken_go_mod_names_the_line() {
        let err = gomod(
            "svc/go.mod",
            "module m\nrequire (\n\tgithub.com/a/b\n)\n",
            None,
            &mut Scan::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("svc/go.mod") && msg.contains("line 3"),
            "{msg}"
        );
        let err = gomod(
            "go.mod",
            "module m\nrequire (\n",
            None,
            &mut Scan::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("never closed"), "{err}");
    }
}
