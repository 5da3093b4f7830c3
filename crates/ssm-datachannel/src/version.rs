//! Version comparisons that decide port-forwarding modes (spec §7.4).
//!
//! The plugin and the agent compare versions differently, and both sides
//! pick their mode from the *peer's* version, so each rule is kept apart.

use std::cmp::Ordering;

/// The plugin's rule: dot-separated numeric parts, the same number of parts
/// on both sides, strictly greater. Anything else is "not greater".
pub fn plugin_greater(version: &str, than: &str) -> bool {
    let (Some(a), Some(b)) = (numeric_parts(version), numeric_parts(than)) else {
        return false;
    };
    a.len() == b.len() && a > b
}

/// The agent's rule: part by part, numerically where both parts are numbers,
/// as text otherwise; a version with fewer parts is smaller when all shared
/// parts are equal.
pub fn agent_compare(a: &str, b: &str) -> Ordering {
    let mut left = a.trim().split('.');
    let mut right = b.trim().split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn numeric_parts(v: &str) -> Option<Vec<u64>> {
    v.trim().split('.').map(|p| p.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_rule_needs_same_shape_and_strictly_greater() {
        assert!(plugin_greater("3.3.987.0", "3.0.196.0"));
        assert!(!plugin_greater("3.0.196.0", "3.0.196.0"));
        assert!(!plugin_greater("3.3.987", "3.0.196.0"));
        assert!(!plugin_greater("latest", "3.0.196.0"));
        assert!(plugin_greater("3.10.0.0", "3.9.0.0"));
    }

    #[test]
    fn agent_rule_orders_mixed_versions() {
        assert_eq!(agent_compare("1.2.677.0", "1.1.70"), Ordering::Greater);
        assert_eq!(agent_compare("1.1.70", "1.1.70"), Ordering::Equal);
        assert_eq!(agent_compare("1.1", "1.1.70"), Ordering::Less);
        assert_eq!(agent_compare("1.1.69.9", "1.1.70"), Ordering::Less);
    }
}
