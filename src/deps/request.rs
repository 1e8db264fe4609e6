//! A `dependency_update` request from its command-line words: the CLI's flags and a
//! schedule's `args` (`["--update-types", "patch,minor", "--only", "lodash"]`).

use super::{DepsRequest, UpdateType};

/// Parses `--only NAME` (repeatable), `--update-types a,b`, `--version V`,
/// `--lockfile-maintenance`. Errors: an unknown flag, a flag without its value, or an
/// unknown update type, each named in the message.
pub fn parse_args(args: &[String]) -> Result<DepsRequest, String> {
    let mut req = DepsRequest::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--only" => req.only.push(value("--only")?),
            "--update-types" => add_update_types(&value("--update-types")?, &mut req.update_types)?,
            "--version" => req.version = Some(value("--version")?),
            "--lockfile-maintenance" => req.lockfile_maintenance = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?} for dependency_update: use --only NAME, --update-types patch,minor,major, --version V or --lockfile-maintenance"
                ));
            }
        }
    }
    Ok(req)
}

/// Adds the comma-separated update types of `list` (`patch,minor`) to `types`, each once.
/// Errors: an unknown type, named with the accepted words.
pub fn add_update_types(list: &str, types: &mut Vec<UpdateType>) -> Result<(), String> {
    for t in list.split(',').filter(|t| !t.trim().is_empty()) {
        let t: UpdateType = t.parse()?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn schedule_args_parse_and_bad_ones_are_named() {
        let r = parse_args(&words(
            "--update-types patch,minor --only lodash --only left-pad",
        ))
        .unwrap();
        assert_eq!(r.update_types, vec![UpdateType::Patch, UpdateType::Minor]);
        assert_eq!(r.only, vec!["lodash", "left-pad"]);
        assert!(
            parse_args(&words("--update-types huge"))
                .unwrap_err()
                .contains("huge")
        );
        assert!(
            parse_args(&words("--only"))
                .unwrap_err()
                .contains("--only needs")
        );
        assert!(
            parse_args(&words("--frobnicate"))
                .unwrap_err()
                .contains("--frobnicate")
        );
    }
}
