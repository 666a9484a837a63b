//! Which messages a reader wants, by tag: the filter a POP receive, a
//! pull and an HTTP read share, so that what one skips the others skip too.

use std::collections::BTreeSet;

use crate::error::{EngineError, Result};

/// Which tags a consumer wants: `*` (or empty) for all, else `a || b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    All,
    Tags(BTreeSet<String>),
}

impl TagFilter {
    pub fn parse(expression: &str) -> Result<Self> {
        let e = expression.trim();
        if e.is_empty() || e == "*" {
            return Ok(Self::All);
        }
        let tags: BTreeSet<String> = e.split("||").map(|t| t.trim().to_string()).collect();
        // A tag holds neither whitespace nor `|` (publishes refuse them), so
        // such a filter would match nothing and a receive with it would
        // pass over every message of the group: `a|b` is a typo for `a||b`.
        if tags
            .iter()
            .any(|t| t.is_empty() || t.contains(|c: char| c.is_whitespace() || c == '|'))
        {
            return Err(EngineError::InvalidArgument(format!(
                "tag expression {expression:?} is not `*` or tags joined by `||` \
                 (a tag holds no whitespace and no `|`)"
            )));
        }
        Ok(Self::Tags(tags))
    }

    pub fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Tags(set) => tag.is_some_and(|t| set.contains(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filters() {
        assert_eq!(TagFilter::parse("*").unwrap(), TagFilter::All);
        assert_eq!(TagFilter::parse("").unwrap(), TagFilter::All);
        let f = TagFilter::parse("a || b").unwrap();
        assert!(f.matches(Some("a")) && f.matches(Some("b")));
        assert!(!f.matches(Some("c")) && !f.matches(None));
        assert!(TagFilter::parse("a ||").is_err());
        assert!(TagFilter::parse("a b").is_err());
        assert!(TagFilter::parse("a|b").is_err(), "a typo for a||b");
        assert!(TagFilter::parse("a|||b").is_err());
        assert!(TagFilter::parse("a||b|").is_err());
        assert!(TagFilter::All.matches(None));
    }
}
