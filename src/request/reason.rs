//! The user's reason for access (the justification): [`Reason`], a checked
//! text that can only be built through the universal rules
//! ([`Reason::new`]) or the configured rule ([`Justification::check`]), so
//! everything downstream (policies, the AWS Reason, recordings) receives a
//! bounded, printable text. The Reason sent to AWS, which the gateway
//! composes around it, has its own limit
//! (`gateway::reason::MAX_AWS_REASON_CHARS`).

use std::fmt;

use regex::Regex;

use crate::config::JustificationConfig;

/// Longest accepted justification, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A reason for access: trimmed, without control or invisible formatting
/// characters, at most [`MAX_REASON_CHARS`] characters. It may be empty
/// when the rule does not require one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    /// Checks `text` against the rules every reason follows, whatever the
    /// configuration (the configured pattern is [`Justification::check`]'s).
    pub fn new(text: &str) -> Result<Self, ReasonRefused> {
        let text = text.trim();
        if text.chars().any(char::is_control) {
            return Err(ReasonRefused::ControlCharacters);
        }
        if text.chars().any(crate::untrusted::is_invisible_format) {
            return Err(ReasonRefused::InvisibleCharacters);
        }
        let len = text.chars().count();
        if len > MAX_REASON_CHARS {
            return Err(ReasonRefused::TooLong { len });
        }
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a reason for access was refused. Texts are for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonRefused {
    /// None given, and one is required.
    #[error("a reason for access is required: {hint}")]
    Missing {
        /// What a good reason looks like.
        hint: String,
    },
    /// Control characters (escape sequences, line breaks inside).
    #[error("the reason must not contain control characters")]
    ControlCharacters,
    /// Bidi controls, zero-width characters and the like.
    #[error(
        "the reason must not contain invisible formatting characters (bidi controls, zero-width characters)"
    )]
    InvisibleCharacters,
    /// Longer than [`MAX_REASON_CHARS`].
    #[error("the reason is too long ({len} characters, at most {MAX_REASON_CHARS})")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// It does not match the configured pattern.
    #[error("the reason does not match the required format: {hint}")]
    NoMatch {
        /// What a good reason looks like.
        hint: String,
    },
}

/// The reason-for-access rule (`[justification]`).
#[derive(Debug, Clone)]
pub struct Justification {
    /// Regex the trimmed reason must match.
    pub regex: Regex,
    /// What a good reason looks like, shown when one is refused.
    pub hint: String,
    /// Whether a reason must be given at all.
    pub required: bool,
}

impl Justification {
    /// The rule from `[justification]`.
    pub fn from_config(cfg: &JustificationConfig) -> Self {
        Justification {
            regex: cfg.pattern.clone(),
            hint: cfg.hint.clone(),
            required: cfg.required,
        }
    }

    /// Checks a reason: [`Reason::new`]'s rules, then the regex. Returns the
    /// trimmed reason, or why it is refused (its text names the rule and
    /// hint, for the user). An empty reason is accepted (as `""`) only when
    /// none is required.
    pub fn check(&self, text: &str) -> Result<Reason, ReasonRefused> {
        if text.trim().is_empty() {
            return if self.required {
                Err(ReasonRefused::Missing { hint: self.hint() })
            } else {
                Ok(Reason(String::new()))
            };
        }
        let reason = Reason::new(text)?;
        if !self.regex.is_match(reason.as_str()) {
            return Err(ReasonRefused::NoMatch { hint: self.hint() });
        }
        Ok(reason)
    }

    fn hint(&self) -> String {
        if self.hint.is_empty() {
            format!("it must match {}", self.regex.as_str())
        } else {
            self.hint.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(required: bool, pattern: &str, hint: &str) -> Justification {
        Justification {
            regex: Regex::new(pattern).unwrap(),
            hint: hint.into(),
            required,
        }
    }

    #[test]
    fn justification() {
        let j = rule(
            true,
            "^(INC|CHG)-[0-9]+ .{3,}",
            "a ticket id and a few words",
        );
        assert_eq!(
            j.check("  INC-1234 disk full \n").unwrap().as_str(),
            "INC-1234 disk full"
        );
        let e = j.check("because").unwrap_err().to_string();
        assert!(
            e.contains("does not match") && e.contains("a ticket id"),
            "{e}"
        );
        let e = j.check("   ").unwrap_err().to_string();
        assert!(e.contains("required") && e.contains("a ticket id"), "{e}");
        let e = j.check("INC-1 disk\u{1b}[2J full").unwrap_err().to_string();
        assert!(e.contains("control characters"), "{e}");
        for hidden in [
            "INC-1 \u{202E}toor",
            "INC-1 fix\u{200B}",
            "\u{FEFF}INC-1 x",
            "INC-1 \u{2066}x\u{2069}",
        ] {
            let e = j.check(hidden).unwrap_err().to_string();
            assert!(e.contains("invisible formatting"), "{hidden:?}: {e}");
        }
        let long = format!("INC-1 {}", "x".repeat(200));
        let e = j.check(&long).unwrap_err().to_string();
        assert!(e.contains("too long (206 characters, at most 200)"), "{e}");
        let exactly = format!("INC-1 {}", "é".repeat(194));
        assert_eq!(j.check(&exactly).unwrap().as_str().chars().count(), 200);

        let optional = rule(false, ".{3,}", "");
        assert_eq!(optional.check(" ").unwrap().as_str(), "");
        let e = optional.check("ab").unwrap_err().to_string();
        assert!(e.contains("it must match .{3,}"), "{e}");

        let cfg = crate::config::Config::from_toml_str(
            "[justification]\nrequired = true\n[[users]]\nname = \"a\"\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let j = Justification::from_config(&cfg.justification);
        assert!(j.required);
        assert!(j.check("fixing the build").is_ok());
        assert!(j.check("no").is_err());
    }
}
