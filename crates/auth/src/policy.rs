//! Who may do what: actions on repositories by pattern, for users, groups and anonymous.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One thing a caller may do to a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read manifests, blobs, tags, referrers; see the repository in listings; mount from it.
    Pull,
    /// Upload blobs, push manifests, move tags.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
    /// Registry administration (`/metrics`, admin endpoints) when held on `**`.
    Admin,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 4] = [Self::Pull, Self::Push, Self::Delete, Self::Admin];

    /// Its name in scopes and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
            Self::Admin => "admin",
        }
    }

    /// Parses `pull`, `push`, `delete` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of actions.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Self = Self(0);
    /// Every action.
    pub const ALL: Self = Self(0b1111);

    fn bit(a: Action) -> u8 {
        1 << (a as u8)
    }

    /// The set holding `actions`.
    pub fn of(actions: &[Action]) -> Self {
        Self(actions.iter().fold(0, |m, a| m | Self::bit(*a)))
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & Self::bit(a) != 0
    }

    /// The union.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The actions in both sets.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether every action of `other` is in the set.
    pub fn contains_all(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions, in [`Action::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

/// A set of actions is written as the list of their names (`["pull", "push"]`).
impl Serialize for Actions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Actions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Self::of(&Vec::<Action>::deserialize(d)?))
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Action::as_str)).finish()
    }
}

/// A repository pattern: components separated by `/`; `**` (a whole component) matches one
/// or more components, `*` inside a component matches any characters but `/`.
///
/// ```
/// use wharf_auth::Pattern;
/// let p: Pattern = "team/**".parse()?;
/// assert!(p.matches("team/app") && p.matches("team/a/b"));
/// assert!(!p.matches("team") && !p.matches("teams/app"));
/// let p: Pattern = "*/cache-*".parse()?;
/// assert!(p.matches("org/cache-x") && !p.matches("org/sub/cache-x"));
/// # Ok::<(), wharf_auth::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    AnyDepth,
    Glob(String),
}

impl std::str::FromStr for Pattern {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |message| Error::Pattern { pattern: wharf_types::error::Input::new(s), message };
        if s.is_empty() || s.len() > 512 {
            return Err(bad("a pattern is 1 to 512 characters"));
        }
        let mut parts = Vec::new();
        for component in s.split('/') {
            if component.is_empty() {
                return Err(bad("empty component"));
            }
            if component == "**" {
                if parts.last() == Some(&Part::AnyDepth) {
                    return Err(bad("`**/**` is `**`"));
                }
                parts.push(Part::AnyDepth);
            } else if component.contains("**") {
                return Err(bad("`**` must be a whole component"));
            } else if component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-*".contains(c))
            {
                parts.push(Part::Glob(component.to_owned()));
            } else {
                return Err(bad("components are lowercase letters, digits, `._-` and `*`"));
            }
        }
        if parts.iter().filter(|p| **p == Part::AnyDepth).count() > 2 {
            return Err(bad("at most two `**` components"));
        }
        Ok(Self { text: s.to_owned(), parts })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A pattern is written as its text.
impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Pattern {
    /// A config table's `repositories`: at least one pattern, each valid; the error names
    /// the one that is not.
    pub fn parse_list(list: &[String]) -> Result<Vec<Self>, String> {
        if list.is_empty() {
            return Err("`repositories` must name at least one pattern".into());
        }
        list.iter().map(|p| p.parse().map_err(|e| format!("repository pattern `{p}`: {e}"))).collect()
    }

    /// Whether `repository` matches.
    pub fn matches(&self, repository: &str) -> bool {
        let components: Vec<&str> = repository.split('/').collect();
        match_parts(&self.parts, &components)
    }

    /// Whether this is `**`: every repository.
    pub fn is_everything(&self) -> bool {
        self.parts == [Part::AnyDepth]
    }

    /// Whether every repository `other` matches, this matches too (so rights held over this
    /// pattern hold over all of `other`'s). Sound, not complete: `true` is always right; a
    /// `false` may be too cautious for patterns that only overlap in exotic ways.
    ///
    /// ```
    /// use wharf_auth::Pattern;
    /// let p = |s: &str| s.parse::<Pattern>().expect("a pattern");
    /// assert!(p("team/**").covers(&p("team/app")) && p("team/**").covers(&p("team/*/x*")));
    /// assert!(p("*/app-*").covers(&p("ci/app-web")) && p("**").covers(&p("a/**")));
    /// assert!(!p("team/*").covers(&p("team/**")) && !p("team/app").covers(&p("team/*")));
    /// ```
    pub fn covers(&self, other: &Pattern) -> bool {
        cover_parts(&self.parts, &other.parts)
    }
}

/// Whether `outer` matches every name `inner` matches: `**` of `outer` takes one or more of
/// `inner`'s parts (whatever they are); a glob takes one glob it matches as text (its `*`s
/// only by `*`s: `glob` lets a pattern's `*` match a text's `*`, and a text's `*` matches
/// nothing else); a glob never takes `**`.
fn cover_parts(outer: &[Part], inner: &[Part]) -> bool {
    match (outer.split_first(), inner.split_first()) {
        (None, None) => true,
        (Some((Part::AnyDepth, rest)), _) => {
            (1..=inner.len()).any(|taken| cover_parts(rest, &inner[taken..]))
        }
        (Some((Part::Glob(g), rest)), Some((Part::Glob(h), more))) => {
            glob(g.as_bytes(), h.as_bytes()) && cover_parts(rest, more)
        }
        // Nothing left for a part, or a part left over; a glob against `**`.
        _ => false,
    }
}

fn match_parts(parts: &[Part], components: &[&str]) -> bool {
    match parts.split_first() {
        None => components.is_empty(),
        Some((Part::AnyDepth, rest)) => {
            (1..=components.len()).any(|taken| match_parts(rest, &components[taken..]))
        }
        Some((Part::Glob(g), rest)) => components
            .split_first()
            .is_some_and(|(c, more)| glob(g.as_bytes(), c.as_bytes()) && match_parts(rest, more)),
    }
}

/// `*` matches any run of bytes; everything else matches itself. Iterative, linear-ish. Used
/// for the components of repository patterns, and by other tools for names such as tags.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && pattern[p] != b'*' && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A user of the htpasswd file, a client certificate's subject, or a token's subject.
    User(String),
    /// The subject of an external issuer's token that is not mapped onto local users: its
    /// token's grants decide; the policy treats it as anonymous (no user's or group's
    /// rights, no administration).
    External(String),
    /// A robot account, by the user name it signs in with (`robot$<name>`): its grants
    /// decide, within the rights of the administrator who made it.
    Robot(String),
}

impl Identity {
    /// The user name it signs in with (a robot's `robot$<name>`), or `-` for anonymous
    /// (what logs show).
    pub fn name(&self) -> &str {
        match self {
            Self::Anonymous => "-",
            Self::User(u) | Self::External(u) | Self::Robot(u) => u,
        }
    }
}

/// One `[[access]]` rule: repositories, and the actions it grants to whom.
#[derive(Clone, Debug, Default)]
pub struct Rule {
    /// The repositories it covers.
    pub repositories: Vec<Pattern>,
    /// Actions for callers without credentials.
    pub anonymous: Actions,
    /// Actions by user.
    pub users: BTreeMap<String, Actions>,
    /// Actions by group.
    pub groups: BTreeMap<String, Actions>,
}

/// The access rules and the groups; a caller's actions on a repository are the union of every
/// rule that matches it. Anonymous is a caller too: what a rule grants `anonymous` it grants
/// everyone.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    /// Groups by user.
    memberships: BTreeMap<String, BTreeSet<String>>,
}

impl Policy {
    /// A policy of `rules`, with `groups` (members by group name).
    pub fn new(rules: Vec<Rule>, groups: &BTreeMap<String, Vec<String>>) -> Self {
        let mut memberships: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (group, members) in groups {
            for m in members {
                memberships.entry(m.clone()).or_default().insert(group.clone());
            }
        }
        Self { rules, memberships }
    }

    /// The policy of a registry without rules: every authenticated user may do everything,
    /// anonymous nothing (what distribution does with htpasswd).
    pub fn authenticated_all() -> Self {
        let rule = Rule {
            repositories: vec!["**".parse().expect("a valid pattern")],
            groups: BTreeMap::from([(ALL_USERS.to_owned(), Actions::ALL)]),
            ..Rule::default()
        };
        Self { rules: vec![rule], memberships: BTreeMap::new() }
    }

    fn in_group(&self, user: &str, group: &str) -> bool {
        group == ALL_USERS || self.memberships.get(user).is_some_and(|g| g.contains(group))
    }

    fn granted(&self, rule: &Rule, who: &Identity) -> Actions {
        let mut actions = rule.anonymous;
        if let Identity::User(user) = who {
            if let Some(a) = rule.users.get(user) {
                actions = actions.union(*a);
            }
            for (group, a) in &rule.groups {
                if self.in_group(user, group) {
                    actions = actions.union(*a);
                }
            }
        }
        actions
    }

    /// What `who` may do to `repository`.
    pub fn actions(&self, who: &Identity, repository: &str) -> Actions {
        self.rules
            .iter()
            .filter(|r| r.repositories.iter().any(|p| p.matches(repository)))
            .fold(Actions::NONE, |acc, r| acc.union(self.granted(r, who)))
    }

    /// Whether `who` may do `action` to every repository `pattern` matches, by one rule
    /// (see [`Pattern::covers`]): what it may hand on to a robot or a token.
    pub fn covers(&self, who: &Identity, pattern: &Pattern, action: Action) -> bool {
        self.rules.iter().any(|r| {
            self.granted(r, who).contains(action) && r.repositories.iter().any(|p| p.covers(pattern))
        })
    }

    /// Whether `who` administers the registry: `admin` from a rule over `**`.
    pub fn is_admin(&self, who: &Identity) -> bool {
        self.rules
            .iter()
            .filter(|r| r.repositories.iter().any(Pattern::is_everything))
            .any(|r| self.granted(r, who).contains(Action::Admin))
    }

    /// The groups of `user`.
    pub fn groups_of(&self, user: &str) -> Vec<&str> {
        self.memberships.get(user).map(|g| g.iter().map(String::as_str).collect()).unwrap_or_default()
    }
}

/// The group every authenticated user is in.
pub const ALL_USERS: &str = "*";

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        s.parse().expect("valid")
    }

    #[test]
    fn patterns() {
        assert!(p("**").matches("a") && p("**").matches("a/b/c"));
        assert!(p("a/*").matches("a/b") && !p("a/*").matches("a/b/c") && !p("a/*").matches("a"));
        assert!(
            p("a/**/z").matches("a/b/z") && p("a/**/z").matches("a/b/c/z") && !p("a/**/z").matches("a/z")
        );
        assert!(
            p("lib*").matches("library") && p("*ary").matches("library") && p("l*b*y").matches("library")
        );
        assert!(!p("lib*").matches("alib"));
        assert!(p("exact/name").matches("exact/name") && !p("exact/name").matches("exact/names"));
        for bad in ["", "a//b", "/a", "a/", "a/**b", "A", "a/**/**", "a b"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad:?}");
        }

        let list = |l: &[&str]| Pattern::parse_list(&l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(list(&["a/*", "**"]).expect("valid").len(), 2);
        assert!(list(&[]).expect_err("empty").contains("at least one pattern"));
        assert!(list(&["a/*", "a//b"]).expect_err("bad").contains("repository pattern `a//b`"));
    }

    #[test]
    fn the_issue_configuration() {
        let rules = vec![
            Rule {
                repositories: vec![p("public/**")],
                anonymous: Actions::of(&[Action::Pull]),
                ..Rule::default()
            },
            Rule {
                repositories: vec![p("team/**")],
                users: BTreeMap::from([(
                    "alice".into(),
                    Actions::of(&[Action::Pull, Action::Push, Action::Delete]),
                )]),
                groups: BTreeMap::from([("readers".into(), Actions::of(&[Action::Pull]))]),
                ..Rule::default()
            },
            Rule {
                repositories: vec![p("**")],
                users: BTreeMap::from([("admin".into(), Actions::ALL)]),
                ..Rule::default()
            },
        ];
        let policy = Policy::new(rules, &BTreeMap::from([("readers".into(), vec!["bob".into()])]));
        let (anon, alice, bob, admin) = (
            Identity::Anonymous,
            Identity::User("alice".into()),
            Identity::User("bob".into()),
            Identity::User("admin".into()),
        );
        assert_eq!(policy.actions(&anon, "public/x"), Actions::of(&[Action::Pull]));
        assert_eq!(policy.actions(&anon, "team/x"), Actions::NONE);
        assert_eq!(policy.actions(&bob, "team/x/y"), Actions::of(&[Action::Pull]));
        assert_eq!(policy.actions(&bob, "public/x"), Actions::of(&[Action::Pull]));
        assert!(policy.actions(&alice, "team/x").contains(Action::Delete));
        assert!(!policy.actions(&alice, "team/x").contains(Action::Admin));
        assert_eq!(policy.actions(&alice, "other"), Actions::NONE);
        assert_eq!(policy.actions(&admin, "anything/at/all"), Actions::ALL);
        assert!(policy.is_admin(&admin) && !policy.is_admin(&alice) && !policy.is_admin(&anon));
        assert_eq!(policy.groups_of("bob"), ["readers"]);
        let open = Policy::authenticated_all();
        assert_eq!(open.actions(&bob, "x"), Actions::ALL);
        assert_eq!(open.actions(&anon, "x"), Actions::NONE);
    }

    /// Every name of one to three components of one to three letters `a`/`b`.
    fn small_names() -> Vec<String> {
        let mut components: Vec<String> = vec!["a".into(), "b".into()];
        for _ in 0..2 {
            let longer: Vec<String> =
                components.iter().flat_map(|c| [format!("{c}a"), format!("{c}b")]).collect();
            components.extend(longer.into_iter().filter(|c| c.len() <= 3));
        }
        components.sort();
        components.dedup();
        let mut names = components.clone();
        let mut last = components.clone();
        for _ in 0..2 {
            last = last.iter().flat_map(|n| components.iter().map(move |c| format!("{n}/{c}"))).collect();
            names.extend(last.iter().cloned());
        }
        names
    }

    #[test]
    fn covering() {
        let yes = [
            ("**", "a/b"),
            ("a/**", "a/*/b*"),
            ("*", "a*"),
            ("a*", "ab*b"),
            ("**/b", "a/**/b"),
            ("**", "**"),
        ];
        for (outer, inner) in yes {
            assert!(p(outer).covers(&p(inner)), "{outer} covers {inner}");
        }
        let no =
            [("a/*", "a/**"), ("a", "*"), ("a/**", "a"), ("a*b", "a*"), ("*/b", "**/b"), ("a/b", "a/b/c")];
        for (outer, inner) in no {
            assert!(!p(outer).covers(&p(inner)), "{outer} does not cover {inner}");
        }
    }

    proptest::proptest! {
        /// `covers` is sound: whatever it says is covered is, for every small name.
        #[test]
        fn covering_is_sound(outer in "(\\*\\*|[ab*]{1,2})(/(\\*\\*|[ab*]{1,2})){0,2}", inner in "(\\*\\*|[ab*]{1,2})(/(\\*\\*|[ab*]{1,2})){0,2}") {
            let (Ok(o), Ok(i)) = (outer.parse::<Pattern>(), inner.parse::<Pattern>()) else { return Ok(()) };
            if o.covers(&i) {
                for name in small_names() {
                    proptest::prop_assert!(!i.matches(&name) || o.matches(&name), "{outer} covers {inner} but not {name}");
                }
            }
            proptest::prop_assert!(o.covers(&o), "{outer} covers itself");
        }

        #[test]
        fn globs_agree_with_a_regex_model(pattern in "[ab*]{0,6}", text in "[ab]{0,8}") {
            let regex_like = |p: &str, t: &str| -> bool {
                // The model: dynamic programming over the pattern.
                let (p, t) = (p.as_bytes(), t.as_bytes());
                let mut dp = vec![vec![false; t.len() + 1]; p.len() + 1];
                dp[0][0] = true;
                for i in 1..=p.len() {
                    dp[i][0] = dp[i - 1][0] && p[i - 1] == b'*';
                    for j in 1..=t.len() {
                        dp[i][j] = if p[i - 1] == b'*' { dp[i - 1][j] || dp[i][j - 1] } else { dp[i - 1][j - 1] && p[i - 1] == t[j - 1] };
                    }
                }
                dp[p.len()][t.len()]
            };
            proptest::prop_assert_eq!(glob(pattern.as_bytes(), text.as_bytes()), regex_like(&pattern, &text));
        }
    }
}
