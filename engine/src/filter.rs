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
        if tags
            .iter()
            .any(|t| t.is_empty() || t.contains(char::is_whitespace))
        {
            return Err(EngineError::InvalidArgument(format!(
                "tag expression {expression:?} is not `*` or tags joined by `||`"
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
        assert!(TagFilter::All.matches(None));
    }
}
