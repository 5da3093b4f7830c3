//! The Resource Groups Tagging API's GetResources on the simulator's
//! endpoint, through the real `aws-sdk-resourcegroupstagging` client:
//! EC2 instances with their tags (hybrid `mi-` nodes never), pagination,
//! tag, type and ARN filters, `TagsPerPage`, what AWS refuses (documented
//! parameter conflicts and ranges as `InvalidParameterException`, model
//! constraints as `ValidationException`), and injected throttling.

use aws_sdk_resourcegroupstagging::Client;
use aws_sdk_resourcegroupstagging::config::retry::RetryConfig;
use aws_sdk_resourcegroupstagging::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_resourcegroupstagging::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_resourcegroupstagging::operation::get_resources::GetResourcesError;
use aws_sdk_resourcegroupstagging::types::TagFilter;
use ssm_sim::config::FaultConfig;
use ssm_sim::inventory::{Instance, Inventory};

use super::instances::fleet;
use super::{Sim, start};

fn client(sim: &Sim) -> Client {
    let conf = aws_sdk_resourcegroupstagging::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDSIMTEST",
            "secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(format!("http://{}", sim.addr))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// `(instance id, env tag)` of every mapping, in order.
fn ids_and_env(
    list: &[aws_sdk_resourcegroupstagging::types::ResourceTagMapping],
) -> Vec<(String, String)> {
    list.iter()
        .map(|m| {
            let arn = m.resource_arn().unwrap_or_default();
            let id = arn
                .strip_prefix("arn:aws:ec2:us-east-1:123456789012:instance/")
                .unwrap_or_else(|| panic!("unexpected ARN {arn}"));
            let env = m
                .tags()
                .iter()
                .find(|t| t.key() == "env")
                .map(|t| t.value().to_owned())
                .unwrap_or_default();
            (id.to_owned(), env)
        })
        .collect()
}

#[tokio::test]
async fn get_resources_lists_ec2_instances_with_tags_page_by_page() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let c = client(&sim);
    let mut all = Vec::new();
    let mut pages = 0;
    let mut token = None;
    loop {
        let out = c
            .get_resources()
            .resource_type_filters("ec2:instance")
            .resources_per_page(2)
            .set_pagination_token(token)
            .send()
            .await
            .expect("GetResources");
        pages += 1;
        all.extend(ids_and_env(out.resource_tag_mapping_list()));
        match out.pagination_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    // i-…01 … i-…09 (the mi- nodes are not EC2 resources), 2 per page.
    assert_eq!(pages, 5);
    let want: Vec<(String, String)> = (1..=9u64)
        .map(|n| {
            let env = if n % 2 == 0 { "prod" } else { "dev" };
            (format!("i-{n:017x}"), env.to_owned())
        })
        .collect();
    assert_eq!(all, want);
}

#[tokio::test]
async fn get_resources_filters_by_tag_type_and_arn() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let c = client(&sim);
    let prod = c
        .get_resources()
        .tag_filters(TagFilter::builder().key("env").values("prod").build())
        .send()
        .await
        .expect("by tag");
    let ids: Vec<String> = ids_and_env(prod.resource_tag_mapping_list())
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        ids,
        [2u64, 4, 6, 8]
            .iter()
            .map(|n| format!("i-{n:017x}"))
            .collect::<Vec<_>>()
    );

    let arn = format!("arn:aws:ec2:us-east-1:123456789012:instance/i-{:017x}", 5);
    let one = c
        .get_resources()
        .resource_arn_list(&arn)
        .send()
        .await
        .expect("by ARN");
    let got = ids_and_env(one.resource_tag_mapping_list());
    assert_eq!(got, [(format!("i-{:017x}", 5), "dev".to_owned())]);
    let os = one.resource_tag_mapping_list()[0]
        .tags()
        .iter()
        .any(|t| t.key() == "os" && t.value() == "win");
    assert!(os, "every tag comes back");

    let buckets = c
        .get_resources()
        .resource_type_filters("s3")
        .send()
        .await
        .expect("other types");
    assert!(buckets.resource_tag_mapping_list().is_empty());
}

#[tokio::test]
async fn a_page_size_out_of_range_is_an_invalid_parameter() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let err = client(&sim)
        .get_resources()
        .resources_per_page(101)
        .send()
        .await
        .expect_err("refused");
    let service = err.into_service_error();
    assert!(service.is_invalid_parameter_exception(), "{service:?}");
}

#[tokio::test]
async fn injected_throttling_reaches_the_client_until_cleared() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let c = client(&sim);
    sim.registry
        .api_faults()
        .fail("GetResources", "ThrottledException", "Rate exceeded", None);
    for _ in 0..2 {
        let err = c.get_resources().send().await.expect_err("throttled");
        let raw = err.raw_response().expect("an HTTP answer");
        assert_eq!(raw.status().as_u16(), 400);
        let service = err.into_service_error();
        assert!(service.is_throttled_exception(), "{service:?}");
        assert_eq!(service.meta().code(), Some("ThrottledException"));
        assert_eq!(service.meta().message(), Some("Rate exceeded"));
    }
    // Other operations are untouched.
    sim.client
        .describe_instance_information()
        .send()
        .await
        .expect("SSM still answers");
    sim.registry.api_faults().clear("GetResources");
    let out = c.get_resources().send().await.expect("after clear");
    assert_eq!(out.resource_tag_mapping_list().len(), 9);
    assert_eq!(sim.registry.api_calls("GetResources"), 3);
    assert_eq!(sim.registry.api_calls("DescribeInstanceInformation"), 1);
    assert_eq!(sim.registry.api_calls("StartSession"), 0);

    // A limited injection: an internal error (HTTP 500) once, then answers.
    sim.registry.api_faults().fail(
        "GetResources",
        "InternalServiceException",
        "Internal service error",
        Some(1),
    );
    let err = c.get_resources().send().await.expect_err("internal");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(
        err.into_service_error().is_internal_service_exception(),
        "typed"
    );
    c.get_resources().send().await.expect("used up");
    let counts = sim.registry.api_call_counts();
    assert_eq!(counts.get("GetResources"), Some(&5));
}

/// The AWS code and message of a refused `GetResources`, and whether the
/// SDK typed it as `InvalidParameterException`.
fn refusal<R: std::fmt::Debug + Send + Sync + 'static>(
    err: SdkError<GetResourcesError, R>,
) -> (String, String, bool) {
    let e = err.into_service_error();
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
        e.is_invalid_parameter_exception(),
    )
}

fn arn(n: u64) -> String {
    format!("arn:aws:ec2:us-east-1:123456789012:instance/i-{n:017x}")
}

#[tokio::test]
async fn resource_arn_list_refuses_filters_and_pagination() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let c = client(&sim);
    let base = || c.get_resources().resource_arn_list(arn(1));
    let cases = [
        ("ResourceTypeFilters", base().resource_type_filters("ec2")),
        (
            "TagFilters",
            base().tag_filters(TagFilter::builder().key("env").build()),
        ),
        ("ResourcesPerPage", base().resources_per_page(10)),
        ("TagsPerPage", base().tags_per_page(100)),
        ("PaginationToken", base().pagination_token("simpage-1")),
    ];
    for (name, req) in cases {
        let (code, message, typed) = refusal(req.send().await.expect_err(name));
        assert!(typed, "{name}: {code} {message}");
        assert!(message.contains(name), "{name}: {message}");
    }
    // Alone (and with an unknown ARN, left out without error) it answers.
    let out = base()
        .resource_arn_list(arn(0xfff))
        .send()
        .await
        .expect("ARNs alone");
    assert_eq!(out.resource_tag_mapping_list().len(), 1);

    let bad = "arn:aws:ec2:us-east-1:123456789012:i-00000000000000001";
    let (code, message, typed) = refusal(
        c.get_resources()
            .resource_arn_list(bad)
            .send()
            .await
            .expect_err("not an ARN AWS accepts"),
    );
    assert!(typed, "{code}");
    assert_eq!(
        message,
        format!("{bad} is not a valid AmazonResourceName (ARN)")
    );
}

#[tokio::test]
async fn model_constraints_are_validation_exceptions() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let c = client(&sim);

    let values: Vec<String> = (1..=21).map(|n| format!("v{n}")).collect();
    let (code, message, typed) = refusal(
        c.get_resources()
            .tag_filters(
                TagFilter::builder()
                    .key("env")
                    .set_values(Some(values.clone()))
                    .build(),
            )
            .send()
            .await
            .expect_err("21 values"),
    );
    assert_eq!(code, "ValidationException");
    assert!(!typed);
    assert_eq!(
        message,
        format!(
            "1 validation error detected: value [{}] at 'tagFilters.1.member.values' failed to satisfy constraint: Member must have length less than or equal to 20",
            values.join(", ")
        )
    );
    // 20 values are fine.
    c.get_resources()
        .tag_filters(
            TagFilter::builder()
                .key("env")
                .set_values(Some(values[..20].to_vec()))
                .build(),
        )
        .send()
        .await
        .expect("20 values");

    let filters: Vec<TagFilter> = (0..51)
        .map(|n| TagFilter::builder().key(format!("k{n}")).build())
        .collect();
    let (code, message, _) = refusal(
        c.get_resources()
            .set_tag_filters(Some(filters))
            .send()
            .await
            .expect_err("51 filters"),
    );
    assert_eq!(code, "ValidationException");
    assert!(message.contains("at 'tagFilters' failed"), "{message}");

    let (code, message, _) = refusal(
        c.get_resources()
            .tag_filters(TagFilter::builder().key("k".repeat(129)).build())
            .send()
            .await
            .expect_err("long key"),
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("at 'tagFilters.1.member.key' failed to satisfy constraint: Member must have length less than or equal to 128"),
        "{message}"
    );

    let arns: Vec<String> = (1..=101).map(arn).collect();
    let (code, message, _) = refusal(
        c.get_resources()
            .set_resource_arn_list(Some(arns))
            .send()
            .await
            .expect_err("101 ARNs"),
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.contains("at 'resourceARNList' failed to satisfy constraint: Member must have length less than or equal to 100"),
        "{message}"
    );

    // Several violations are all reported.
    let (code, message, _) = refusal(
        c.get_resources()
            .resource_type_filters("x".repeat(257))
            .pagination_token("t".repeat(2049))
            .send()
            .await
            .expect_err("two violations"),
    );
    assert_eq!(code, "ValidationException");
    assert!(
        message.starts_with("2 validation errors detected: "),
        "{message}"
    );
}

#[tokio::test]
async fn documented_ranges_are_invalid_parameters() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let c = client(&sim);
    for req in [
        c.get_resources().resources_per_page(0),
        c.get_resources().tags_per_page(99),
        c.get_resources().tags_per_page(501),
        c.get_resources()
            .set_resource_type_filters(Some((0..101).map(|n| format!("svc{n}")).collect())),
        c.get_resources().exclude_compliant_resources(true),
    ] {
        let (code, message, typed) = refusal(req.send().await.expect_err("refused"));
        assert!(typed, "{code}: {message}");
    }
    c.get_resources()
        .include_compliance_details(true)
        .exclude_compliant_resources(true)
        .send()
        .await
        .expect("with IncludeComplianceDetails");
}

#[tokio::test]
async fn tags_per_page_never_splits_a_resource() {
    // Three instances with 40 tags each: 100 tags per page hold two.
    let instances = (1..=3u64)
        .map(|n| {
            (0..40).fold(Instance::new(format!("i-{n:017x}")), |i, t| {
                i.with_tag(&format!("k{t}"), "v")
            })
        })
        .collect();
    let sim = start(Inventory::new(instances), FaultConfig::default()).await;
    let c = client(&sim);
    let first = c
        .get_resources()
        .tags_per_page(100)
        .send()
        .await
        .expect("page 1");
    assert_eq!(first.resource_tag_mapping_list().len(), 2);
    assert!(
        first
            .resource_tag_mapping_list()
            .iter()
            .all(|m| m.tags().len() == 40)
    );
    let token = first.pagination_token().expect("more");
    assert!(!token.is_empty());
    let second = c
        .get_resources()
        .tags_per_page(100)
        .pagination_token(token)
        .send()
        .await
        .expect("page 2");
    assert_eq!(second.resource_tag_mapping_list().len(), 1);
    assert_eq!(second.pagination_token(), Some(""));
}
