//! An aws-sdk-ssm client aimed at a simulator: static dummy credentials
//! (the simulator accepts any signature), no retries, a fixed region.

use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};

/// The real SSM client with its endpoint overridden to `endpoint`.
pub fn sdk_client(endpoint: &str) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDSIM",
            "sim-secret",
            None,
            None,
            "ssmgate-sim",
        ))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}
