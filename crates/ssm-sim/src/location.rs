//! Where a request is served: an account and a region. The simulator has a
//! home location (its config's `account` and `region`); every request is
//! served for the caller's account in the request's region, and sees only
//! the instances and sessions of that location. This module names
//! locations, checks their spelling and builds the ARNs they imply; who the
//! caller is lives in [`crate::identity`], which accounts exist in
//! [`crate::registry`].

/// An account and a region (`account` and `region` in the sim's config
/// for the home location; an instance's `account`/`region`; a request's
/// caller account and signing region).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// The same account in `region`.
    pub fn in_region(&self, region: &str) -> Location {
        Location {
            region: region.to_owned(),
            account: self.account.clone(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// Twelve ASCII digits: an AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Spelled like a region name (`us-east-1`): lowercase letters, digits and
/// dashes, 1–50 characters. Whether the region exists is not checked (the
/// sim serves any region; one with no instances is simply empty).
pub fn is_region_name(s: &str) -> bool {
    (1..=50).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("12345678901"));
        assert!(!is_account_id("12345678901x"));
        assert!(is_region_name("eu-west-1"));
        assert!(!is_region_name(""));
        assert!(!is_region_name("EU-west-1"));
        assert!(!is_region_name("eu west"));
        assert!(!is_region_name(&"a".repeat(51)));
    }

    #[test]
    fn arns_follow_the_location() {
        let here = Location::default().in_region("cn-north-1");
        assert_eq!(here.partition(), "aws-cn");
        assert_eq!(
            here.instance_arn("i-1"),
            "arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-1"
        );
        assert_eq!(here.to_string(), "123456789012/cn-north-1");
    }
}
