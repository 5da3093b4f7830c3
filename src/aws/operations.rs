//! Every AWS operation the gateway calls, as IAM names it. This module
//! and the IAM policy in `deploy/iam/gateway-policy.json` are compared by
//! `tests/iam_policy.rs`, which also finds the SDK calls in `src/`: an
//! operation added to the code without being added here (and to the
//! policy) fails the tests.

/// One AWS operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The IAM action, e.g. `ssm:StartSession`.
    pub action: &'static str,
    /// False for the few operations IAM never denies
    /// (`sts:GetCallerIdentity`): the policy need not grant them.
    pub needs_permission: bool,
    /// Why the gateway calls it.
    pub purpose: &'static str,
}

/// The operations, in the order a session uses them.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        action: "ssm:DescribeInstanceInformation",
        needs_permission: true,
        purpose: "list managed instances; resolve names",
    },
    Operation {
        action: "ssm:ListTagsForResource",
        needs_permission: true,
        purpose: "tags of hybrid (mi-) nodes",
    },
    Operation {
        action: "tag:GetResources",
        needs_permission: true,
        purpose: "tags of EC2 (i-) instances",
    },
    Operation {
        action: "sts:GetCallerIdentity",
        needs_permission: false,
        purpose: "the gateway's account and partition, for instance ARNs",
    },
    Operation {
        action: "sts:AssumeRole",
        needs_permission: true,
        purpose: "with [aws] session_role_arn: the session role, per user (with sts:TagSession and sts:SetSourceIdentity)",
    },
    Operation {
        action: "ssm:StartSession",
        needs_permission: true,
        purpose: "open a session on a target with a document",
    },
    Operation {
        action: "ssm:ResumeSession",
        needs_permission: true,
        purpose: "reconnect a data channel",
    },
    Operation {
        action: "ssm:TerminateSession",
        needs_permission: true,
        purpose: "end the session when the ssh channel closes",
    },
];
