//! One simulator hosting two accounts and two regions, through the real
//! `aws-sdk-ssm`, `aws-sdk-sts` and `aws-sdk-resourcegroupstagging`
//! clients: plain keys act in the home account, credentials from
//! `AssumeRole` in the role's account, and every request in the region it
//! is signed for; each sees only the instances and sessions of its account
//! and region, and the others' look exactly like unknown ones. Roles of
//! accounts the sim does not hold stay `AccessDenied`.

use aws_sdk_ssm::config::Credentials;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{InstanceInformationStringFilter, ResourceTypeForTagging, SessionState};
use ssm_sim::config::SimConfig;
use ssm_sim::registry::Location;
use ssm_sim::server::SimServer;

use super::service_error;
use super::sts::{issued, plain, refusal};
use super::wire::raw_post;

/// Region A: the sim's home region.
const A: &str = "us-east-1";
/// Region B.
const B: &str = "eu-west-1";
const HOME: &str = "123456789012";
const PROD: &str = "222222222222";
/// The role the gateway would assume to reach account 2.
const PROD_ROLE: &str = "arn:aws:iam::222222222222:role/ssmgate";

const HOME_A: &str = "i-000000000000a0001";
const HOME_B: &str = "i-000000000000b0001";
const PROD_A: &str = "i-000000000000a0002";
const PROD_B: &str = "i-000000000000b0002";
const PROD_B_HYBRID: &str = "mi-000000000000b0003";
/// An id no account holds.
const UNKNOWN: &str = "i-00000000000ffff01";

/// `web` in each account and region, and a hybrid node in account 2's
/// region B.
const SIM: &str = r#"
mode = "fast"
region = "us-east-1"

[[accounts]]
id = "222222222222"

[[instances]]
id = "i-000000000000a0001"
name = "web"
tags = { env = "home-a" }

[[instances]]
id = "i-000000000000b0001"
name = "web"
region = "eu-west-1"
tags = { env = "home-b" }

[[instances]]
id = "i-000000000000a0002"
name = "web"
account = "222222222222"
tags = { env = "prod-a" }

[[instances]]
id = "i-000000000000b0002"
name = "web"
account = "222222222222"
region = "eu-west-1"
tags = { env = "prod-b" }

[[instances]]
id = "mi-000000000000b0003"
name = "edge"
account = "222222222222"
region = "eu-west-1"
"#;

async fn sim() -> SimServer {
    SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig::from_toml_str(SIM).unwrap(),
    )
    .await
    .unwrap()
}

fn ssm(sim: &SimServer, region: &str, creds: Credentials) -> aws_sdk_ssm::Client {
    use aws_sdk_ssm::config::{BehaviorVersion, Region, retry::RetryConfig};
    aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(creds)
            .endpoint_url(sim.endpoint())
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

fn sts(sim: &SimServer, region: &str, creds: Credentials) -> aws_sdk_sts::Client {
    use aws_sdk_sts::config::{BehaviorVersion, Region, retry::RetryConfig};
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(creds)
            .endpoint_url(sim.endpoint())
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

fn tagging(
    sim: &SimServer,
    region: &str,
    creds: Credentials,
) -> aws_sdk_resourcegroupstagging::Client {
    use aws_sdk_resourcegroupstagging::config::{BehaviorVersion, Region, retry::RetryConfig};
    aws_sdk_resourcegroupstagging::Client::from_conf(
        aws_sdk_resourcegroupstagging::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(creds)
            .endpoint_url(sim.endpoint())
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// Credentials of a session of `role`, assumed with plain keys.
async fn assume(sim: &SimServer, role: &str) -> Credentials {
    let out = sts(sim, A, plain())
        .assume_role()
        .role_arn(role)
        .role_session_name("alice")
        .send()
        .await
        .unwrap();
    issued(&out)
}

/// The instance ids DescribeInstanceInformation lists (all pages), sorted;
/// only those tagged `Name = name` when given.
async fn listed(client: &aws_sdk_ssm::Client, name: Option<&str>) -> Vec<String> {
    let filters = name.map(|n| {
        vec![
            InstanceInformationStringFilter::builder()
                .key("tag:Name")
                .values(n)
                .build()
                .unwrap(),
        ]
    });
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .describe_instance_information()
            .set_filters(filters.clone())
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        ids.extend(
            out.instance_information_list()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_owned)),
        );
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    ids.sort();
    ids
}

/// The ARNs GetResources answers (one page: the fleet is small).
async fn arns(client: &aws_sdk_resourcegroupstagging::Client, only: &[String]) -> Vec<String> {
    let out = client
        .get_resources()
        .set_resource_arn_list((!only.is_empty()).then(|| only.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.pagination_token(), Some(""));
    out.resource_tag_mapping_list()
        .iter()
        .filter_map(|m| m.resource_arn().map(str::to_owned))
        .collect()
}

fn arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:instance/{id}")
}

/// StartSession's refusal of `target`: (code, message), and whether the
/// SDK typed it `TargetNotConnected`.
async fn start_refused(client: &aws_sdk_ssm::Client, target: &str) -> (String, String, bool) {
    let err = client
        .start_session()
        .target(target)
        .send()
        .await
        .unwrap_err();
    let typed = err
        .as_service_error()
        .is_some_and(|e| e.is_target_not_connected());
    let (code, message) = service_error(&err);
    (code, message, typed)
}

/// What StartSession answers for an id no account holds, with `id` in its
/// place: what another account's or region's instance must look like.
async fn as_unknown(client: &aws_sdk_ssm::Client, id: &str) -> (String, String, bool) {
    let (code, message, typed) = start_refused(client, UNKNOWN).await;
    (code, message.replace(UNKNOWN, id), typed)
}

#[tokio::test]
async fn plain_keys_act_in_the_home_account_in_the_signing_region() {
    let sim = sim().await;
    let home_a = ssm(&sim, A, plain());
    let home_b = ssm(&sim, B, plain());
    assert_eq!(listed(&home_a, None).await, vec![HOME_A]);
    assert_eq!(listed(&home_a, Some("web")).await, vec![HOME_A]);
    assert_eq!(listed(&home_b, Some("web")).await, vec![HOME_B]);
    assert_eq!(
        arns(&tagging(&sim, A, plain()), &[]).await,
        vec![arn(A, HOME, HOME_A)]
    );
    assert_eq!(
        arns(&tagging(&sim, B, plain()), &[]).await,
        vec![arn(B, HOME, HOME_B)]
    );
    let me = sts(&sim, B, plain())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(HOME));

    // Another region's or account's instance is refused as an unknown one.
    let expected = as_unknown(&home_a, HOME_B).await;
    assert_eq!(expected.0, "TargetNotConnected");
    assert!(expected.2);
    assert_eq!(expected.1, format!("{HOME_B} is not connected."));
    assert_eq!(start_refused(&home_a, HOME_B).await, expected);
    for other in [PROD_A, PROD_B] {
        assert_eq!(
            start_refused(&home_a, other).await,
            as_unknown(&home_a, other).await
        );
    }
    let started = home_a.start_session().target(HOME_A).send().await.unwrap();
    let entry = sim.registry.get(started.session_id().unwrap()).unwrap();
    assert_eq!(
        entry.location,
        Location {
            account: HOME.into(),
            region: A.into()
        }
    );
    assert_eq!(entry.caller.account, HOME);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn assumed_credentials_act_in_the_roles_account() {
    let sim = sim().await;
    let creds = assume(&sim, PROD_ROLE).await;

    let me = sts(&sim, B, creds.clone())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(PROD));
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::222222222222:assumed-role/ssmgate/alice")
    );

    // Account 2 in region B: its two instances, one of them `web`.
    let prod_b = ssm(&sim, B, creds.clone());
    assert_eq!(listed(&prod_b, None).await, vec![PROD_B, PROD_B_HYBRID]);
    assert_eq!(listed(&prod_b, Some("web")).await, vec![PROD_B]);
    let prod_a = ssm(&sim, A, creds.clone());
    assert_eq!(listed(&prod_a, Some("web")).await, vec![PROD_A]);

    // Sessions start on account 2's region-B instance only.
    let started = prod_b.start_session().target(PROD_B).send().await.unwrap();
    let id = started.session_id().unwrap().to_owned();
    assert!(id.starts_with("alice-"), "{id}");
    let entry = sim.registry.get(&id).unwrap();
    assert_eq!(
        entry.location,
        Location {
            account: PROD.into(),
            region: B.into()
        }
    );
    assert_eq!(entry.caller.account, PROD);
    for other in [HOME_A, HOME_B, PROD_A] {
        let refused = start_refused(&prod_b, other).await;
        assert_eq!(refused, as_unknown(&prod_b, other).await);
        assert_eq!(
            refused,
            (
                "TargetNotConnected".to_owned(),
                format!("{other} is not connected."),
                true
            )
        );
    }
    let status = |client: aws_sdk_ssm::Client, target: &'static str| async move {
        let out = client
            .get_connection_status()
            .target(target)
            .send()
            .await
            .unwrap();
        out.status().unwrap().as_str().to_owned()
    };
    assert_eq!(status(prod_b.clone(), PROD_B).await, "connected");
    assert_eq!(status(prod_b.clone(), HOME_B).await, "notconnected");
    assert_eq!(status(prod_a.clone(), PROD_B).await, "notconnected");

    // The hybrid node's tags: there, and only there.
    let tags = prod_b
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id(PROD_B_HYBRID)
        .send()
        .await
        .unwrap();
    assert!(
        tags.tag_list()
            .iter()
            .any(|t| t.key() == "Name" && t.value() == "edge")
    );
    let unknown_tags = |client: aws_sdk_ssm::Client, id: &'static str| async move {
        let err = client
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::ManagedInstance)
            .resource_id(id)
            .send()
            .await
            .unwrap_err();
        service_error(&err)
    };
    let home_b = ssm(&sim, B, plain());
    assert_eq!(
        unknown_tags(home_b.clone(), PROD_B_HYBRID).await,
        unknown_tags(home_b.clone(), "mi-000000000000fffff").await
    );
    assert_eq!(
        unknown_tags(home_b.clone(), PROD_B_HYBRID).await.0,
        "InvalidResourceId"
    );

    // GetResources: account 2's region-B ARNs only; others' ARNs are left
    // out even when asked for.
    let prod_b_tagging = tagging(&sim, B, creds.clone());
    assert_eq!(arns(&prod_b_tagging, &[]).await, vec![arn(B, PROD, PROD_B)]);
    let elsewhere = vec![
        arn(A, HOME, HOME_A),
        arn(B, HOME, HOME_B),
        arn(A, PROD, PROD_A),
        arn(A, PROD, PROD_B),
    ];
    assert!(arns(&prod_b_tagging, &elsewhere).await.is_empty());
    let mut asked = elsewhere.clone();
    asked.push(arn(B, PROD, PROD_B));
    assert_eq!(
        arns(&prod_b_tagging, &asked).await,
        vec![arn(B, PROD, PROD_B)]
    );

    // Sessions: seen, resumed and terminated only in account 2's region B.
    let active = |client: aws_sdk_ssm::Client| async move {
        let out = client
            .describe_sessions()
            .state(SessionState::Active)
            .send()
            .await
            .unwrap();
        out.sessions()
            .iter()
            .filter_map(|s| s.session_id().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(active(prod_b.clone()).await, vec![id.clone()]);
    assert!(active(home_b.clone()).await.is_empty());
    assert!(active(prod_a.clone()).await.is_empty());
    let missing = format!("Session with id {id} does not exist.");
    for client in [&home_b, &prod_a] {
        let err = client
            .resume_session()
            .session_id(&id)
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_does_not_exist_exception()),
            "{err:?}"
        );
        assert_eq!(err.message(), Some(missing.as_str()));
        let err = client
            .terminate_session()
            .session_id(&id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            service_error(&err),
            ("DoesNotExistException".to_owned(), missing.clone())
        );
    }
    let resumed = prod_b
        .resume_session()
        .session_id(&id)
        .send()
        .await
        .unwrap();
    assert!(resumed.token_value().is_some());
    prod_b
        .terminate_session()
        .session_id(&id)
        .send()
        .await
        .unwrap();
    let history = prod_b
        .describe_sessions()
        .state(SessionState::History)
        .send()
        .await
        .unwrap();
    assert_eq!(history.sessions().len(), 1);
    assert_eq!(history.sessions()[0].session_id(), Some(id.as_str()));
    assert_eq!(
        history.sessions()[0].owner(),
        Some("arn:aws:sts::222222222222:assumed-role/ssmgate/alice")
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_roles_of_the_accounts_the_sim_holds_can_be_assumed() {
    let sim = sim().await;
    let other = "arn:aws:iam::333333333333:role/ssmgate";
    let err = sts(&sim, A, plain())
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
                "User: arn:aws:iam::123456789012:user/AKIDSIMTEST is not authorized to perform: sts:AssumeRole on resource: {other}"
            ),
            403
        )
    );

    // Chaining from account 2 back into the home account: the new
    // credentials act there.
    let prod = assume(&sim, PROD_ROLE).await;
    let out = sts(&sim, A, prod.clone())
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/ops")
        .role_session_name("alice-home")
        .send()
        .await
        .unwrap();
    let home = issued(&out);
    let me = sts(&sim, A, home.clone())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.account(), Some(HOME));
    assert_eq!(listed(&ssm(&sim, A, home), None).await, vec![HOME_A]);
    let err = sts(&sim, A, prod)
        .assume_role()
        .role_arn(other)
        .role_session_name("alice-2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal(&err).0, "AccessDenied");
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn unsigned_requests_are_served_in_the_home_region() {
    let sim = sim().await;
    // No Authorization header: the home account in the sim's region.
    let (status, _, body) = raw_post(
        sim.addr,
        Some("AmazonSSM.DescribeInstanceInformation"),
        "{}",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(HOME_A), "{body}");
    for elsewhere in [HOME_B, PROD_A, PROD_B] {
        assert!(!body.contains(elsewhere), "{body}");
    }
    sim.shutdown().await.unwrap();
}
