//! The SSH user name: `ssh alice+web-1@gateway` logs in as `alice` and asks
//! for target `web-1`; `ssh alice@gateway` has no target (the picker).
//! Parsing is strict so that nothing odd reaches logs, policies or AWS.

use std::fmt;

use crate::config::is_valid_user_name;
use crate::request::target::{TargetError, TargetSpec};
use crate::untrusted::bounded;

/// A parsed SSH login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The gateway user (`alice`).
    pub user: String,
    /// The requested target (`web-1`, `i-0123…`), if any.
    pub target: Option<TargetSpec>,
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(target) => write!(f, "{}+{target}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// Why a login name was refused. Texts are safe to show to the client:
/// they quote the offending input with control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Nothing before the `+` (or an empty login).
    #[error("empty user name (use USER or USER+TARGET)")]
    EmptyUser,
    /// The user part is not a valid user name (kept escaped and bounded).
    #[error("invalid user name \"{0}\": must match ^[a-z_][a-z0-9_.-]{{0,31}}$")]
    BadUser(String),
    /// The target part is not a valid target.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// Splits `USER[+TARGET]` at the first `+` and validates both parts.
pub fn parse_login(raw: &str) -> Result<Login, LoginError> {
    let (user, target) = match raw.split_once('+') {
        Some((user, target)) => (user, Some(target)),
        None => (raw, None),
    };
    if user.is_empty() {
        return Err(LoginError::EmptyUser);
    }
    if !is_valid_user_name(user) {
        return Err(LoginError::BadUser(bounded(user)));
    }
    let target = match target {
        None => None,
        Some(target) => Some(TargetSpec::parse(target)?),
    };
    Ok(Login {
        user: user.to_owned(),
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Login {
        parse_login(raw).unwrap()
    }

    #[test]
    fn user_only_and_user_plus_target() {
        assert_eq!(
            ok("alice"),
            Login {
                user: "alice".into(),
                target: None
            }
        );
        let l = ok("alice+web-1");
        assert_eq!(l.user, "alice");
        assert_eq!(l.target.as_ref().map(TargetSpec::as_str), Some("web-1"));
        assert_eq!(l.to_string(), "alice+web-1");
        assert_eq!(
            ok("bob.smith+i-0123456789abcdef0")
                .target
                .as_ref()
                .map(TargetSpec::as_str),
            Some("i-0123456789abcdef0")
        );
        assert_eq!(
            ok("_svc+ip-10-0-0-1.ec2.internal")
                .target
                .as_ref()
                .map(TargetSpec::as_str),
            Some("ip-10-0-0-1.ec2.internal")
        );
        assert_eq!(
            ok("a+::1").target.as_ref().map(TargetSpec::as_str),
            Some("::1")
        );
        let max = "t".repeat(255);
        assert_eq!(ok(&format!("a+{max}")).target.unwrap().as_str().len(), 255);
    }

    #[test]
    fn errors() {
        assert_eq!(parse_login(""), Err(LoginError::EmptyUser));
        assert_eq!(parse_login("+web"), Err(LoginError::EmptyUser));
        assert_eq!(
            parse_login("alice+"),
            Err(LoginError::Target(TargetError::Empty))
        );
        assert_eq!(
            parse_login("Alice+web"),
            Err(LoginError::BadUser("Alice".into()))
        );
        assert_eq!(
            parse_login(&format!("a+{}", "t".repeat(256))),
            Err(LoginError::Target(TargetError::TooLong(256)))
        );
        // Account and region qualify a target; empty parts don't.
        assert!(parse_login("alice+prod/eu-west-1/web-1").is_ok());
        assert!(matches!(
            parse_login("alice+prod//web-1"),
            Err(LoginError::Target(TargetError::BadQualifier(_)))
        ));
        // Only the first '+' splits; a second one is part of the target.
        assert_eq!(
            parse_login("alice+web+1"),
            Err(LoginError::Target(TargetError::BadCharacter {
                target: "web+1".into(),
                bad: '+'
            }))
        );
        for bad in [
            "a+web 1",
            "a+web\n",
            "a+we\u{1b}b",
            "a+wéb",
            "a+web\\1",
            "a+web@x",
        ] {
            assert!(
                matches!(
                    parse_login(bad),
                    Err(LoginError::Target(TargetError::BadCharacter { .. }))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn huge_names_are_bounded_in_errors() {
        let e = parse_login(&"A".repeat(64 * 1024)).unwrap_err().to_string();
        assert!(e.len() < 400, "{}", e.len());
        let e = parse_login(&format!("a+web\n{}", "x".repeat(200)))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 400 && !e.contains('\n'), "{e}");
    }

    #[test]
    fn messages_escape_control_characters() {
        let e = parse_login("a+x\u{7}y").unwrap_err().to_string();
        assert!(e.contains("\\u{7}"), "{e}");
        assert!(!e.contains('\u{7}'));
        let e = parse_login("Al\nice").unwrap_err().to_string();
        assert!(e.contains("\"Al\\nice\"") && !e.contains('\n'), "{e}");
        assert!(
            parse_login("alice+")
                .unwrap_err()
                .to_string()
                .contains("alice+web-1")
        );
    }
}
