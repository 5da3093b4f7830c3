//! STS on the simulator's endpoint through the real `aws-sdk-sts` client:
//! GetCallerIdentity for plain keys and for assumed roles, AssumeRole with
//! a source identity and session tags whose credentials then start an SSM
//! session (attributed to the role session), role chaining, AWS's
//! refusals with AWS's codes, expired and mismatched credentials, and
//! injected throttling.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::types::SessionState;
use aws_sdk_sts::Client;
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
use aws_sdk_sts::types::Tag;

use super::{AKID, AKID_ARN, Sim, WEB, default_sim, service_error};

const ROLE: &str = "arn:aws:iam::123456789012:role/ops/SessionOperator";
const ASSUMED: &str = "arn:aws:sts::123456789012:assumed-role/SessionOperator/alice";

fn sts(sim: &Sim, creds: Credentials) -> Client {
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(format!("http://{}", sim.addr))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

pub(super) fn plain() -> Credentials {
    Credentials::new(AKID, "secret", None, None, "test")
}

fn ssm(sim: &Sim, creds: Credentials) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(format!("http://{}", sim.addr))
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// The credentials of an `AssumeRole` answer, for the SDKs.
pub(super) fn issued(out: &AssumeRoleOutput) -> Credentials {
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    )
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

/// Code, message and HTTP status of a refused `AssumeRole`.
pub(super) fn refusal(err: &SdkError<AssumeRoleError>) -> (String, String, u16) {
    let e = err
        .as_service_error()
        .unwrap_or_else(|| panic!("not a service error: {err:?}"));
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
        err.raw_response().map_or(0, |r| r.status().as_u16()),
    )
}

#[tokio::test]
async fn get_caller_identity_for_plain_keys() {
    let sim = default_sim().await;
    let out = sts(&sim, plain())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(out.account(), Some("123456789012"));
    assert_eq!(out.arn(), Some(AKID_ARN));
    let user_id = out.user_id().unwrap();
    assert!(
        user_id.starts_with("AIDA") && user_id.len() == 21,
        "{user_id}"
    );
    // The same key is the same user.
    let again = sts(&sim, plain())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(again.user_id(), Some(user_id));
    assert_eq!(sim.registry.api_calls("GetCallerIdentity"), 2);
}

#[tokio::test]
async fn assumed_role_sessions_are_attributed_to_the_role_session() {
    let sim = default_sim().await;
    let before = SystemTime::now();
    let out = sts(&sim, plain())
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice")
        .source_identity("alice@example.com")
        .tags(tag("SSMSessionRunAs", "ops-user"))
        .tags(tag("team", "infra"))
        .transitive_tag_keys("team")
        .external_id("ext-123")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    assert!(
        c.access_key_id().starts_with("ASIA") && c.access_key_id().len() == 20,
        "{}",
        c.access_key_id()
    );
    assert!(!c.secret_access_key().is_empty() && !c.session_token().is_empty());
    let expires = UNIX_EPOCH + Duration::from_secs(c.expiration().secs().try_into().unwrap());
    let lifetime = expires.duration_since(before).unwrap();
    assert!(
        (3590..=3610).contains(&lifetime.as_secs()),
        "{lifetime:?}: the default is one hour"
    );
    let user = out.assumed_role_user().unwrap();
    assert_eq!(user.arn(), ASSUMED);
    assert!(
        user.assumed_role_id().starts_with("AROA") && user.assumed_role_id().ends_with(":alice"),
        "{}",
        user.assumed_role_id()
    );
    assert_eq!(out.source_identity(), Some("alice@example.com"));
    let size = usize::try_from(out.session_token_size().unwrap()).unwrap();
    assert_eq!(size, out.credentials().unwrap().session_token().len());
    let utilization = out.session_token_utilization().unwrap();
    assert!((1..=100).contains(&utilization), "{utilization}");

    let creds = issued(&out);
    let me = sts(&sim, creds.clone())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(ASSUMED));
    assert_eq!(me.user_id(), Some(user.assumed_role_id()));
    assert_eq!(me.account(), Some("123456789012"));

    // An SSM session started with those credentials belongs to the role
    // session: Owner is its ARN, the id starts with the session name.
    let client = ssm(&sim, creds.clone());
    let started = client.start_session().target(WEB).send().await.unwrap();
    let id = started.session_id().unwrap();
    assert!(id.starts_with("alice-"), "{id}");
    let listed = client
        .describe_sessions()
        .state(SessionState::Active)
        .send()
        .await
        .unwrap();
    let session = listed
        .sessions()
        .iter()
        .find(|s| s.session_id() == Some(id))
        .unwrap();
    assert_eq!(session.owner(), Some(ASSUMED));
    let entry = sim.registry.get(id).unwrap();
    assert_eq!(entry.owner, ASSUMED);
    assert_eq!(entry.caller.source_identity(), Some("alice@example.com"));
    assert_eq!(
        entry.caller.session_tag("SSMSessionRunAs"),
        Some("ops-user")
    );
    assert_eq!(entry.caller.session_tag("team"), Some("infra"));
    let role = entry.caller.assumed.as_ref().unwrap();
    assert_eq!(role.role_arn, ROLE);
    assert_eq!(role.session_name, "alice");

    // The tagging API accepts the same credentials.
    let tagging = aws_sdk_resourcegroupstagging::Client::from_conf(
        aws_sdk_resourcegroupstagging::Config::builder()
            .behavior_version(aws_sdk_resourcegroupstagging::config::BehaviorVersion::latest())
            .region(aws_sdk_resourcegroupstagging::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(creds.clone())
            .endpoint_url(format!("http://{}", sim.addr))
            .build(),
    );
    tagging.get_resources().send().await.unwrap();

    // Chaining: at most one hour; the source identity and the transitive
    // tag carry over, the other tag does not.
    let chained = sts(&sim, creds.clone());
    let err = chained
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice-2")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            "ValidationError".to_owned(),
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".to_owned(),
            400
        )
    );
    let second = chained
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice-2")
        .send()
        .await
        .unwrap();
    assert_eq!(second.source_identity(), Some("alice@example.com"));
    let key = second.credentials().unwrap().access_key_id();
    let caller = sim.registry.identities().get(key).unwrap();
    assert_eq!(caller.session_tag("team"), Some("infra"));
    assert_eq!(caller.session_tag("SSMSessionRunAs"), None);
    let err = chained
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice-3")
        .tags(tag("Team", "other"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).0, "InvalidParameterValue");
}

#[tokio::test]
async fn assume_role_refuses_what_aws_refuses() {
    let sim = default_sim().await;
    let client = sts(&sim, plain());
    let base = |session: &str| {
        client
            .assume_role()
            .role_arn(ROLE)
            .role_session_name(session)
    };

    let err = base("bad name!").send().await.unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            "ValidationError".to_owned(),
            r"1 validation error detected: Value 'bad name!' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*".to_owned(),
            400
        )
    );
    let err = base("a").send().await.unwrap_err();
    let (code, message, _) = refusal(&err);
    assert_eq!(code, "ValidationError");
    assert!(
        message.ends_with("at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2"),
        "{message}"
    );
    for (seconds, bound) in [
        (899, "greater than or equal to 900"),
        (43_201, "less than or equal to 43200"),
    ] {
        let err = base("alice")
            .duration_seconds(seconds)
            .send()
            .await
            .unwrap_err();
        let (code, message, _) = refusal(&err);
        assert_eq!(code, "ValidationError");
        assert_eq!(
            message,
            format!(
                "1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value {bound}"
            )
        );
    }
    // Within the model's range but above the role's MaxSessionDuration
    // (a new role's default, 1 h).
    let err = base("alice")
        .duration_seconds(7200)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err).1,
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    );
    base("alice").duration_seconds(900).send().await.unwrap();

    // A role of another account: AccessDenied, HTTP 403.
    let other = "arn:aws:iam::210987654321:role/ops";
    let err = client
        .assume_role()
        .role_arn(other)
        .role_session_name("alice")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            "AccessDenied".to_owned(),
            format!(
                "User: {AKID_ARN} is not authorized to perform: sts:AssumeRole on resource: {other}"
            ),
            403
        )
    );
    // Not an ARN at all / not a role.
    let err = client
        .assume_role()
        .role_arn("this-is-not-an-arn-at-all")
        .role_session_name("alice")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).1, "this-is-not-an-arn-at-all is invalid");
    let err = client
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:user/bob")
        .role_session_name("alice")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).0, "AccessDenied");

    let err = base("alice")
        .source_identity("aws:me")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).0, "ValidationError");
    let err = base("alice")
        .tags(tag("Env", "a"))
        .tags(tag("env", "b"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        (
            "InvalidParameterValue".to_owned(),
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.".to_owned(),
            400
        )
    );
    let err = base("alice")
        .tags(tag("env", "a"))
        .transitive_tag_keys("team")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).0, "InvalidParameterValue");
    let mut too_many = base("alice");
    for n in 0..51 {
        too_many = too_many.tags(tag(&format!("k{n}"), "v"));
    }
    let err = too_many.send().await.unwrap_err();
    let (code, message, _) = refusal(&err);
    assert_eq!(code, "ValidationError");
    assert!(message.contains("at 'tags'"), "{message}");
    let err = base("alice")
        .tags(tag(&"k".repeat(129), "v"))
        .send()
        .await
        .unwrap_err();
    assert!(refusal(&err).1.contains("at 'tags.1.member.key'"));

    // The session token has room for 4,096 bytes: tags past it are
    // refused, MinimumSessionTokenSize pads it.
    let mut big = base("alice");
    for n in 0..20 {
        big = big.tags(tag(
            &format!("k{n:03}{}", "k".repeat(120)),
            &"v".repeat(256),
        ));
    }
    let err = big.send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_packed_policy_too_large_exception(),
        "{err:?}"
    );
    let padded = base("alice")
        .minimum_session_token_size(4096)
        .send()
        .await
        .unwrap();
    assert_eq!(padded.credentials().unwrap().session_token().len(), 4096);
    assert_eq!(padded.session_token_utilization(), Some(100));
    let err = base("alice")
        .minimum_session_token_size(4097)
        .send()
        .await
        .unwrap_err();
    assert!(
        refusal(&err)
            .1
            .contains("at 'minimumSessionTokenSize' failed to satisfy constraint"),
        "{err:?}"
    );

    let err = base("alice").policy("{not json").send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_malformed_policy_document_exception(),
        "{err:?}"
    );
}

#[tokio::test]
async fn expired_or_mismatched_credentials_are_refused() {
    let sim = default_sim().await;
    let out = sts(&sim, plain())
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice")
        .send()
        .await
        .unwrap();
    let creds = issued(&out);
    let key = creds.access_key_id().to_owned();

    // The issued key without its session token is not recognised.
    let no_token = Credentials::new(&key, "secret", None, None, "x");
    let err = ssm(&sim, no_token.clone())
        .describe_sessions()
        .state(SessionState::Active)
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(&err).0, "UnrecognizedClientException");
    let err = sts(&sim, no_token)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.as_service_error().unwrap().code(),
        Some("InvalidClientTokenId")
    );

    assert!(sim.registry.identities().expire(&key));
    let err = ssm(&sim, creds.clone())
        .start_session()
        .target(WEB)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        service_error(&err),
        (
            "ExpiredTokenException".to_owned(),
            "The security token included in the request is expired".to_owned()
        )
    );
    let err = sts(&sim, creds)
        .get_caller_identity()
        .send()
        .await
        .unwrap_err();
    let e = err.as_service_error().unwrap();
    assert_eq!(e.code(), Some("ExpiredToken"));
    assert_eq!(
        e.message(),
        Some("The security token included in the request is expired")
    );
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert!(sim.registry.describe(true).is_empty());
}

#[tokio::test]
async fn injected_sts_errors_come_back_in_the_query_protocol() {
    let sim = default_sim().await;
    sim.registry
        .api_faults()
        .fail("AssumeRole", "Throttling", "Rate exceeded", Some(1));
    let client = sts(&sim, plain());
    let err = client
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&err),
        ("Throttling".to_owned(), "Rate exceeded".to_owned(), 400)
    );
    client
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice")
        .send()
        .await
        .unwrap();
    assert_eq!(sim.registry.api_calls("AssumeRole"), 2);
    assert_eq!(sim.registry.api_calls("GetCallerIdentity"), 0);
}

#[tokio::test]
async fn the_roles_max_session_duration_comes_from_the_config() {
    let config =
        ssm_sim::config::SimConfig::from_toml_str("role_max_session_duration = 43200\n").unwrap();
    let server = ssm_sim::server::SimServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let client = Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(plain())
            .endpoint_url(server.endpoint())
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let out = client
        .assume_role()
        .role_arn(ROLE)
        .role_session_name("alice")
        .duration_seconds(43_200)
        .send()
        .await
        .unwrap();
    let expires = out.credentials().unwrap().expiration().secs();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(
        (43_190..=43_210).contains(&(expires - now)),
        "{expires} {now}"
    );
}
