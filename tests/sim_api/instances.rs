//! Instance-side operations: DescribeInstanceInformation (filters and
//! pagination), GetConnectionStatus, ListTagsForResource and GetDocument.

use aws_sdk_ssm::types::{
    InstanceInformationFilter, InstanceInformationFilterKey, InstanceInformationStringFilter,
    ResourceTypeForTagging,
};
use ssm_sim::config::FaultConfig;
use ssm_sim::inventory::{Instance, Inventory, PingStatus};

use super::{EDGE, OFFLINE, Sim, WEB, default_sim, service_error, start};

/// Twelve instances: ids `i-…01`…`i-…09`, `mi-…0a`…`mi-…0c`, every third
/// offline, even ones tagged env=prod, the rest env=dev; 5 and 7 are Windows.
pub(super) fn fleet() -> Inventory {
    Inventory::new(
        (1..=12u64)
            .map(|n| {
                let id = if n <= 9 {
                    format!("i-{n:017x}")
                } else {
                    format!("mi-{n:017x}")
                };
                let mut i = Instance::new(id)
                    .with_name(&format!("host-{n}"))
                    .with_tag("env", if n % 2 == 0 { "prod" } else { "dev" });
                if n % 3 == 0 {
                    i = i.with_ping_status(PingStatus::ConnectionLost);
                }
                if n == 5 || n == 7 {
                    i.platform_type = "Windows".into();
                    i.tags.insert("os".into(), "win".into());
                }
                i
            })
            .collect(),
    )
}

#[tokio::test]
async fn describe_instance_information_pages() {
    let sim = start(fleet(), FaultConfig::default()).await;
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = sim
            .client
            .describe_instance_information()
            .max_results(5)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.instance_information_list().len() <= 5);
        ids.extend(
            out.instance_information_list()
                .iter()
                .map(|i| i.instance_id().unwrap().to_owned()),
        );
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = sim
        .registry
        .inventory()
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(ids, expected);

    // Default page size is 10.
    let out = sim
        .client
        .describe_instance_information()
        .send()
        .await
        .unwrap();
    assert_eq!(out.instance_information_list().len(), 10);
    assert!(out.next_token().is_some());

    // The SDK paginator sees every instance once.
    let all: Vec<_> = sim
        .client
        .describe_instance_information()
        .max_results(7)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(all.len(), 12);

    let info = sim
        .client
        .describe_instance_information()
        .filters(filter("InstanceIds", &["mi-0000000000000000a"]))
        .send()
        .await
        .unwrap();
    let i = &info.instance_information_list()[0];
    assert_eq!(i.ping_status().unwrap().as_str(), "Online");
    assert_eq!(i.resource_type().unwrap().as_str(), "ManagedInstance");
    assert_eq!(i.name(), Some("host-10"));
    assert_eq!(i.platform_type().unwrap().as_str(), "Linux");
    assert_eq!(i.agent_version(), Some("3.3.987.0"));
    assert_eq!(i.ip_address(), Some("127.0.0.1"));
    assert!(i.last_ping_date_time().unwrap().secs() > 1_700_000_000);

    for (max, ok) in [(4, false), (5, true), (50, true), (51, false)] {
        let r = sim
            .client
            .describe_instance_information()
            .max_results(max)
            .send()
            .await;
        match r {
            Ok(_) => assert!(ok, "{max}"),
            Err(e) => {
                assert!(!ok, "{max}");
                let (code, message) = service_error(&e);
                assert_eq!(code, "ValidationException");
                assert!(
                    message.contains(&format!("Value '{max}' at 'maxResults'")),
                    "{message}"
                );
            }
        }
    }

    let err = sim
        .client
        .describe_instance_information()
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_invalid_next_token());
}

fn filter(key: &str, values: &[&str]) -> InstanceInformationStringFilter {
    let mut b = InstanceInformationStringFilter::builder().key(key);
    for v in values {
        b = b.values(*v);
    }
    b.build().unwrap()
}

async fn ids_for(sim: &Sim, filters: Vec<InstanceInformationStringFilter>) -> Vec<u64> {
    let out = sim
        .client
        .describe_instance_information()
        .set_filters(Some(filters))
        .max_results(50)
        .send()
        .await
        .unwrap();
    out.instance_information_list()
        .iter()
        .map(|i| {
            let id = i.instance_id().unwrap();
            let hex = id.rsplit_once('-').unwrap().1;
            u64::from_str_radix(hex, 16).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn describe_instance_information_filters() {
    let sim = start(fleet(), FaultConfig::default()).await;
    assert_eq!(
        ids_for(&sim, vec![filter("PingStatus", &["ConnectionLost"])]).await,
        vec![3, 6, 9, 12]
    );
    assert_eq!(
        ids_for(&sim, vec![filter("tag:env", &["prod"])]).await,
        vec![2, 4, 6, 8, 10, 12]
    );
    assert_eq!(
        ids_for(
            &sim,
            vec![
                filter("tag:env", &["prod"]),
                filter("PingStatus", &["Online"])
            ]
        )
        .await,
        vec![2, 4, 8, 10]
    );
    assert_eq!(
        ids_for(&sim, vec![filter("tag-key", &["os"])]).await,
        vec![5, 7]
    );
    assert_eq!(
        ids_for(&sim, vec![filter("PlatformTypes", &["Windows"])]).await,
        vec![5, 7]
    );
    assert_eq!(
        ids_for(&sim, vec![filter("ResourceType", &["ManagedInstance"])]).await,
        vec![10, 11, 12]
    );
    assert_eq!(
        ids_for(
            &sim,
            vec![filter(
                "InstanceIds",
                &["i-00000000000000001", "mi-0000000000000000b"]
            )]
        )
        .await,
        vec![1, 11]
    );
    assert_eq!(
        ids_for(&sim, vec![filter("tag:Name", &["host-4"])]).await,
        vec![4]
    );
    assert_eq!(
        ids_for(&sim, vec![filter("AgentVersion", &["3.3.987.0"])])
            .await
            .len(),
        12
    );
    assert!(
        ids_for(&sim, vec![filter("tag:env", &["staging"])])
            .await
            .is_empty()
    );

    // Legacy InstanceInformationFilterList.
    let legacy = InstanceInformationFilter::builder()
        .key(InstanceInformationFilterKey::PingStatus)
        .value_set("ConnectionLost")
        .build()
        .unwrap();
    let out = sim
        .client
        .describe_instance_information()
        .instance_information_filter_list(legacy)
        .send()
        .await
        .unwrap();
    assert_eq!(out.instance_information_list().len(), 4);

    // Errors.
    let err = sim
        .client
        .describe_instance_information()
        .filters(filter("Colour", &["blue"]))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_filter_key(),
        "{err:?}"
    );
    let err = sim
        .client
        .describe_instance_information()
        .filters(filter("PingStatus", &["Sleeping"]))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_instance_information_filter_value(),
        "{err:?}"
    );
    let err = sim
        .client
        .describe_instance_information()
        .filters(filter("InstanceIds", &["web-1"]))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_instance_id(),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_status() {
    let sim = default_sim().await;
    for (target, status) in [
        (WEB, "connected"),
        (EDGE, "connected"),
        (OFFLINE, "notconnected"),
        ("i-ffffffffffffffff0", "notconnected"),
    ] {
        let out = sim
            .client
            .get_connection_status()
            .target(target)
            .send()
            .await
            .unwrap();
        assert_eq!(out.target(), Some(target));
        assert_eq!(out.status().unwrap().as_str(), status, "{target}");
    }
}

#[tokio::test]
async fn list_tags_for_resource() {
    let sim = default_sim().await;
    let out = sim
        .client
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id(EDGE)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = out
        .tag_list()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(
        tags,
        vec![("Name", "edge-1"), ("env", "dev"), ("role", "edge")]
    );

    // SSM refuses EC2 ids (and any id not shaped like a hybrid one), known
    // or not, as it does in AWS.
    for id in [
        WEB,
        "i-ffffffffffffffff0",
        "mi-0a1b2c3d",
        "mi-0A1B2C3D4E5F60003",
    ] {
        let err = sim
            .client
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::ManagedInstance)
            .resource_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            service_error(&err),
            (
                "ValidationException".to_owned(),
                "resourceId should be in format mi-[0-9a-f]{17} for resource type ManagedInstance"
                    .to_owned()
            ),
            "{id}"
        );
    }

    // A well-formed hybrid id that is not registered.
    let err = sim
        .client
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id("mi-ffffffffffffffff0")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_resource_id(),
        "{err:?}"
    );
    let err = sim
        .client
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/x")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_resource_type(),
        "{err:?}"
    );
}

#[tokio::test]
async fn get_document() {
    let sim = default_sim().await;
    for (name, session_type) in [
        ("SSM-SessionManagerRunShell", "Standard_Stream"),
        ("AWS-StartInteractiveCommand", "InteractiveCommands"),
        ("AWS-StartNonInteractiveCommand", "NonInteractiveCommands"),
        ("AWS-StartPortForwardingSession", "Port"),
        ("AWS-StartPortForwardingSessionToRemoteHost", "Port"),
        ("AWS-StartSSHSession", "Port"),
    ] {
        let out = sim.client.get_document().name(name).send().await.unwrap();
        assert_eq!(out.name(), Some(name));
        assert_eq!(out.document_type().unwrap().as_str(), "Session");
        let content: serde_json::Value = serde_json::from_str(out.content().unwrap()).unwrap();
        assert_eq!(content["schemaVersion"], "1.0");
        assert_eq!(content["sessionType"], session_type, "{name}");
    }
    let out = sim
        .client
        .get_document()
        .name("AWS-StartSSHSession")
        .send()
        .await
        .unwrap();
    let content: serde_json::Value = serde_json::from_str(out.content().unwrap()).unwrap();
    assert_eq!(content["parameters"]["portNumber"]["default"], "22");
    assert!(content["properties"].get("type").is_none());

    let err = sim
        .client
        .get_document()
        .name("AWS-Nope")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_document(),
        "{err:?}"
    );
    let err = sim
        .client
        .get_document()
        .name("AWS-StartSSHSession")
        .document_version("7")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_document_version(),
        "{err:?}"
    );
}
