//! Entity and context building: groups as parents, tags as entity tags,
//! typed context values, and the shipped schema accepting all of it.

use cedar_policy::{EvalResult, Schema};

use super::*;
use crate::policy::entities::check_schema;

#[test]
fn user_entity_has_groups_as_parents_and_attributes_as_tags() {
    let vocab = Vocabulary::new().unwrap();
    let alice = user("alice", &["sre", "oncall"], &[("team", "platform")]);
    let auth = AuthMethod::Certificate {
        fingerprint: "SHA256:key".into(),
        key_id: "alice@laptop".into(),
        serial: 7,
        ca_fingerprint: "SHA256:ca".into(),
        extensions: vec!["permit-pty".into()],
        critical_options: vec!["source-address".into()],
    };
    let entities = vocab
        .principal(&Principal {
            user: &alice,
            auth: &auth,
        })
        .unwrap();
    assert_eq!(entities.len(), 3, "user + one entity per group");
    let user_entity = entities[0].clone();
    assert_eq!(user_entity.uid(), vocab.user_uid("alice"));
    let s = |v: &str| Some(EvalResult::String(v.into()));
    assert_eq!(user_entity.tag("team").map(Result::unwrap), s("platform"));
    assert!(user_entity.attr("team").is_none(), "attributes are tags");
    assert_eq!(user_entity.attr("name").map(Result::unwrap), s("alice"));
    assert_eq!(
        user_entity.attr("auth_method").map(Result::unwrap),
        s("certificate")
    );
    assert_eq!(
        user_entity.attr("key_id").map(Result::unwrap),
        s("alice@laptop")
    );
    assert_eq!(
        user_entity.attr("ca_fingerprint").map(Result::unwrap),
        s("SHA256:ca")
    );
    let (_, _, parents) = user_entity.into_inner();
    let want: std::collections::HashSet<_> =
        [vocab.group_uid("sre"), vocab.group_uid("oncall")].into();
    assert_eq!(parents, want);
    let group_uids: Vec<_> = entities[1..].iter().map(|e| e.uid()).collect();
    assert_eq!(
        group_uids,
        [vocab.group_uid("sre"), vocab.group_uid("oncall")]
    );

    let by_key = vocab
        .principal(&Principal {
            user: &alice,
            auth: &key(),
        })
        .unwrap();
    assert_eq!(
        by_key[0].attr("auth_method").map(Result::unwrap),
        s("publickey")
    );
    assert!(by_key[0].attr("key_id").is_none());
}

#[test]
fn target_entity_has_aws_tags_as_entity_tags() {
    let vocab = Vocabulary::new().unwrap();
    let mut t = target(
        "i-0123456789abcdef0",
        "web-1",
        &[("env", "prod"), ("Name", "web-1")],
    );
    t.computer_name = Some("ip-10-0-0-1".into());
    let e = vocab.target(&t).unwrap();
    let s = |v: &str| Some(EvalResult::String(v.into()));
    assert_eq!(e.uid(), vocab.target_uid("i-0123456789abcdef0"));
    assert_eq!(e.tag("env").map(Result::unwrap), s("prod"));
    assert_eq!(e.tag("Name").map(Result::unwrap), s("web-1"));
    assert!(e.tag("role").is_none());
    assert!(e.attr("env").is_none(), "tags are not attributes");
    for (attr, value) in [
        ("id", "i-0123456789abcdef0"),
        ("name", "web-1"),
        ("computer_name", "ip-10-0-0-1"),
        ("platform", "Linux"),
        ("resource_type", "EC2Instance"),
        ("agent_version", "3.3.987.0"),
        ("ping_status", "Online"),
    ] {
        assert_eq!(e.attr(attr).map(Result::unwrap), s(value), "{attr}");
    }
    // Without a name, the id is the name.
    t.name = None;
    t.computer_name = None;
    let e = vocab.target(&t).unwrap();
    assert_eq!(e.attr("name").map(Result::unwrap), s("i-0123456789abcdef0"));
    assert!(e.attr("computer_name").is_none());
}

#[test]
fn context_values_have_the_schema_types() {
    let vocab = Vocabulary::new().unwrap();
    let mut c = ctx(
        Action::PortForward,
        Some("INC-1 x"),
        "2026-11-03T14:05:09.123Z",
    );
    c.parameters.insert("portNumber".into(), "5432".into());
    c.parameters.insert("host".into(), "db.internal".into());
    c.parameters
        .insert("localPortNumber".into(), "15432".into());
    let context = vocab.context(&c).unwrap();
    let get = |k: &str| context.get(k).unwrap();
    assert_eq!(get("hour"), EvalResult::Long(14));
    assert_eq!(get("weekday"), EvalResult::String("Tue".into()));
    assert_eq!(get("recording"), EvalResult::String("metadata".into()));
    assert_eq!(get("reason"), EvalResult::String("INC-1 x".into()));
    let EvalResult::Record(params) = get("parameters") else {
        panic!("parameters is a record")
    };
    assert_eq!(params.get("portNumber"), Some(&EvalResult::Long(5432)));
    assert_eq!(
        params.get("host"),
        Some(&EvalResult::String("db.internal".into()))
    );
    assert!(
        params.get("localPortNumber").is_none(),
        "unknown parameters are left out"
    );
    assert!(matches!(get("source_ip"), EvalResult::ExtensionValue(_)));
    assert!(matches!(get("time"), EvalResult::ExtensionValue(_)));

    // A non-numeric port and a blank reason are left out.
    c.parameters.insert("portNumber".into(), "postgres".into());
    c.reason = Some("   ".into());
    let context = vocab.context(&c).unwrap();
    assert!(context.get("reason").is_none());
    let EvalResult::Record(params) = context.get("parameters").unwrap() else {
        panic!("record")
    };
    assert!(params.get("portNumber").is_none());
}

#[test]
fn the_shipped_schema_fits_what_is_built() {
    let (schema, _) = Schema::from_cedarschema_str(&schema_text()).unwrap();
    check_schema(&Vocabulary::new().unwrap(), &schema).unwrap();
}

#[test]
fn policies_see_every_attribute_with_its_type() {
    let engine = engine_from(
        r#"
@id("everything")
permit (principal in Group::"sre", action == Action::"port_forward", resource)
when {
  principal.name == "alice" &&
  principal.auth_method == "certificate" && principal has key_id && principal.key_id == "alice@laptop" &&
  principal.hasTag("team") && principal.getTag("team") == "platform" &&
  resource.id == "i-0123456789abcdef0" && resource.name == "db-1" &&
  resource.platform == "Linux" && resource.ping_status == "Online" &&
  resource.hasTag("role") && resource.getTag("role") == "db" &&
  context.document == "AWS-StartPortForwardingSession" &&
  context.parameters has portNumber && context.parameters.portNumber >= 5000 &&
  context.source_ip.isInRange(ip("10.0.0.0/8")) &&
  context.time > datetime("2026-11-03") &&
  context.time.toTime() >= duration("14h5m") &&
  context.time.toDate() == datetime("2026-11-03") &&
  context.hour == 14 && context.weekday == "Tue" &&
  context.recording == "metadata" &&
  context has reason && context.reason like "INC-*"
};
"#,
    );
    let alice = user("alice", &["sre"], &[("team", "platform")]);
    let cert = AuthMethod::Certificate {
        fingerprint: "SHA256:k".into(),
        key_id: "alice@laptop".into(),
        serial: 1,
        ca_fingerprint: "SHA256:ca".into(),
        extensions: vec!["permit-pty".into()],
        critical_options: vec!["source-address".into()],
    };
    let db = target("i-0123456789abcdef0", "db-1", &[("role", "db")]);
    let mut c = ctx(
        Action::PortForward,
        Some("INC-42 lag"),
        "2026-11-03T14:05:09Z",
    );
    c.parameters.insert("portNumber".into(), "5432".into());
    let req = |c: ContextInput| AuthzRequest {
        principal: Principal {
            user: &alice,
            auth: &cert,
        },
        action: Action::PortForward,
        target: &db,
        context: c,
    };
    let d = engine.authorize(&req(c.clone()));
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.determining_policies, ["everything"]);
    assert!(d.errors.is_empty());
    // Any one fact changed: denied.
    let mut late = c.clone();
    late.now = parse_rfc3339("2026-11-03T13:00:00Z").unwrap();
    assert!(!engine.authorize(&req(late)).allowed);
    let mut outside = c.clone();
    outside.source_ip = "192.168.1.1".parse().unwrap();
    assert!(!engine.authorize(&req(outside)).allowed);
    let mut low = c;
    low.parameters.insert("portNumber".into(), "80".into());
    assert!(!engine.authorize(&req(low)).allowed);
}
