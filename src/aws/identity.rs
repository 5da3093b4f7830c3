//! Where the gateway's AWS identity lives: the partition and account of
//! its credentials, from STS `GetCallerIdentity` (which needs no IAM
//! permission), and the ARNs built from them.
//!
//! EC2 instance ARNs (`arn:PARTITION:ec2:REGION:ACCOUNT:instance/ID`) are
//! what the Resource Groups Tagging API is asked about; instance ids alone
//! don't say which account they are in, the caller's identity does.

use super::errors::{CallContext, Service, SsmError, from_sdk};

/// The partition and account of the gateway's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// Twelve digits.
    pub account: String,
}

impl Home {
    /// From `GetCallerIdentity`'s `Arn` (`arn:PARTITION:…`) and
    /// `Account`.
    pub fn from_caller(arn: &str, account: &str) -> Option<Home> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition)) = (parts.next(), parts.next()) else {
            return None;
        };
        let valid_partition = !partition.is_empty()
            && partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-');
        let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (valid_partition && valid_account).then(|| Home {
            partition: partition.to_owned(),
            account: account.to_owned(),
        })
    }

    /// The ARN of EC2 instance `id` in `region`.
    pub fn instance_arn(&self, region: &str, id: &str) -> String {
        format!(
            "arn:{}:ec2:{region}:{}:instance/{id}",
            self.partition, self.account
        )
    }
}

/// Asks STS who the gateway is.
pub(super) async fn caller_home(sts: &aws_sdk_sts::Client) -> Result<Home, SsmError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| from_sdk(e, CallContext::of(Service::Sts)))?;
    let (arn, account) = (out.arn().unwrap_or(""), out.account().unwrap_or(""));
    Home::from_caller(arn, account).ok_or_else(|| SsmError::Other {
        service: Service::Sts,
        code: "ResponseError".to_owned(),
        message: format!(
            "GetCallerIdentity answered an unusable identity (Arn {arn:?}, Account {account:?})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_from_caller_arns() {
        let h = Home::from_caller(
            "arn:aws:sts::123456789012:assumed-role/gw/i-0abc",
            "123456789012",
        )
        .unwrap();
        assert_eq!(
            h.instance_arn("eu-west-1", "i-0123456789abcdef0"),
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"
        );
        let cn = Home::from_caller("arn:aws-cn:iam::210987654321:user/x", "210987654321").unwrap();
        assert_eq!(cn.partition, "aws-cn");
        for (arn, account) in [
            ("", "123456789012"),
            ("arn::iam::123456789012:user/x", "123456789012"),
            ("arn:aws:iam::123456789012:user/x", "12345"),
            ("arn:AWS:iam::123456789012:user/x", "123456789012"),
            ("nra:aws:iam::123456789012:user/x", "123456789012"),
        ] {
            assert_eq!(Home::from_caller(arn, account), None, "{arn} {account}");
        }
    }
}
