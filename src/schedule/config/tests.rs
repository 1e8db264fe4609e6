use super::*;

/// The two sections of `slipway.toml` these tests need (the whole file's struct lives in
/// `crate::config`, which depends on this module).
#[derive(Debug, Serialize, Deserialize)]
struct FileConfig {
    #[serde(default)]
    repos: Vec<RepoConfig>,
    #[serde(default)]
    schedules: Vec<ScheduleConfig>,
}

fn spec() -> ScheduleSpec {
    ScheduleSpec {
        cron: "0 6 * * MON".into(),
        timezone: "Europe/Berlin".into(),
        repo: "acme/api".into(),
        blueprint: "dependency_update".into(),
        args: vec!["--update-types".into(), "patch,minor".into()],
        channel: "C0DEPS".into(),
    }
}

/// The file with `[[repos]] acme/api` and `schedules` (TOML) after it.
fn file(schedules: &str) -> Result<FileConfig, String> {
    let text = format!("[[repos]]\nname = \"acme/api\"\n\n{schedules}");
    toml::from_str(&text).map_err(|e| e.to_string())
}

#[test]
fn the_contract_example_parses_and_round_trips() {
    let f = file(
        r#"[[schedules]]
cron = "0 6 * * MON"                # five-field cron
timezone = "Europe/Berlin"
repo = "acme/api"
blueprint = "dependency_update"
args = ["--update-types", "patch,minor"]
channel = "C0DEPS"                  # each firing starts a new thread here
"#,
    )
    .unwrap();
    validate(&f.schedules, &f.repos).unwrap();
    let s = &f.schedules[0];
    assert_eq!(s.spec(), &spec());
    assert_eq!(s.blueprint(), BlueprintId::DependencyUpdate);
    assert_eq!(s.zone(), chrono_tz::Europe::Berlin);
    assert_eq!(
        s.deps().unwrap().update_types,
        vec![
            crate::deps::UpdateType::Patch,
            crate::deps::UpdateType::Minor
        ]
    );
    // Serialises back to what was written.
    let back: FileConfig = toml::from_str(&toml::to_string(&f).unwrap()).unwrap();
    assert_eq!(back.schedules[0].spec(), &spec());
}

#[test]
fn the_id_is_a_short_content_hash_that_changes_with_any_field() {
    let a = ScheduleConfig::new(spec()).unwrap();
    assert_eq!(a.id().len(), 12);
    assert!(a.id().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(ScheduleConfig::new(spec()).unwrap().id(), a.id());
    let edits: Vec<fn(&mut ScheduleSpec)> = vec![
        |s| s.cron = "0 7 * * MON".into(),
        |s| s.timezone = "UTC".into(),
        |s| s.repo = "acme/web".into(),
        |s| s.blueprint = "checks_only".into(),
        |s| s.args = vec!["--update-types".into(), "patch".into()],
        |s| s.channel = "C0OTHER".into(),
    ];
    for edit in edits {
        let mut s = spec();
        edit(&mut s);
        if s.blueprint == "checks_only" {
            s.args.clear();
        }
        assert_ne!(ScheduleConfig::new(s).unwrap().id(), a.id());
    }
}

#[test]
fn timezone_and_args_are_optional() {
    let f = file(
        "[[schedules]]\ncron = \"*/15 * * * *\"\nrepo = \"acme/api\"\nblueprint = \"checks_only\"\nchannel = \"C0DEV\"\n",
    )
    .unwrap();
    assert_eq!(f.schedules[0].zone(), chrono_tz::UTC);
    assert_eq!(f.schedules[0].deps(), None);
    assert_eq!(f.schedules[0].instruction(), "Scheduled checks_only");
}

/// Each bad value: the field, the message's telling words.
/// A bad value: the edit, the field at fault, words its message must carry.
type Case = (fn(&mut ScheduleSpec), &'static str, &'static [&'static str]);

#[test]
fn bad_values_are_refused_at_parse_time_naming_entry_field_and_fix() {
    let cases: Vec<Case> = vec![
        (
            |s| s.cron = "0 6 * *".into(),
            "cron",
            &["five-field", "e.g. \"0 6 * * MON\""],
        ),
        (|s| s.cron = "0 6 * * * *".into(), "cron", &["five-field"]),
        (|s| s.cron = "61 6 * * MON".into(), "cron", &["five-field"]),
        (
            |s| s.timezone = "Europe/Berlinn".into(),
            "timezone",
            &["IANA", "Europe/Berlin"],
        ),
        (
            |s| s.blueprint = "deps".into(),
            "blueprint",
            &["write one of code_change, checks_only"],
        ),
        (
            |s| s.args = vec!["--update-types".into(), "huge".into()],
            "args",
            &["huge", "--update-types"],
        ),
        (
            |s| s.args = vec!["--frobnicate".into()],
            "args",
            &["--frobnicate"],
        ),
        (
            |s| s.channel = "#deps".into(),
            "channel",
            &["channel ID", "C0DEPS"],
        ),
        (|s| s.repo = "".into(), "repo", &["[[repos]]"]),
        (
            |s| {
                s.blueprint = "checks_only".into();
            },
            "args",
            &["checks_only takes no arguments", "remove `args`"],
        ),
        (
            |s| {
                s.blueprint = "code_change".into();
                s.args.clear();
            },
            "args",
            &["code_change needs an instruction"],
        ),
    ];
    for (edit, field, words) in cases {
        let mut s = spec();
        edit(&mut s);
        let e = ScheduleConfig::new(s.clone()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("`{field}` of [[schedules]]")),
            "{text}"
        );
        for w in words {
            assert!(text.contains(w), "{text:?} lacks {w:?}");
        }
        // Through the file: the TOML parser's message carries ours and the line.
        let toml_text = toml::to_string(&serde_json::json!({"schedules": [s]})).unwrap();
        let err = file(&toml_text).unwrap_err();
        assert!(
            err.contains(&format!("`{field}` of [[schedules]]")),
            "{err}"
        );
        assert!(err.contains("line"), "{err}");
    }
}

#[test]
fn an_unknown_key_is_refused() {
    let err = file(
        "[[schedules]]\ncron = \"0 6 * * MON\"\nrepo = \"acme/api\"\nblueprint = \"checks_only\"\nchannel = \"C0DEV\"\nchanel = \"C0DEV\"\n",
    )
    .unwrap_err();
    assert!(err.contains("chanel"), "{err}");
}

#[test]
fn a_schedule_for_an_unconfigured_repo_names_its_position_and_the_known_repos() {
    let f = file(
        "[[schedules]]\ncron = \"0 6 * * MON\"\nrepo = \"acme/api\"\nblueprint = \"checks_only\"\nchannel = \"C0DEV\"\n\n[[schedules]]\ncron = \"0 6 * * MON\"\nrepo = \"acme/wbe\"\nblueprint = \"checks_only\"\nchannel = \"C0DEV\"\n",
    )
    .unwrap();
    let e = validate(&f.schedules, &f.repos).unwrap_err();
    assert_eq!((e.index, e.field), (Some(2), "repo"));
    let text = e.to_string();
    assert!(
        text.contains("[[schedules]] entry 2 (repo \"acme/wbe\")")
            && text.contains("write one of acme/api"),
        "{text}"
    );
}

#[test]
fn two_identical_entries_are_refused() {
    let one = "[[schedules]]\ncron = \"0 6 * * MON\"\nrepo = \"acme/api\"\nblueprint = \"checks_only\"\nchannel = \"C0DEV\"\n\n";
    let f = file(&format!("{one}{one}")).unwrap();
    let e = validate(&f.schedules, &f.repos).unwrap_err();
    assert_eq!(e.index, Some(2));
    assert!(e.to_string().contains("identical to entry 1"), "{e}");
}

#[test]
fn a_repo_restricted_to_its_channels_takes_schedules_only_there() {
    let text = "[[repos]]\nname = \"acme/api\"\nchannels = [\"C0API\"]\nrestrict_to_channels = true\n\n[[schedules]]\ncron = \"0 6 * * MON\"\nrepo = \"acme/api\"\nblueprint = \"checks_only\"\nchannel = \"C0DEPS\"\n";
    let f: FileConfig = toml::from_str(text).unwrap();
    let e = validate(&f.schedules, &f.repos).unwrap_err();
    assert_eq!((e.index, e.field), (Some(1), "channel"));
    assert!(e.to_string().contains("write one of C0API"), "{e}");
    let f: FileConfig = toml::from_str(&text.replace("C0DEPS", "C0API")).unwrap();
    validate(&f.schedules, &f.repos).unwrap();
}
