//! Where the simulator stands: the region and account that ARNs, STS
//! identities and the tagging API name, and the partition they imply.

/// The region and account the simulator stands for (`region` and
/// `account` in its config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// e.g. `us-east-1`.
    pub region: String,
    /// Twelve digits.
    pub account: String,
}

impl Default for Location {
    fn default() -> Self {
        Location {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        }
    }
}

impl Location {
    /// The ARN partition of the region (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    /// The ARN of EC2 instance `id` here.
    pub fn instance_arn(&self, id: &str) -> String {
        format!(
            "arn:{}:ec2:{}:{}:instance/{id}",
            self.partition(),
            self.region,
            self.account
        )
    }
}
