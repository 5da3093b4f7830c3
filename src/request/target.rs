//! The target as the user named it: [`TargetSpec`], checked once where it
//! enters (the login name `alice+web-1`, a forward's destination) — 1 to
//! 255 characters of `A-Z a-z 0-9 . _ : -`, optionally qualified by account
//! and region (`prod/web-1`, `prod/eu-west-1/web-1`) — so nothing odd
//! reaches logs, policies or AWS. Which instance it names is the
//! inventory's business.

use std::fmt;

use crate::untrusted::bounded;

/// Longest accepted target.
pub const MAX_TARGET_LEN: usize = 255;

/// An instance id or name, as the user wrote it, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TargetSpec(String);

/// Why a target was refused. Texts are safe to show to the client: they
/// quote the offending input with control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing at all.
    #[error("empty target after '+' (use USER+TARGET, e.g. alice+web-1)")]
    Empty,
    /// Longer than [`MAX_TARGET_LEN`].
    #[error("target is too long ({0} characters, at most 255)")]
    TooLong(usize),
    /// A character outside `A-Z a-z 0-9 . _ : - /`.
    #[error(
        "invalid target \"{target}\": character {bad:?} not allowed (only A-Z a-z 0-9 . _ : - and / between account, region and target)"
    )]
    BadCharacter {
        /// The target as given, escaped and bounded.
        target: String,
        /// The first offending character.
        bad: char,
    },
    /// More than ACCOUNT/REGION/TARGET, or an empty part.
    #[error(
        "invalid target \"{0}\": qualify it as ACCOUNT/TARGET or ACCOUNT/REGION/TARGET (no empty parts)"
    )]
    BadQualifier(String),
}

impl TargetSpec {
    /// Checks a target: 1–255 characters of `A-Z a-z 0-9 . _ : -`.
    pub fn parse(target: &str) -> Result<Self, TargetError> {
        if target.is_empty() {
            return Err(TargetError::Empty);
        }
        let len = target.chars().count();
        if len > MAX_TARGET_LEN {
            return Err(TargetError::TooLong(len));
        }
        if let Some(bad) = target
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-' | '/')))
        {
            return Err(TargetError::BadCharacter {
                target: bounded(target),
                bad,
            });
        }
        let parts = target.split('/').count();
        if parts > 3 || target.split('/').any(str::is_empty) {
            return Err(TargetError::BadQualifier(bounded(target)));
        }
        Ok(Self(target.to_owned()))
    }

    /// `(account, region, target)`: `web-1` → `(None, None, "web-1")`,
    /// `prod/web-1` → `(Some("prod"), None, "web-1")`,
    /// `prod/eu-west-1/web-1` → `(Some("prod"), Some("eu-west-1"), "web-1")`.
    pub fn parts(&self) -> (Option<&str>, Option<&str>, &str) {
        split_qualified(&self.0)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// [`TargetSpec::parts`] of any text.
pub fn split_qualified(spec: &str) -> (Option<&str>, Option<&str>, &str) {
    let mut parts = spec.rsplitn(3, '/');
    let target = parts.next().unwrap_or("");
    match (parts.next(), parts.next()) {
        (Some(account), None) => (Some(account), None, target),
        (Some(region), Some(account)) => (Some(account), Some(region), target),
        _ => (None, None, target),
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_targets() {
        let t = TargetSpec::parse("prod/eu-west-1/web-1").unwrap();
        assert_eq!(t.parts(), (Some("prod"), Some("eu-west-1"), "web-1"));
        let t = TargetSpec::parse("prod/web-1").unwrap();
        assert_eq!(t.parts(), (Some("prod"), None, "web-1"));
        let t = TargetSpec::parse("web-1").unwrap();
        assert_eq!(t.parts(), (None, None, "web-1"));
        for bad in ["/web-1", "prod/", "a//b", "a/b/c/d", "/"] {
            assert!(
                matches!(TargetSpec::parse(bad), Err(TargetError::BadQualifier(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            TargetSpec::parse("web 1"),
            Err(TargetError::BadCharacter { bad: ' ', .. })
        ));
    }
}
