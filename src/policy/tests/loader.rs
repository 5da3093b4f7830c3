//! Loading a policy directory: ids, locations of every kind of problem,
//! schema compatibility, and the `[policy]` config section.

use super::*;
use crate::policy::loader::PolicyInfo;

fn problems(schema: &str, files: &[(&str, &str)]) -> Vec<String> {
    match try_engine(schema, files) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn ids_come_from_annotations_or_file_and_position() {
    let e = try_engine(
        &schema_text(),
        &[(
            "team-a.cedar",
            "// comment\npermit (principal, action == Action::\"shell\", resource);\n\n@id(\"named\")\n@message(\"m\")\n@description(\"d\")\nforbid (principal, action, resource) when { context.hour == 3 };\npermit (principal, action == Action::\"exec\", resource);\n",
        )],
    )
    .unwrap();
    let snap = e.snapshot();
    let ids: Vec<&str> = snap.policies.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["team-a#1", "named", "team-a#3"]);
    assert_eq!(
        snap.info("named"),
        Some(&PolicyInfo {
            id: "named".into(),
            file: PathBuf::from("mem/team-a.cedar"),
            line: 4,
            effect: cedar_policy::Effect::Forbid,
            message: Some("m".into()),
            description: Some("d".into()),
            run_as: None,
        })
    );
    assert_eq!(snap.info("team-a#1").unwrap().line, 2);
    assert_eq!(snap.info("team-a#3").unwrap().line, 8);
}

#[test]
fn parse_errors_name_file_line_and_column() {
    let p = problems(
        &schema_text(),
        &[
            ("ok.cedar", "permit (principal, action, resource);"),
            (
                "bad.cedar",
                "permit (principal, action, resource)\nwhen { context.reason like };\n",
            ),
        ],
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("mem/bad.cedar:2:28: "), "{p:?}");
    assert!(p[0].contains("unexpected token"), "{p:?}");
}

#[test]
fn validation_errors_name_file_line_and_policy() {
    let p = problems(
        &schema_text(),
        &[(
            "x.cedar",
            "@id(\"fine\")\npermit (principal, action, resource);\n\n@id(\"typo\")\npermit (principal, action, resource)\nwhen { resource.owner == \"me\" };\n@id(\"unguarded\")\npermit (principal, action, resource)\nwhen { context.reason == \"x\" };\n",
        )],
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("mem/x.cedar:6:8: policy typo: "), "{p:?}");
    assert!(p[0].contains("owner"), "{p:?}");
    assert!(
        p[1].starts_with("mem/x.cedar:9:8: policy unguarded: "),
        "{p:?}"
    );
}

#[test]
fn bad_and_duplicate_ids_and_templates_are_refused() {
    let p = problems(
        &schema_text(),
        &[
            (
                "a.cedar",
                "@id(\"same\")\npermit (principal, action, resource);",
            ),
            (
                "b.cedar",
                "\n@id(\"same\")\npermit (principal, action, resource);\n@id(\"has space\")\npermit (principal, action, resource);",
            ),
            (
                "c.cedar",
                "permit (principal == ?principal, action, resource);",
            ),
        ],
    );
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(
        p[0],
        "mem/b.cedar:2:1: policy same: duplicate policy id (also mem/a.cedar:1)"
    );
    assert!(
        p[1].starts_with("mem/b.cedar:4:1: policy has space: @id must be"),
        "{p:?}"
    );
    assert!(p[2].starts_with("mem/c.cedar: templates"), "{p:?}");
}

#[test]
fn a_schema_that_does_not_fit_is_refused() {
    let no_hour = schema_text().replace("  hour: Long,", "");
    let p = problems(&no_hour, &[]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("mem/schema.cedarschema: the schema does not fit"),
        "{p:?}"
    );
    assert!(p[0].contains("hour"), "{p:?}");
    let extra = schema_text()
        + "\naction delete appliesTo { principal: User, resource: Target, context: SessionContext };\n";
    let p = problems(&extra, &[]);
    assert!(p[0].contains("exactly the actions"), "{p:?}");
    assert!(p[0].contains("delete"), "{p:?}");
    let p = problems("entity User = {", &[]);
    assert!(p[0].starts_with("mem/schema.cedarschema:1:"), "{p:?}");
}

#[test]
fn load_reads_a_directory_and_skips_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        shipped().join("schema.cedarschema"),
        dir.path().join("schema.cedarschema"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.cedar"),
        "permit (principal, action == Action::\"shell\", resource);",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a.cedar"),
        "@id(\"first\") permit (principal, action == Action::\"exec\", resource);",
    )
    .unwrap();
    std::fs::write(dir.path().join(".hidden.cedar"), "not cedar").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not cedar").unwrap();
    std::fs::create_dir(dir.path().join("sub.cedar")).unwrap();
    let e = PolicyEngine::load(dir.path()).unwrap();
    let ids: Vec<String> = e.snapshot().policies.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids, ["first", "b#1"]);
    assert_eq!(e.snapshot().files.len(), 2);

    let missing = PolicyEngine::load(&dir.path().join("nope")).err().unwrap();
    assert!(matches!(missing, PolicyError::Io { .. }), "{missing}");
    std::fs::remove_file(dir.path().join("schema.cedarschema")).unwrap();
    let e = PolicyEngine::load(dir.path()).err().unwrap();
    assert!(e.to_string().contains("schema.cedarschema"), "{e}");
}

#[test]
fn shipped_policies_validate() {
    let e = PolicyEngine::load(&shipped()).unwrap();
    let snap = e.snapshot();
    assert_eq!(snap.policies.len(), 9);
    assert!(snap.warnings.is_empty(), "{:?}", snap.warnings);
    for p in &snap.policies {
        assert!(p.description.is_some(), "{} has a description", p.id);
        if p.effect == cedar_policy::Effect::Forbid {
            assert!(p.message.is_some(), "forbid {} has a message", p.id);
        }
    }
}

#[test]
fn config_policy_section() {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[5; 32]))
        .public_key()
        .to_openssh()
        .unwrap();
    let base = format!("[[users]]\nname = \"alice\"\nauthorized_keys = [\"{key}\"]\n");
    let c = crate::config::Config::from_toml_str(&base, Path::new("/etc/ssmgate")).unwrap();
    assert_eq!(c.policy.dir, Path::new("/etc/ssmgate/policies"));
    assert_eq!(c.policy.example_reason, DEFAULT_EXAMPLE_REASON);
    let text = format!("[policy]\ndir = \"/srv/pol\"\nexample_reason = \"CHG-1 x\"\n{base}");
    let c = crate::config::Config::from_toml_str(&text, Path::new("/etc/ssmgate")).unwrap();
    assert_eq!(c.policy.dir, Path::new("/srv/pol"));
    assert_eq!(c.policy.example_reason, "CHG-1 x");
    for bad in [
        "dir = \"\"",
        "example_reason = \"\"",
        "example_reason = \"a\\nb\"",
        "other = 1",
    ] {
        let text = format!("[policy]\n{bad}\n{base}");
        let e = crate::config::Config::from_toml_str(&text, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("policy"), "{bad}: {e}");
    }
}

#[test]
fn run_as_annotations_pick_the_os_user_and_must_agree() {
    let e = engine_from(
        "@id(\"all\")\npermit (principal, action, resource);\n\
         @id(\"web-as-app\")\n@run_as(\"app\")\npermit (principal, action == Action::\"shell\", resource) when { resource.hasTag(\"web\") };\n\
         @id(\"web-as-other\")\n@run_as(\"other\")\npermit (principal, action == Action::\"shell\", resource) when { resource.hasTag(\"odd\") };\n",
    );
    let alice = user("alice", &[], &[]);
    let at = |tags: &[(&str, &str)]| {
        decide(
            &e,
            &alice,
            Action::Shell,
            &target("i-0123456789abcdef0", "t", tags),
            ctx(Action::Shell, None, WORKDAY),
        )
    };
    let plain = at(&[]);
    assert!(plain.allowed);
    assert_eq!(plain.run_as, None);
    let web = at(&[("web", "1")]);
    assert!(web.allowed);
    assert_eq!(web.run_as.as_deref(), Some("app"));
    let both = at(&[("web", "1"), ("odd", "1")]);
    assert!(!both.allowed, "two permits naming different users");
    assert!(
        both.message
            .contains("different @run_as users (app, other)"),
        "{}",
        both.message
    );
}

#[test]
fn run_as_is_checked_when_loading() {
    let p = problems(
        &schema_text(),
        &[(
            "a.cedar",
            "@run_as(\"root\")\nforbid (principal, action, resource);\n@run_as(\"Bad User\")\npermit (principal, action, resource);\n",
        )],
    );
    assert!(
        p.iter()
            .any(|m| m.contains("@run_as only applies to permit policies")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("@run_as must be an OS user name") && m.contains("Bad User")),
        "{p:?}"
    );
}

#[test]
fn reason_advice_fits_the_channel() {
    let e = engine_from(
        "permit (principal, action, resource) when { context has reason && context.reason like \"INC-*\" };\n",
    );
    let alice = user("alice", &[], &[]);
    let t = target("i-0123456789abcdef0", "web-1", &[]);
    let shell = decide(
        &e,
        &alice,
        Action::Shell,
        &t,
        ctx(Action::Shell, None, WORKDAY),
    );
    assert!(shell.needs_reason);
    assert!(
        shell.message.ends_with(
            "This request needs a reason: pass it with the command: ssh -o 'SetEnv=SSMGATE_REASON=\"INC-123 why\"' ..., or grant one first: ssh alice@GATEWAY reason 'INC-123 why' --for 1h"
        ),
        "{}",
        shell.message
    );
    let jump = decide(&e, &alice, Action::Ssh, &t, ctx(Action::Ssh, None, WORKDAY));
    assert!(jump.needs_reason);
    assert!(
        jump.message.ends_with(
            "This request needs a reason: grant one first: ssh alice@GATEWAY reason 'INC-123 why' --for 1h (-J, -W, -L and -D carry no SetEnv), or be asked at login: ssh -o PreferredAuthentications=keyboard-interactive,publickey ..."
        ),
        "{}",
        jump.message
    );
    assert!(jump.message.is_ascii(), "{}", jump.message);
}
