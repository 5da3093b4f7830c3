//! Turning a request into what Cedar evaluates: the `User` entity (with its
//! `Group` parents and config attributes as tags), the `Target` entity (AWS
//! tags as entity tags), the action uid and the context record, exactly as
//! `policies/schema.cedarschema` declares them. [`check_schema`] verifies at
//! load time that a schema still describes what is built here, so requests
//! are not re-validated on the hot path.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};
use chrono::Timelike;

use super::time::{cedar_datetime, utc, weekday_name};
use super::{Action, ContextInput, Principal};
use crate::inventory::Target;
use crate::request::AuthMethod;

/// Why an entity, context or request could not be built for Cedar. Cedar's
/// own error is kept as text: its error types differ per constructor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    /// A type name of the model did not parse (cannot happen for these
    /// literals; reported rather than unwrapped).
    #[error("type name {name}: {message}")]
    TypeName { name: &'static str, message: String },
    /// The user's entity.
    #[error("user {user}: {message}")]
    User { user: String, message: String },
    /// The target's entity.
    #[error("target {id}: {message}")]
    Target { id: String, message: String },
    /// The context record.
    #[error("context: {0}")]
    Context(String),
    /// The request.
    #[error("request: {0}")]
    Request(String),
    /// The entity store.
    #[error("entities: {0}")]
    Entities(String),
}

/// The type names and action uids of the model, parsed once.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    user: EntityTypeName,
    group: EntityTypeName,
    target: EntityTypeName,
    actions: [EntityUid; 4],
}

impl Vocabulary {
    /// Parses the names (cannot fail for these literals; errors are
    /// reported rather than unwrapped).
    pub fn new() -> Result<Vocabulary, EntityError> {
        let name = |n: &'static str| {
            EntityTypeName::from_str(n).map_err(|e| EntityError::TypeName {
                name: n,
                message: e.to_string(),
            })
        };
        let action_type = name("Action")?;
        let action = |a: Action| {
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str()))
        };
        Ok(Vocabulary {
            user: name("User")?,
            group: name("Group")?,
            target: name("Target")?,
            actions: Action::ALL.map(action),
        })
    }

    /// `Action::"shell"`, ….
    pub fn action(&self, action: Action) -> &EntityUid {
        &self.actions[action.index()]
    }

    /// `User::"<name>"`.
    pub fn user_uid(&self, name: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.user.clone(), EntityId::new(name))
    }

    /// `Group::"<name>"`.
    pub fn group_uid(&self, name: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.group.clone(), EntityId::new(name))
    }

    /// `Target::"<instance id>"`.
    pub fn target_uid(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.target.clone(), EntityId::new(id))
    }

    /// The user entity and one entity per group it belongs to.
    pub fn principal(&self, p: &Principal<'_>) -> Result<Vec<Entity>, EntityError> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::new();
        attrs.insert("name".into(), s(&p.user.name));
        match p.auth {
            AuthMethod::PublicKey { fingerprint } => {
                attrs.insert("auth_method".into(), s("publickey"));
                attrs.insert("key_fingerprint".into(), s(fingerprint));
            }
            AuthMethod::Certificate {
                fingerprint,
                key_id,
                ca_fingerprint,
                extensions,
                critical_options,
                ..
            } => {
                attrs.insert("auth_method".into(), s("certificate"));
                attrs.insert("key_fingerprint".into(), s(fingerprint));
                attrs.insert("key_id".into(), s(key_id));
                attrs.insert("ca_fingerprint".into(), s(ca_fingerprint));
                let set =
                    |names: &[String]| RestrictedExpression::new_set(names.iter().map(|n| s(n)));
                attrs.insert("cert_extensions".into(), set(extensions));
                attrs.insert("cert_critical_options".into(), set(critical_options));
            }
        }
        let groups: Vec<EntityUid> = p.user.groups.iter().map(|g| self.group_uid(g)).collect();
        let tags = p
            .user
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), s(v)))
            .collect::<Vec<_>>();
        let user = Entity::new_with_tags(
            self.user_uid(&p.user.name),
            attrs,
            groups.iter().cloned(),
            tags,
        )
        .map_err(|e| EntityError::User {
            user: p.user.name.clone(),
            message: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(groups.len() + 1);
        out.push(user);
        out.extend(
            groups
                .into_iter()
                .map(|g| Entity::new_no_attrs(g, Default::default())),
        );
        Ok(out)
    }

    /// The target entity: attributes and its tags as entity tags.
    pub fn target(&self, t: &Target) -> Result<Entity, EntityError> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut attrs: Vec<(String, RestrictedExpression)> = vec![
            ("id".into(), s(&t.id)),
            ("name".into(), s(t.display_name())),
            ("platform".into(), s(&t.platform_type)),
            ("platform_name".into(), s(&t.platform_name)),
            ("platform_version".into(), s(&t.platform_version)),
            ("resource_type".into(), s(&t.resource_type)),
            ("agent_version".into(), s(&t.agent_version)),
            ("ping_status".into(), s(&t.ping_status)),
            ("account".into(), s(&t.account)),
            ("region".into(), s(&t.region)),
        ];
        if let Some(c) = &t.computer_name {
            attrs.push(("computer_name".into(), s(c)));
        }
        let tags = t.tags.iter().map(|(k, v)| (k.clone(), s(v)));
        Entity::new_with_tags(self.target_uid(&t.id), attrs, [], tags).map_err(|e| {
            EntityError::Target {
                id: t.id.clone(),
                message: e.to_string(),
            }
        })
    }

    /// The context record.
    pub fn context(&self, c: &ContextInput) -> Result<Context, EntityError> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let mut params = Vec::new();
        if let Some(port) = c.parameters.get("portNumber")
            && let Ok(port) = port.trim().parse::<i64>()
        {
            params.push((
                "portNumber".to_owned(),
                RestrictedExpression::new_long(port),
            ));
        }
        for key in ["command", "host", "subsystem"] {
            if let Some(v) = c.parameters.get(key) {
                params.push((key.to_owned(), s(v)));
            }
        }
        let now = utc(c.now);
        let mut pairs = vec![
            ("document".to_owned(), s(&c.document)),
            (
                "parameters".to_owned(),
                RestrictedExpression::new_record(params)
                    .map_err(|e| EntityError::Context(e.to_string()))?,
            ),
            (
                "source_ip".to_owned(),
                RestrictedExpression::new_ip(c.source_ip.to_string()),
            ),
            (
                "time".to_owned(),
                RestrictedExpression::new_datetime(cedar_datetime(&now)),
            ),
            (
                "hour".to_owned(),
                RestrictedExpression::new_long(i64::from(now.hour())),
            ),
            ("weekday".to_owned(), s(&weekday_name(&now))),
            ("recording".to_owned(), s(c.recording.as_str())),
            ("backend".to_owned(), s(c.backend)),
            ("reason_source".to_owned(), s(c.reason_source)),
        ];
        if let Some(user) = &c.os_user {
            pairs.push(("os_user".to_owned(), s(user)));
        }
        if let Some(reason) = c.given_reason() {
            pairs.push(("reason".to_owned(), s(reason)));
        }
        Context::from_pairs(pairs).map_err(|e| EntityError::Context(e.to_string()))
    }

    /// A request over prepared parts (no schema check: see the module doc).
    pub fn request(
        &self,
        user: &str,
        action: Action,
        target_id: &str,
        context: Context,
    ) -> Result<Request, EntityError> {
        Request::new(
            self.user_uid(user),
            self.action(action).clone(),
            self.target_uid(target_id),
            context,
            None,
        )
        .map_err(|e| EntityError::Request(e.to_string()))
    }
}

/// Checks that `schema` accepts everything this module builds: users
/// authenticated by key and by certificate, with groups and attributes; a
/// target with and without optional attributes and with tags; contexts with
/// every optional field and with none, for every action.
pub fn check_schema(vocab: &Vocabulary, schema: &Schema) -> Result<(), String> {
    use crate::config::UserConfig;
    use std::time::{Duration, UNIX_EPOCH};

    // Requests carry no action entities, so action groups would never
    // match: the schema must declare exactly the four actions.
    let known: Vec<&EntityUid> = vocab.actions.iter().collect();
    let mut extra: Vec<String> = schema
        .actions()
        .filter(|a| !known.contains(a))
        .map(|a| a.to_string())
        .collect();
    if schema.action_groups().next().is_some() || !extra.is_empty() {
        extra.sort();
        return Err(format!(
            "the schema must declare exactly the actions shell, exec, port_forward and ssh, without action groups (also declares {})",
            extra.join(", ")
        ));
    }

    let user = UserConfig {
        name: "schema-check".into(),
        groups: vec!["g".into()],
        attributes: [("team".to_owned(), "t".to_owned())].into(),
        authorized_keys: Vec::new(),
        authorized_keys_file: None,
        run_as: None,
    };
    let key = AuthMethod::PublicKey {
        fingerprint: "SHA256:x".into(),
    };
    let cert = AuthMethod::Certificate {
        fingerprint: "SHA256:x".into(),
        key_id: "id".into(),
        serial: 1,
        ca_fingerprint: "SHA256:ca".into(),
        extensions: vec!["permit-pty".into()],
        critical_options: vec!["source-address".into()],
    };
    let mut target = Target {
        id: "i-0123456789abcdef0".into(),
        account: "default".into(),
        region: "us-east-1".into(),
        name: Some("n".into()),
        computer_name: Some("c".into()),
        ping_status: "Online".into(),
        platform_type: "Linux".into(),
        platform_name: "Amazon Linux".into(),
        platform_version: "2023".into(),
        resource_type: "EC2Instance".into(),
        agent_version: "3.3.0.0".into(),
        ip_address: None,
        last_ping: None,
        tags: [("env".to_owned(), "prod".to_owned())].into(),
    };
    let full = ContextInput {
        document: "SSM-SessionManagerRunShell".into(),
        parameters: [
            ("portNumber".to_owned(), "22".to_owned()),
            ("command".to_owned(), "id".to_owned()),
            ("host".to_owned(), "h".to_owned()),
            ("subsystem".to_owned(), "sftp".to_owned()),
        ]
        .into(),
        reason: Some("r".into()),
        source_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        recording: super::Recording::Full,
        backend: "sshd",
        os_user: Some("ec2-user".into()),
        reason_source: "grant",
    };
    let bare = ContextInput {
        parameters: Default::default(),
        reason: None,
        os_user: None,
        source_ip: std::net::Ipv6Addr::LOCALHOST.into(),
        ..full.clone()
    };
    for (auth, ctx) in [(&key, &full), (&cert, &bare)] {
        let principal = Principal { user: &user, auth };
        let mut all = vocab.principal(&principal).map_err(|e| e.to_string())?;
        all.push(vocab.target(&target).map_err(|e| e.to_string())?);
        Entities::from_entities(all, Some(schema))
            .map_err(|e| format!("the schema does not fit the entities ssmgate builds: {e}"))?;
        for action in Action::ALL {
            Request::new(
                vocab.user_uid(&user.name),
                vocab.action(action).clone(),
                vocab.target_uid(&target.id),
                vocab.context(ctx).map_err(|e| e.to_string())?,
                Some(schema),
            )
            .map_err(|e| {
                format!("the schema does not fit the {action} requests ssmgate makes: {e}")
            })?;
        }
        target.computer_name = None;
    }
    Ok(())
}
