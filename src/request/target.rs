//! The target as the user named it: [`TargetSpec`], checked once where it
//! enters (the login name `alice+web-1`, a forward's destination) — 1 to
//! 255 characters of `A-Z a-z 0-9 . _ : -` — so nothing odd reaches logs,
//! policies or AWS. Which instance it names is the inventory's business.

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
    /// A character outside `A-Z a-z 0-9 . _ : -`.
    #[error(
        "invalid target \"{target}\": character {bad:?} not allowed (only A-Z a-z 0-9 . _ : -)"
    )]
    BadCharacter {
        /// The target as given, escaped and bounded.
        target: String,
        /// The first offending character.
        bad: char,
    },
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
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(TargetError::BadCharacter {
                target: bounded(target),
                bad,
            });
        }
        Ok(Self(target.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
