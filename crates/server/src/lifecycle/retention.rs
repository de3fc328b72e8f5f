//! Retention (`[[retention]]`): which tags of a repository stay; the others are removed by
//! the next collection, then the manifests left untagged, then their blobs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use wharf_auth::Pattern;

use crate::units::parse_duration;

/// A `[[retention]]` table of the config file.
///
/// ```toml
/// [[retention]]
/// repositories = ["ci/**"]      # patterns, as in [[access]]
/// keep_last = 10                # the most recently pushed tags
/// keep_tags = ["v*", "latest"]  # globs: `*` matches any run of characters
/// keep_pushed_within = "30d"
/// keep_pulled_within = "7d"
/// delete_untagged = true        # the default under a retention rule
/// ```
/// A tag is kept when any `keep_*` keeps it; the first rule whose pattern matches a
/// repository is the one that applies.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionConfig {
    /// Repository patterns.
    pub repositories: Vec<String>,
    /// Keep the N most recently pushed tags.
    #[serde(default)]
    pub keep_last: Option<usize>,
    /// Keep tags matching these globs.
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// Keep tags pushed within this long (`30d`, `12h`).
    #[serde(default)]
    pub keep_pushed_within: Option<String>,
    /// Keep tags pulled within this long.
    #[serde(default)]
    pub keep_pulled_within: Option<String>,
    /// Remove the manifests left without a tag (default `true` under a rule).
    #[serde(default)]
    pub delete_untagged: Option<bool>,
}

/// A parsed rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    patterns: Vec<Pattern>,
    keep_last: Option<usize>,
    keep_tags: Vec<String>,
    pushed_within: Option<Duration>,
    pulled_within: Option<Duration>,
    pub(crate) delete_untagged: bool,
}

/// A tag as retention sees it.
#[derive(Clone, Debug)]
pub(crate) struct TagAge {
    pub(crate) name: String,
    /// Unix seconds; `None` for records of older versions (counted as long ago).
    pub(crate) pushed: Option<u64>,
    pub(crate) pulled: Option<u64>,
}

impl Rule {
    pub(crate) fn from_config(config: &RetentionConfig) -> Result<Self, String> {
        let patterns = Pattern::parse_list(&config.repositories)?;
        let within = |key: &str, v: &Option<String>| {
            v.as_deref().map(|s| parse_duration(s).map_err(|e| format!("{key}: {e}"))).transpose()
        };
        let rule = Self {
            patterns,
            keep_last: config.keep_last,
            keep_tags: config.keep_tags.clone(),
            pushed_within: within("keep_pushed_within", &config.keep_pushed_within)?,
            pulled_within: within("keep_pulled_within", &config.keep_pulled_within)?,
            delete_untagged: config.delete_untagged.unwrap_or(true),
        };
        if rule.keep_last.is_none()
            && rule.keep_tags.is_empty()
            && rule.pushed_within.is_none()
            && rule.pulled_within.is_none()
        {
            return Err("a rule must keep something: set keep_last, keep_tags, keep_pushed_within or \
                        keep_pulled_within"
                .into());
        }
        Ok(rule)
    }

    pub(crate) fn counts_pulls(&self) -> bool {
        self.pulled_within.is_some()
    }

    pub(crate) fn matches(&self, repository: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(repository))
    }

    /// The tags this rule removes, of `tags`, at `now` (unix seconds).
    pub(crate) fn removed(&self, tags: &[TagAge], now: u64) -> BTreeSet<String> {
        let mut kept = BTreeSet::new();
        if let Some(n) = self.keep_last {
            let mut newest: Vec<&TagAge> = tags.iter().collect();
            newest
                .sort_by(|a, b| b.pushed.unwrap_or(0).cmp(&a.pushed.unwrap_or(0)).then(a.name.cmp(&b.name)));
            kept.extend(newest.into_iter().take(n).map(|t| t.name.clone()));
        }
        let recent = |at: Option<u64>, within: Option<Duration>| {
            within.is_some_and(|w| at.is_some_and(|t| now.saturating_sub(t) <= w.as_secs()))
        };
        for tag in tags {
            if self.keep_tags.iter().any(|g| glob(g, &tag.name))
                || recent(tag.pushed, self.pushed_within)
                || recent(tag.pulled, self.pulled_within)
            {
                kept.insert(tag.name.clone());
            }
        }
        tags.iter().filter(|t| !kept.contains(&t.name)).map(|t| t.name.clone()).collect()
    }
}

/// `*` matches any run of characters; everything else itself (the glob of repository
/// patterns).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    wharf_auth::glob(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("v*", "v1.2"));
        assert!(glob("*", ""));
        assert!(glob("release-*", "release-10"));
        assert!(!glob("release-?", "release-1"), "`?` is itself");
        assert!(glob("*-rc*", "1.0-rc2"));
        assert!(!glob("v*", "latest"));
        assert!(glob("latest", "latest"));
        // A `*` in the pattern is a wildcard even where the text holds a `*` (a fuzzing find).
        assert!(glob("*", "*v1.2>2"));
        assert!(glob("a*c", "a*bc"));
    }

    #[test]
    fn rules_keep_the_union() {
        let rule = Rule::from_config(&RetentionConfig {
            repositories: vec!["ci/**".into()],
            keep_last: Some(2),
            keep_tags: vec!["v*".into()],
            keep_pushed_within: Some("1h".into()),
            keep_pulled_within: Some("1d".into()),
            ..RetentionConfig::default()
        })
        .expect("rule");
        let now = 1_000_000;
        let tag = |name: &str, pushed: u64, pulled: Option<u64>| TagAge {
            name: name.into(),
            pushed: Some(now - pushed),
            pulled: pulled.map(|p| now - p),
        };
        let tags = vec![
            tag("a", 10, None),         // newest, and within the hour
            tag("b", 5_000, None),      // second newest
            tag("c", 9_000, None),      // removed
            tag("v1", 90_000, None),    // by name
            tag("d", 80_000, Some(60)), // pulled a minute ago
            tag("e", 70_000, Some(200_000)),
        ];
        assert_eq!(rule.removed(&tags, now), ["c", "e"].into_iter().map(String::from).collect());
        assert!(rule.matches("ci/app") && !rule.matches("prod/app"));
        assert!(
            Rule::from_config(&RetentionConfig { repositories: vec!["x".into()], ..Default::default() })
                .is_err()
        );
    }
}
