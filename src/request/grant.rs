//! Reason grants and where a channel's reason came from.
//!
//! A grant is a reason given once, for a while, for the channels that
//! cannot carry their own: `ssh alice@gw reason 'INC-123 deploy' --for 2h
//! --target 'web-*'`. Forwards (`-J`, `-W`, `-L`, `-D`) carry no
//! environment and open after authentication, so without a prompt at login
//! a grant is their only way to a reason; scripts use them for session
//! channels too. This module holds the pure parts: the `reason` command's
//! grammar ([`GrantCommand::parse`]), target patterns and durations. Storing
//! grants is the recording store's job; using them is the SSH layer's.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use super::action::Action;
use super::target::MAX_TARGET_LEN;

/// Where the reason of a channel came from; policies see it as
/// `context.reason_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonSource {
    /// Typed at a prompt: keyboard-interactive at login, or on the
    /// session's terminal.
    Prompt,
    /// `SetEnv SSMGATE_REASON` on the session channel.
    Env,
    /// A live reason grant (its id).
    Grant(Uuid),
    /// No reason.
    None,
}

impl ReasonSource {
    /// `prompt`, `env`, `grant` or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReasonSource::Prompt => "prompt",
            ReasonSource::Env => "env",
            ReasonSource::Grant(_) => "grant",
            ReasonSource::None => "none",
        }
    }

    /// The grant's id, when the reason came from one.
    pub fn grant_id(&self) -> Option<Uuid> {
        match self {
            ReasonSource::Grant(id) => Some(*id),
            _ => None,
        }
    }
}

/// A pattern of target names for a grant: the characters of a target,
/// plus `*` (any run) and `?` (any one character); compared without
/// regard to ASCII case, as target names are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern(String);

impl TargetPattern {
    /// Checks a pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("--target needs a pattern, e.g. --target 'web-*'".into());
        }
        if text.len() > MAX_TARGET_LEN {
            return Err(format!(
                "the --target pattern is too long (at most {MAX_TARGET_LEN} characters)"
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.:/*?".contains(*c)))
        {
            return Err(format!(
                "the --target pattern may not contain {:?} (letters, digits, - _ . : / and the wildcards * ?)",
                bad
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        wildcard(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for TargetPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*`/`?` matching, ASCII case-insensitive, linear in practice
/// (backtracks to the last `*` only).
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// How `user` can give a reason on a channel for `action`, in words
/// that work there: SetEnv reaches session channels only; forwards
/// (`-J`, `-W`, `-L`, `-D`) open after login and carry no environment,
/// so a grant (or the login's prompt, when the client asks for it first)
/// is their way. ASCII only: forward refusals travel in SSH protocol
/// messages.
pub fn reason_advice(action: Action, user: &str) -> String {
    match action {
        Action::Shell | Action::Exec => format!(
            "pass it with the command: ssh -o 'SetEnv=SSMGATE_REASON=\"INC-123 why\"' ..., or grant one first: ssh {user}@GATEWAY reason 'INC-123 why' --for 1h"
        ),
        Action::PortForward | Action::Ssh => format!(
            "grant one first: ssh {user}@GATEWAY reason 'INC-123 why' --for 1h (-J, -W, -L and -D carry no SetEnv), or be asked at login: ssh -o PreferredAuthentications=keyboard-interactive,publickey ..."
        ),
    }
}

/// What `ssh USER@GATEWAY reason …` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantCommand {
    /// `reason`: list the live grants.
    List,
    /// `reason TEXT [--for DURATION] [--target PATTERN]`.
    Grant {
        /// The reason (checked against the justification rule later).
        text: String,
        /// How long; the configured default when absent.
        duration: Option<Duration>,
        /// Which targets; all when absent.
        target: Option<TargetPattern>,
    },
    /// `reason --revoke [ID]`: one grant (by id or the start of it), or
    /// all of the user's live grants.
    Revoke {
        /// The id or its first characters.
        id: Option<String>,
    },
    /// `reason --help`.
    Help,
}

/// The usage text of the `reason` command.
pub const GRANT_USAGE: &str = "\
usage: ssh USER@GATEWAY reason                      list your live reason grants
       ssh USER@GATEWAY reason TEXT [--for DURATION] [--target PATTERN]
                                                   grant TEXT as your reason for access to
                                                   PATTERN's targets (all when absent), for
                                                   DURATION (e.g. 30m, 2h, 1h30m)
       ssh USER@GATEWAY reason --revoke [ID]         end one grant, or all of yours
A grant gives a reason to the connections that carry none of their own:
ssh -J, -W, -L, -D, and commands without SetEnv SSMGATE_REASON.
";

impl GrantCommand {
    /// Parses an exec command. `None` when it is not the `reason` command;
    /// otherwise the command or why it is malformed.
    pub fn parse(command: &str) -> Option<Result<GrantCommand, String>> {
        let words = shlex::split(command).unwrap_or_else(|| {
            // An unbalanced quote: take the words as they are.
            command.split_whitespace().map(str::to_owned).collect()
        });
        let (first, rest) = words.split_first()?;
        if first != "reason" {
            return None;
        }
        Some(Self::parse_args(rest))
    }

    fn parse_args(args: &[String]) -> Result<GrantCommand, String> {
        let mut text: Vec<&str> = Vec::new();
        let mut duration = None;
        let mut target = None;
        let mut revoke = false;
        let mut revoke_id = None;
        let mut options = true;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--" if options => options = false,
                "--help" | "-h" if options => return Ok(GrantCommand::Help),
                "--for" if options => {
                    let value = it.next().ok_or("--for needs a duration, e.g. --for 2h")?;
                    duration = Some(parse_duration(value)?);
                }
                "--target" if options => {
                    let value = it.next().ok_or("--target needs a pattern")?;
                    target = Some(TargetPattern::parse(value)?);
                }
                "--revoke" if options => revoke = true,
                s if options && s.starts_with("--") => {
                    if let Some(v) = s.strip_prefix("--for=") {
                        duration = Some(parse_duration(v)?);
                    } else if let Some(v) = s.strip_prefix("--target=") {
                        target = Some(TargetPattern::parse(v)?);
                    } else {
                        return Err(format!("unknown option {}", crate::untrusted::bounded(s)));
                    }
                }
                word if revoke && revoke_id.is_none() && text.is_empty() => {
                    revoke_id = Some(word.to_owned());
                }
                word => text.push(word),
            }
        }
        if revoke {
            if !text.is_empty() || duration.is_some() || target.is_some() {
                return Err("--revoke takes only a grant id".into());
            }
            return Ok(GrantCommand::Revoke { id: revoke_id });
        }
        if text.is_empty() {
            if duration.is_some() || target.is_some() {
                return Err("give the reason itself: reason 'INC-123 why' --for 2h".into());
            }
            return Ok(GrantCommand::List);
        }
        Ok(GrantCommand::Grant {
            text: text.join(" "),
            duration,
            target,
        })
    }
}

/// `90s`, `30m`, `2h`, `1d`, `1h30m`; a bare number is minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "not a duration: {:?} (e.g. 30m, 2h, 1h30m)",
            crate::untrusted::bounded(text)
        )
    };
    if text.is_empty() || text.len() > 20 {
        return Err(bad());
    }
    if let Ok(minutes) = text.parse::<u64>() {
        return Ok(Duration::from_secs(minutes.saturating_mul(60)));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `2h`, `1h30m`, `45m`, `30s`: a duration as the grant listing shows it.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if out.is_empty() || (h == 0 && s > 0 && m < 5) {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(command: &str) -> Result<GrantCommand, String> {
        GrantCommand::parse(command).expect("a reason command")
    }

    #[test]
    fn commands() {
        assert_eq!(GrantCommand::parse("uptime"), None);
        assert_eq!(GrantCommand::parse(""), None);
        assert_eq!(GrantCommand::parse("reasons"), None);
        assert_eq!(parse("reason"), Ok(GrantCommand::List));
        assert_eq!(parse("reason --help"), Ok(GrantCommand::Help));
        // OpenSSH joins the words: the quotes are gone by the time we see them.
        assert_eq!(
            parse("reason INC-123 deploy web --for 2h --target web-*"),
            Ok(GrantCommand::Grant {
                text: "INC-123 deploy web".into(),
                duration: Some(Duration::from_secs(7200)),
                target: Some(TargetPattern::parse("web-*").unwrap()),
            })
        );
        // Or kept, when quoted twice.
        assert_eq!(
            parse("reason 'INC-1 a  b' --for=90m"),
            Ok(GrantCommand::Grant {
                text: "INC-1 a  b".into(),
                duration: Some(Duration::from_secs(5400)),
                target: None,
            })
        );
        assert_eq!(
            parse("reason -- --not-an-option x"),
            Ok(GrantCommand::Grant {
                text: "--not-an-option x".into(),
                duration: None,
                target: None
            })
        );
        assert_eq!(
            parse("reason --revoke"),
            Ok(GrantCommand::Revoke { id: None })
        );
        assert_eq!(
            parse("reason --revoke 1a2b3c4d"),
            Ok(GrantCommand::Revoke {
                id: Some("1a2b3c4d".into())
            })
        );
        for bad in [
            "reason x --for",
            "reason x --for soon",
            "reason x --target",
            "reason x --target 'a b'",
            "reason x --bogus",
            "reason --revoke a b",
            "reason --revoke x --for 2h",
            "reason --for 2h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("reason x --bogus\u{1b}[2J").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(900)));
        for bad in [
            "",
            "h",
            "2x",
            "1h3",
            "-1h",
            "2 h",
            "99999999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m5s");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
    }

    #[test]
    fn patterns() {
        let p = TargetPattern::parse("web-*").unwrap();
        assert!(p.matches("web-1") && p.matches("WEB-12") && p.matches("web-"));
        assert!(!p.matches("db-1") && !p.matches("xweb-1"));
        let p = TargetPattern::parse("i-0?b*").unwrap();
        assert!(p.matches("i-0ab123") && !p.matches("i-0a"));
        let p = TargetPattern::parse("*prod*db*").unwrap();
        assert!(p.matches("eu-prod-main-db-2") && !p.matches("eu-prod-main"));
        assert!(
            TargetPattern::parse("prod/web-*")
                .unwrap()
                .matches("prod/web-3")
        );
        assert!(TargetPattern::parse("").is_err());
        assert!(TargetPattern::parse("web 1").is_err());
        assert!(TargetPattern::parse(&"a".repeat(300)).is_err());
        // Many stars stay fast.
        let p = TargetPattern::parse(&"*a".repeat(100)).unwrap();
        assert!(!p.matches(&"a".repeat(99)));
    }
}
