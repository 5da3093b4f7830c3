//! The shipped example policies, case by case; the shipped test file; the
//! picker listing; and the scope index giving the same decisions as Cedar
//! over the whole set.

use cedar_policy::{Authorizer, Entities, PolicySet, Request, Schema};

use super::*;
use crate::policy::testfile::TestFile;

fn shipped_engine() -> PolicyEngine {
    PolicyEngine::load(&shipped()).unwrap()
}

fn prod() -> Target {
    target(
        "i-0a1b2c3d4e5f60011",
        "web-prod-1",
        &[("env", "prod"), ("role", "web")],
    )
}

fn dev() -> Target {
    target(
        "i-0a1b2c3d4e5f60001",
        "web-1",
        &[("env", "dev"), ("role", "web")],
    )
}

#[test]
fn the_shipped_test_file_passes() {
    let engine = shipped_engine();
    let file = TestFile::load(&shipped().join("tests.toml")).unwrap();
    let results = file.run(&engine);
    let table = crate::policy::testfile::render(&results, &engine);
    assert!(results.iter().all(|r| r.mismatches.is_empty()), "{table}");
    // Every example policy decides at least one case.
    assert!(!table.contains("decided no case"), "{table}");
}

#[test]
fn sre_shell_and_prod_ticket() {
    let e = shipped_engine();
    let alice = user("alice", &["sre"], &[]);
    let d = decide(
        &e,
        &alice,
        Action::Shell,
        &dev(),
        ctx(Action::Shell, None, WORKDAY),
    );
    assert!(d.allowed);
    assert_eq!(d.determining_policies, ["sre-shell"]);
    assert_eq!(d.message, "permitted by sre-shell");

    let d = decide(
        &e,
        &alice,
        Action::Shell,
        &prod(),
        ctx(Action::Shell, None, WORKDAY),
    );
    assert!(!d.allowed && d.needs_reason, "{d:?}");
    assert_eq!(d.determining_policies, ["prod-needs-ticket"]);
    assert!(
        d.message
            .starts_with("production targets need a reason that starts with a ticket number"),
        "{}",
        d.message
    );
    assert!(d.message.contains("grant one first"), "{}", d.message);
    assert!(
        d.message.contains("ssh -o 'SetEnv=SSMGATE_REASON="),
        "{}",
        d.message
    );

    let with = |r| ctx(Action::Shell, Some(r), WORKDAY);
    assert!(decide(&e, &alice, Action::Shell, &prod(), with("INC-1 db down")).allowed);
    assert!(decide(&e, &alice, Action::Shell, &prod(), with("CHG-2 upgrade")).allowed);
    let d = decide(&e, &alice, Action::Shell, &prod(), with("because"));
    assert!(
        !d.allowed && !d.needs_reason,
        "a bad reason is not a missing one"
    );
}

#[test]
fn developers_only_on_non_prod() {
    let e = shipped_engine();
    let bob = user("bob", &["developers"], &[]);
    let d = decide(
        &e,
        &bob,
        Action::Shell,
        &dev(),
        ctx(Action::Shell, None, WORKDAY),
    );
    assert_eq!(d.determining_policies, ["developers-nonprod-shell"]);
    let d = decide(
        &e,
        &bob,
        Action::Shell,
        &prod(),
        ctx(Action::Shell, Some("INC-1 x"), WORKDAY),
    );
    assert!(!d.allowed && !d.needs_reason);
    assert!(d.determining_policies.is_empty());
    assert_eq!(
        d.message,
        "no policy permits bob to open a shell on i-0a1b2c3d4e5f60011 (web-prod-1)"
    );
    let untagged = target("i-0a1b2c3d4e5f69999", "x", &[]);
    assert!(
        !decide(
            &e,
            &bob,
            Action::Shell,
            &untagged,
            ctx(Action::Shell, None, WORKDAY)
        )
        .allowed
    );
    assert!(
        !decide(
            &e,
            &bob,
            Action::Exec,
            &dev(),
            ctx(Action::Exec, None, WORKDAY)
        )
        .allowed
    );
}

#[test]
fn data_team_port_5432_on_db_only() {
    let e = shipped_engine();
    let carol = user("carol", &["data"], &[]);
    let db = target(
        "i-0a1b2c3d4e5f60012",
        "db-staging-1",
        &[("env", "staging"), ("role", "db")],
    );
    let port = |p: &str| {
        let mut c = ctx(Action::PortForward, None, WORKDAY);
        c.parameters.insert("portNumber".into(), p.into());
        c
    };
    let d = decide(&e, &carol, Action::PortForward, &db, port("5432"));
    assert_eq!(d.determining_policies, ["data-team-postgres"]);
    let d = decide(&e, &carol, Action::PortForward, &db, port("6379"));
    assert!(!d.allowed);
    assert_eq!(
        d.message,
        "no policy permits carol to forward to port 6379 of i-0a1b2c3d4e5f60012 (db-staging-1)"
    );
    assert!(!decide(&e, &carol, Action::PortForward, &dev(), port("5432")).allowed);
    assert!(
        !decide(
            &e,
            &carol,
            Action::Shell,
            &db,
            ctx(Action::Shell, None, WORKDAY)
        )
        .allowed
    );
}

#[test]
fn no_proxyjump_to_recorded_targets() {
    let e = shipped_engine();
    let alice = user("alice", &["sre"], &[]);
    let vault = target(
        "i-0a1b2c3d4e5f60014",
        "vault-1",
        &[("recording", "required")],
    );
    let d = decide(
        &e,
        &alice,
        Action::Ssh,
        &vault,
        ctx(Action::Ssh, None, WORKDAY),
    );
    assert!(!d.allowed && !d.needs_reason);
    assert_eq!(d.determining_policies, ["recorded-targets-no-proxyjump"]);
    assert!(d.message.contains("requires full session recording"));
    assert!(
        decide(
            &e,
            &alice,
            Action::Ssh,
            &dev(),
            ctx(Action::Ssh, None, WORKDAY)
        )
        .allowed
    );
    assert!(
        decide(
            &e,
            &alice,
            Action::Shell,
            &vault,
            ctx(Action::Shell, None, WORKDAY)
        )
        .allowed
    );
}

#[test]
fn documents_outside_the_allow_list() {
    let e = shipped_engine();
    let alice = user("alice", &["sre", "oncall"], &[]);
    let mut c = ctx(Action::Shell, None, WORKDAY);
    c.document = "AWS-RunShellScript".into();
    let d = decide(&e, &alice, Action::Shell, &dev(), c);
    assert!(!d.allowed);
    assert_eq!(d.determining_policies, ["document-allow-list"]);
    assert_eq!(d.message, "this SSM document is not on the allow-list");
    let mut c = ctx(Action::Exec, None, WORKDAY);
    c.document = "AWS-StartInteractiveCommand".into();
    assert!(decide(&e, &alice, Action::Exec, &dev(), c).allowed);
}

#[test]
fn after_hours_prod_needs_oncall() {
    let e = shipped_engine();
    let alice = user("alice", &["sre"], &[]);
    let olivia = user("olivia", &["sre", "oncall"], &[]);
    let at = |t| ctx(Action::Shell, Some("INC-7 outage"), t);
    for late in [
        "2026-11-03T18:00:00Z",
        "2026-11-03T23:59:59Z",
        "2026-11-04T00:00:00Z",
        "2026-11-04T07:59:59Z",
        "2026-11-07T12:00:00Z", // Saturday
        "2026-11-08T12:00:00Z", // Sunday
    ] {
        let d = decide(&e, &alice, Action::Shell, &prod(), at(late));
        assert!(!d.allowed, "{late}");
        assert_eq!(
            d.determining_policies,
            ["prod-after-hours-oncall"],
            "{late}"
        );
        assert!(
            decide(&e, &olivia, Action::Shell, &prod(), at(late)).allowed,
            "{late}"
        );
        assert!(
            decide(&e, &alice, Action::Shell, &dev(), at(late)).allowed,
            "{late}"
        );
    }
    for day in ["2026-11-03T08:00:00Z", "2026-11-06T17:59:59Z"] {
        assert!(
            decide(&e, &alice, Action::Shell, &prod(), at(day)).allowed,
            "{day}"
        );
    }
    // Both forbids decide: both messages, and no reason would help.
    let d = decide(
        &e,
        &alice,
        Action::Shell,
        &prod(),
        ctx(Action::Shell, None, "2026-11-03T22:00:00Z"),
    );
    assert!(!d.needs_reason);
    assert_eq!(
        d.determining_policies,
        ["prod-after-hours-oncall", "prod-needs-ticket"]
    );
    assert!(
        d.message.contains("oncall") && d.message.contains("ticket"),
        "{}",
        d.message
    );
}

#[test]
fn picker_lists_what_may_be_opened() {
    let e = shipped_engine();
    let staging = target(
        "i-0a1b2c3d4e5f60013",
        "web-staging-1",
        &[("env", "staging")],
    );
    let all = [
        dev(),
        prod(),
        staging,
        target("mi-0a1b2c3d4e5f60003", "edge-1", &[]),
    ];
    let ids = |v: Vec<&Target>| {
        v.into_iter()
            .map(|t| t.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    let alice = user("alice", &["sre"], &[]);
    let bob = user("bob", &["developers"], &[]);
    let k = key();
    let p = |u| Principal { user: u, auth: &k };
    let at = |reason, t| ctx(Action::Shell, reason, t);
    // No reason yet: prod is listed, because a reason would open it.
    assert_eq!(
        ids(e.permitted(&p(&alice), Action::Shell, &all, &at(None, WORKDAY))),
        ["web-1", "web-prod-1", "web-staging-1", "edge-1"]
    );
    // A reason that is not a ticket: prod is not listed.
    assert_eq!(
        ids(e.permitted(&p(&alice), Action::Shell, &all, &at(Some("hi"), WORKDAY))),
        ["web-1", "web-staging-1", "edge-1"]
    );
    // After hours without oncall: prod is not listed.
    assert_eq!(
        ids(e.permitted(
            &p(&alice),
            Action::Shell,
            &all,
            &at(None, "2026-11-03T22:00:00Z")
        )),
        ["web-1", "web-staging-1", "edge-1"]
    );
    assert_eq!(
        ids(e.permitted(&p(&bob), Action::Shell, &all, &at(None, WORKDAY))),
        ["web-1", "web-staging-1"]
    );
    assert!(
        e.permitted(
            &p(&bob),
            Action::Exec,
            &all,
            &ctx(Action::Exec, None, WORKDAY)
        )
        .is_empty()
    );
    // Listing agrees with one decision per target.
    for u in [&alice, &bob] {
        let c = at(Some("INC-3 x"), WORKDAY);
        let listed = ids(e.permitted(&p(u), Action::Shell, &all, &c));
        let decided: Vec<String> = all
            .iter()
            .filter(|t| decide(&e, u, Action::Shell, t, c.clone()).allowed)
            .map(|t| t.name.clone().unwrap())
            .collect();
        assert_eq!(listed, decided);
    }
}

/// Policies with every kind of principal scope: the engine (which hands
/// Cedar only the policies whose scope matches) must agree with Cedar
/// evaluating the whole set.
#[test]
fn scope_index_agrees_with_the_whole_set() {
    let policies = r#"
@id("any") permit (principal, action == Action::"exec", resource) when { resource.hasTag("open") };
@id("eq") permit (principal == User::"alice", action, resource);
@id("in-user") permit (principal in User::"bob", action == Action::"shell", resource);
@id("in-group") permit (principal in Group::"g1", action in [Action::"shell", Action::"ssh"], resource);
@id("is") permit (principal is User, action == Action::"port_forward", resource) when { context.parameters has portNumber && context.parameters.portNumber == 80 };
@id("is-in") permit (principal is User in Group::"g2", action, resource) when { resource.hasTag("g2") };
@id("f-group") forbid (principal in Group::"g3", action, resource) when { resource.hasTag("locked") };
@id("f-eq") forbid (principal == User::"carol", action == Action::"ssh", resource);
@id("f-err") forbid (principal in Group::"g4", action, resource) when { context.parameters has portNumber && context.parameters.portNumber * 9223372036854775807 > 0 };
"#;
    let engine = engine_from(policies);
    let (schema, _) = Schema::from_cedarschema_str(&schema_text()).unwrap();
    let whole = engine.snapshot().set.clone();
    let vocab = Vocabulary::new().unwrap();
    let users = [
        user("alice", &[], &[]),
        user("bob", &["g1"], &[]),
        user("carol", &["g1", "g2", "g3"], &[]),
        user("dave", &["g4", "g2"], &[]),
        user("erin", &[], &[]),
    ];
    let targets = [
        target("i-00000000000000001", "a", &[]),
        target("i-00000000000000002", "b", &[("open", "1"), ("g2", "1")]),
        target(
            "i-00000000000000003",
            "c",
            &[("locked", "1"), ("missing", "x")],
        ),
    ];
    let mut checked = 0;
    for u in &users {
        for t in &targets {
            for action in Action::ALL {
                for port in ["80", "443"] {
                    let mut c = ctx(action, None, WORKDAY);
                    c.parameters.insert("portNumber".into(), port.into());
                    let d = engine.decide(&AuthzRequest {
                        principal: Principal {
                            user: u,
                            auth: &key(),
                        },
                        action,
                        target: t,
                        context: c.clone(),
                    });
                    let mut all = vocab
                        .principal(&Principal {
                            user: u,
                            auth: &key(),
                        })
                        .unwrap();
                    all.push(vocab.target(t).unwrap());
                    let entities = Entities::from_entities(all, Some(&schema)).unwrap();
                    let request = Request::new(
                        vocab.user_uid(&u.name),
                        vocab.action(action).clone(),
                        vocab.target_uid(&t.id),
                        vocab.context(&c).unwrap(),
                        Some(&schema),
                    )
                    .unwrap();
                    let r = Authorizer::new().is_authorized(&request, &whole, &entities);
                    let mut reasons: Vec<String> =
                        r.diagnostics().reason().map(|p| p.to_string()).collect();
                    reasons.sort();
                    let mut ours = d.determining_policies.clone();
                    ours.sort();
                    let ctx_label = format!("{} {action} {} {port}", u.name, t.id);
                    assert_eq!(
                        d.allowed,
                        r.decision() == cedar_policy::Decision::Allow,
                        "{ctx_label}"
                    );
                    assert_eq!(ours, reasons, "{ctx_label}");
                    assert_eq!(
                        d.errors.len(),
                        r.diagnostics().errors().count(),
                        "{ctx_label}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 5 * 3 * 4 * 2);
    let _: &PolicySet = &whole;
}
