//! `toml-diagnostics`: TOML config loading shared by the gateway config
//! (`ssmgate.toml`) and the simulator's config, so that neither depends on
//! the other. [`TomlSource`] deserialises with serde and turns every problem
//! — syntax, type, unknown key, or a value the caller's validation refuses —
//! into a [`Diagnostic`] naming the file, line, column and key path, e.g.
//! `ssmgate.toml:7:6: users[1].name: must match ^[a-z_][a-z0-9_.-]{0,31}$`.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad TOML syntax, a wrong type, an unknown key, or a bad value.
    #[error("{0}")]
    Invalid(Diagnostic),
}

impl ConfigError {
    /// The diagnostic, unless this is an I/O error.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            ConfigError::Io { .. } => None,
        }
    }
}

/// What is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File name, or a description such as `sim config` for in-memory text.
    pub origin: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Key path such as `instances[1].id`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// TOML text being loaded, kept parsed so that errors found after
/// deserialisation (semantic validation) can still be located.
pub struct TomlSource<'a> {
    text: &'a str,
    origin: String,
    doc: Option<Spanned<DeTable<'a>>>,
}

impl<'a> TomlSource<'a> {
    /// Wraps `text`; `origin` is the file name shown in diagnostics.
    pub fn new(text: &'a str, origin: impl Into<String>) -> Self {
        TomlSource {
            text,
            origin: origin.into(),
            doc: DeTable::parse(text).ok(),
        }
    }

    /// Deserialises the whole document; syntax errors, wrong types and
    /// unknown keys come back located.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(self.text).map_err(|err| {
            let span = err.span();
            let path = match (&span, &self.doc) {
                (Some(span), Some(doc)) => {
                    path_at(&DeValue::Table(doc.get_ref().clone()), span.start).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            ConfigError::Invalid(Diagnostic {
                origin: self.origin.clone(),
                position: span.map(|s| line_col(self.text, s.start)),
                field: (!path.is_empty()).then(|| render_path(&path)),
                message: err.message().trim().to_owned(),
            })
        })
    }

    /// An error about the value at key path `field` (as rendered by the
    /// validators, e.g. `users[0].authorized_keys[2]`), located at that value
    /// or, failing that, its nearest present ancestor.
    pub fn error_at(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let field = field.into();
        let span = self
            .doc
            .as_ref()
            .and_then(|doc| span_of(doc, &parse_path(&field)));
        ConfigError::Invalid(Diagnostic {
            origin: self.origin.clone(),
            position: span.map(|s| line_col(self.text, s.start)),
            field: Some(field),
            message: message.into(),
        })
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !out.is_empty() {
                    out.push('.');
                }
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("\"{k}\""));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Parses a path rendered by the validators (`instances[1].ports."22"`).
fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('[') {
            let (n, r) = r.split_once(']').unwrap_or((r, ""));
            segs.push(Seg::Index(n.parse().unwrap_or(usize::MAX)));
            rest = r;
        } else if let Some(r) = rest.strip_prefix('"') {
            let (k, r) = r.split_once('"').unwrap_or((r, ""));
            segs.push(Seg::Key(k.to_owned()));
            rest = r;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segs.push(Seg::Key(rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    segs
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

/// The deepest key path whose key or value contains `offset`. Array
/// elements' spans may cover only their `[[header]]`, so every child is
/// searched, not just those whose span contains the offset.
fn path_at(value: &DeValue<'_>, offset: usize) -> Option<Vec<Seg>> {
    let descend = |seg: Seg, child: &Spanned<DeValue<'_>>, here: bool| {
        if let Some(mut rest) = path_at(child.get_ref(), offset) {
            rest.insert(0, seg);
            Some(rest)
        } else if here || child.span().contains(&offset) {
            Some(vec![seg])
        } else {
            None
        }
    };
    match value {
        DeValue::Table(table) => table.iter().find_map(|(key, child)| {
            let seg = Seg::Key(key.get_ref().to_string());
            descend(seg, child, key.span().contains(&offset))
        }),
        DeValue::Array(array) => array
            .iter()
            .enumerate()
            .find_map(|(i, child)| descend(Seg::Index(i), child, false)),
        _ => None,
    }
}

/// The span of the value (or, failing that, the nearest ancestor) at `path`.
fn span_of(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best = None;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    for seg in path {
        let next = match (seg, table, current) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(_, v)| v),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        current = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let segs = vec![
            Seg::Key("users".into()),
            Seg::Index(3),
            Seg::Key("a b".into()),
        ];
        let rendered = render_path(&segs);
        assert_eq!(rendered, "users[3].\"a b\"");
        assert_eq!(parse_path(&rendered), segs);
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("a = 1\nbb = 2\n", 8), (2, 3));
        assert_eq!(line_col("", 5), (1, 1));
    }

    #[test]
    fn error_at_falls_back_to_the_nearest_ancestor() {
        let src = TomlSource::new("[server]\nlisten = \"x\"\n", "t.toml");
        let e = src.error_at("server.missing", "nope");
        let d = e.diagnostic().unwrap();
        assert_eq!(d.position.map(|p| p.0), Some(1));
        assert_eq!(d.to_string(), "t.toml:1:1: server.missing: nope");
    }
}
