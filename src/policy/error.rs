//! Errors of the policy engine: why a policy directory was not loaded, each
//! problem located by file, line, column and policy id
//! (`policies/prod.cedar:12:5: policy prod-needs-ticket: …`).

use std::fmt;
use std::path::{Path, PathBuf};

use miette::Diagnostic;

/// One thing wrong with a policy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (characters), when known.
    pub column: Option<usize>,
    /// The policy at fault, when there is one.
    pub policy: Option<String>,
    /// What is wrong (with Cedar's help text, if any).
    pub message: String,
}

impl Problem {
    /// A problem with a whole file.
    pub fn in_file(file: &Path, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_owned(),
            line: None,
            column: None,
            policy: None,
            message: message.into(),
        }
    }

    /// A problem at byte `offset` of `text` (the contents of `file`).
    pub fn at(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        Problem {
            file: file.to_owned(),
            line: Some(line),
            column: Some(column),
            policy: None,
            message: message.into(),
        }
    }

    /// Names the policy at fault.
    pub fn with_policy(mut self, id: impl Into<String>) -> Self {
        self.policy = Some(id.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(id) = &self.policy {
            write!(f, "policy {id}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy directory could not be loaded (the previous set, if any,
/// stays in force).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or the directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Parse, validation or schema problems, each located.
    #[error("{}", render(problems))]
    Invalid {
        /// Every problem found (at least one).
        problems: Vec<Problem>,
    },
}

impl PolicyError {
    /// The located problems (empty for I/O errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid { problems } => problems,
            PolicyError::Io { .. } => &[],
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}

/// 1-based (line, column in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A Cedar diagnostic as one line: its message, then its help.
pub fn describe(diag: &dyn Diagnostic) -> String {
    let mut msg = diag.to_string();
    if let Some(help) = diag.help() {
        msg.push_str(" (");
        msg.push_str(&help.to_string());
        msg.push(')');
    }
    msg
}

/// Byte offset of a diagnostic's first label, if it has one.
pub fn first_offset(diag: &dyn Diagnostic) -> Option<usize> {
    diag.labels()
        .and_then(|mut labels| labels.next())
        .map(|l| l.offset())
}

/// A diagnostic about `file` (whose contents are `text`) as a problem,
/// located when it carries a label.
pub fn problem_from(file: &Path, text: &str, diag: &dyn Diagnostic) -> Problem {
    let message = describe(diag);
    match first_offset(diag) {
        Some(offset) => Problem::at(file, text, offset, message),
        None => Problem::in_file(file, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let text = "ab\ncdé\nfg";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 7), (2, 4));
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 99), (3, 3));
        // Inside a multi-byte character: rounds down.
        assert_eq!(line_col(text, 6), (2, 3));
    }

    #[test]
    fn problems_render_with_location_and_policy() {
        let p = Problem::at(Path::new("p/x.cedar"), "a\nbc", 3, "bad").with_policy("x#1");
        assert_eq!(p.to_string(), "p/x.cedar:2:2: policy x#1: bad");
        let e = PolicyError::Invalid {
            problems: vec![p, Problem::in_file(Path::new("p/s"), "worse")],
        };
        assert_eq!(e.to_string(), "p/x.cedar:2:2: policy x#1: bad\np/s: worse");
    }
}
