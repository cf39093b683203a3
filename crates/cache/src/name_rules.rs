//! Glob patterns over what a request names: a group's `allow` and `deny` rules and its
//! `immutable_tags`. A pattern is an artifact's name and, after the format's separator (`:` for
//! images, `@` for packages), its tag or version — `library/*`, `bitnami/postgresql:16*`. `*`
//! matches any run of characters (`/` too), `?` one, `[…]` one of a set, `{a,b}` either. Patterns
//! are compiled once into sets, so a request costs one or two set lookups however many rules a
//! group has.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{list} pattern {pattern:?}: {reason}")]
pub struct RuleError {
    /// Which list it is in (`allow`, `deny`, `immutable_tags`).
    pub list: &'static str,
    pub pattern: String,
    pub reason: String,
}

/// Why a request's artifact may not be pulled through its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This `deny` pattern matches it.
    Denied { pattern: String },
    /// The group has `allow` patterns and none matches it.
    NotAllowed,
}

/// One pattern, split at the separator.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// As written.
    text: String,
    /// The name part.
    name: String,
    /// The tag or version part; `None` when the pattern names no tag (any tag, and digests).
    tag: Option<String>,
}

impl Pattern {
    fn parse(list: &'static str, text: &str, separator: char) -> Result<Pattern, RuleError> {
        let invalid = |reason: String| RuleError { list, pattern: text.to_owned(), reason };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty (use \"*\" for every name)".into()));
        }
        if trimmed != text {
            return Err(invalid("has spaces around it".into()));
        }
        // A package scope starts with the separator (`@types/node@*`): the first character never
        // separates.
        let (name, tag) = match text.char_indices().skip(1).filter(|(_, c)| *c == separator).last() {
            Some((at, _)) => (&text[..at], Some(&text[at + separator.len_utf8()..])),
            None => (text, None),
        };
        if name.chars().skip(1).any(|c| c == separator) {
            return Err(invalid(format!("more than one {separator:?}: NAME{separator}TAG has one")));
        }
        if tag == Some("") {
            return Err(invalid(format!(
                "nothing after {separator:?} (use \"{name}{separator}*\" for every tag)"
            )));
        }
        for part in [Some(name), tag].into_iter().flatten() {
            glob(part).map_err(|error| invalid(error.kind().to_string()))?;
        }
        Ok(Pattern { text: text.to_owned(), name: name.to_owned(), tag: tag.map(str::to_owned) })
    }

    /// The pattern over `name<separator>tag`: a pattern without a tag matches every tag.
    fn full(&self, separator: char) -> String {
        format!("{}{separator}{}", self.name, self.tag.as_deref().unwrap_or("*"))
    }

    /// Whether it matches every tag of the names it matches (then it matches their digests too).
    fn any_tag(&self) -> bool {
        self.tag.as_deref().is_none_or(|tag| tag.chars().all(|c| c == '*'))
    }
}

/// `*` crosses `/` (so `library/*` covers `library/a/b`), as in `pin` patterns.
fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(false).build()
}

fn set<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(glob(pattern)?);
    }
    builder.build()
}

fn parse_all(list: &'static str, texts: &[String], separator: char) -> Result<Vec<Pattern>, RuleError> {
    texts.iter().map(|text| Pattern::parse(list, text, separator)).collect()
}

/// A compiled list: over `name<separator>tag`, and over names alone for requests by digest.
#[derive(Debug, Clone, Default)]
struct CompiledList {
    patterns: Vec<Pattern>,
    /// Every pattern over `name<separator>tag`.
    full: GlobSet,
    /// The name parts of the patterns a request by digest is judged by, and their indices.
    names: GlobSet,
    name_index: Vec<usize>,
}

impl CompiledList {
    fn new(
        list: &'static str,
        patterns: Vec<Pattern>,
        separator: char,
        for_digests: impl Fn(&Pattern) -> bool,
    ) -> Result<Self, RuleError> {
        let whole = |error: globset::Error| RuleError {
            list,
            pattern: patterns.iter().map(|pattern| pattern.text.as_str()).collect::<Vec<_>>().join(", "),
            reason: error.to_string(),
        };
        let fulls: Vec<String> = patterns.iter().map(|pattern| pattern.full(separator)).collect();
        let full = set(fulls.iter().map(String::as_str)).map_err(whole)?;
        let name_index: Vec<usize> = (0..patterns.len()).filter(|at| for_digests(&patterns[*at])).collect();
        let names = set(name_index.iter().map(|at| patterns[*at].name.as_str())).map_err(whole)?;
        Ok(CompiledList { patterns, full, names, name_index })
    }

    fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a pattern matches `name` with `tag`, or `name` alone for a request by digest.
    fn is_match(&self, name: &str, tag: Option<&str>, separator: char) -> bool {
        match tag {
            Some(tag) => self.full.is_match(joined(name, tag, separator)),
            None => self.names.is_match(name),
        }
    }

    /// The first pattern that matches (only asked once a match is known: it allocates).
    fn first_match(&self, name: &str, tag: Option<&str>, separator: char) -> Option<&str> {
        let at = match tag {
            Some(tag) => self.full.matches(joined(name, tag, separator)).into_iter().min()?,
            None => *self.name_index.get(self.names.matches(name).into_iter().min()?)?,
        };
        self.patterns.get(at).map(|pattern| pattern.text.as_str())
    }
}

fn joined(name: &str, tag: &str, separator: char) -> String {
    let mut text = String::with_capacity(name.len() + 1 + tag.len());
    text.push_str(name);
    text.push(separator);
    text.push_str(tag);
    text
}

/// A group's `allow` and `deny` rules. `deny` wins; without `allow` everything not denied may be
/// pulled. A request by digest names no tag: it is judged by the name alone — allowed when an
/// `allow` pattern's name part matches, refused only by a `deny` pattern that covers every tag
/// of the name (`library/old` or `library/old:*`, not `library/old:1.0`).
#[derive(Debug, Clone, Default)]
pub struct NameRules {
    separator: char,
    allow: CompiledList,
    deny: CompiledList,
}

impl NameRules {
    /// Compiles the patterns; `separator` is the format's ([`crate::Format::version_separator`]).
    pub fn new(allow: &[String], deny: &[String], separator: char) -> Result<Self, RuleError> {
        let allow = CompiledList::new("allow", parse_all("allow", allow, separator)?, separator, |_| true)?;
        let deny =
            CompiledList::new("deny", parse_all("deny", deny, separator)?, separator, Pattern::any_tag)?;
        Ok(NameRules { separator, allow, deny })
    }

    /// Whether there is any rule (without, every request is let through at no cost).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether the artifact `name` (with its `tag`, or `None` for a request by digest) may be
    /// pulled.
    pub fn check(&self, name: &str, tag: Option<&str>) -> Result<(), Refusal> {
        if self.is_empty() {
            return Ok(());
        }
        if self.deny.is_match(name, tag, self.separator) {
            let pattern = self.deny.first_match(name, tag, self.separator).unwrap_or_default();
            return Err(Refusal::Denied { pattern: pattern.to_owned() });
        }
        if !self.allow.is_empty() && !self.allow.is_match(name, tag, self.separator) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }

    pub fn allow_patterns(&self) -> impl Iterator<Item = &str> {
        self.allow.patterns.iter().map(|pattern| pattern.text.as_str())
    }

    pub fn deny_patterns(&self) -> impl Iterator<Item = &str> {
        self.deny.patterns.iter().map(|pattern| pattern.text.as_str())
    }

    /// Rules that another makes useless, as far as can be told from the patterns: duplicates,
    /// an `allow` pattern that a `deny` pattern refuses entirely (it allows nothing), and a
    /// pattern that another of its list covers (it adds nothing). Worded for `check-config`.
    pub fn shadowed(&self) -> Vec<String> {
        let separator = self.separator;
        let mut notes = Vec::new();
        for (list, patterns) in [("allow", &self.allow.patterns), ("deny", &self.deny.patterns)] {
            for (at, pattern) in patterns.iter().enumerate() {
                let full = pattern.full(separator);
                if let Some(earlier) = patterns[..at].iter().find(|earlier| earlier.full(separator) == full) {
                    notes.push(if earlier.text == pattern.text {
                        format!("{list} pattern {:?} is listed twice", pattern.text)
                    } else {
                        format!("{list} pattern {:?} is the same as {:?}", pattern.text, earlier.text)
                    });
                    continue;
                }
                let covering = patterns.iter().enumerate().find(|(other_at, other)| {
                    *other_at != at && other.full(separator) != full && covers(other, pattern, separator)
                });
                if let Some((_, other)) = covering {
                    notes.push(format!(
                        "{list} pattern {:?} adds nothing: {list} pattern {:?} already matches everything it does",
                        pattern.text, other.text
                    ));
                }
            }
        }
        for allow in &self.allow.patterns {
            if let Some(deny) = self.deny.patterns.iter().find(|deny| covers(deny, allow, separator)) {
                notes.push(format!(
                    "allow pattern {:?} allows nothing: deny pattern {:?} refuses everything it matches (deny wins)",
                    allow.text, deny.text
                ));
            }
        }
        notes
    }
}

/// Whether everything `specific` matches, `general` matches too — answered only when it can be
/// told for sure from the text: `general` with `*` as its only wildcard, matching `specific`'s
/// text with `specific`'s `*` and `?` taken as characters (each can only have been matched by a
/// `*` of `general`, which matches whatever they stand for). `false` when it cannot tell.
fn covers(general: &Pattern, specific: &Pattern, separator: char) -> bool {
    let general_full = general.full(separator);
    let specific_full = specific.full(separator);
    let plain = |text: &str, special: &[char]| !text.contains(special);
    if !plain(&general_full, &['?', '[', ']', '{', '}', '\\']) || !plain(&specific_full, &['[', '{', '\\']) {
        return false;
    }
    glob(&general_full).is_ok_and(|glob| glob.compile_matcher().is_match(&specific_full))
}

/// `immutable_tags`: tag patterns (`v*.*.*`), or `NAME<separator>TAG` patterns for some names
/// only; a cached tag that matches is never revalidated.
#[derive(Debug, Clone, Default)]
pub struct TagPatterns {
    patterns: Vec<String>,
    separator: char,
    /// Patterns without a name part, over the tag.
    tags: GlobSet,
    /// Patterns with one, over `name<separator>tag`.
    named: GlobSet,
}

impl TagPatterns {
    pub fn new(patterns: &[String], separator: char) -> Result<Self, RuleError> {
        let list = "immutable_tags";
        let parsed = parse_all(list, patterns, separator)?;
        let whole = |error: globset::Error| RuleError {
            list,
            pattern: patterns.join(", "),
            reason: error.to_string(),
        };
        // Without a separator a pattern is a tag's: `Pattern` took it as a name.
        let tags =
            set(parsed.iter().filter(|pattern| pattern.tag.is_none()).map(|pattern| pattern.name.as_str()))
                .map_err(whole)?;
        let fulls: Vec<String> = parsed
            .iter()
            .filter(|pattern| pattern.tag.is_some())
            .map(|pattern| pattern.full(separator))
            .collect();
        let named = set(fulls.iter().map(String::as_str)).map_err(whole)?;
        Ok(TagPatterns { patterns: patterns.to_vec(), separator, tags, named })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the tag `tag` of `name` is immutable.
    pub fn matches(&self, name: &str, tag: &str) -> bool {
        !self.is_empty()
            && (self.tags.is_match(tag)
                || (!self.named.is_empty() && self.named.is_match(joined(name, tag, self.separator))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(patterns: &[&str]) -> Vec<String> {
        patterns.iter().map(|pattern| (*pattern).to_owned()).collect()
    }

    fn rules(allow: &[&str], deny: &[&str]) -> NameRules {
        NameRules::new(&strings(allow), &strings(deny), ':').unwrap()
    }

    fn denied(pattern: &str) -> Result<(), Refusal> {
        Err(Refusal::Denied { pattern: pattern.to_owned() })
    }

    #[test]
    fn no_rules_let_everything_through() {
        let none = NameRules::default();
        assert!(none.is_empty());
        assert_eq!(none.check("library/alpine", Some("3.20")), Ok(()));
        assert_eq!(none.check("anything", None), Ok(()));
    }

    #[test]
    fn allow_patterns_match_names_and_tags() {
        let rules = rules(&["library/*", "bitnami/postgresql:16*"], &[]);
        assert_eq!(rules.check("library/alpine", Some("3.20")), Ok(()));
        assert_eq!(rules.check("library/a/b", Some("x")), Ok(()), "* crosses slashes");
        assert_eq!(rules.check("bitnami/postgresql", Some("16.2")), Ok(()));
        assert_eq!(rules.check("bitnami/postgresql", Some("15")), Err(Refusal::NotAllowed));
        assert_eq!(rules.check("bitnami/redis", Some("7")), Err(Refusal::NotAllowed));
        // A digest names no tag: the name decides.
        assert_eq!(rules.check("bitnami/postgresql", None), Ok(()));
        assert_eq!(rules.check("bitnami/redis", None), Err(Refusal::NotAllowed));
    }

    #[test]
    fn deny_wins_and_is_named() {
        let rules = rules(&["library/*"], &["library/alpine:3.1?", "library/busybox", "*/old:*"]);
        assert_eq!(rules.check("library/alpine", Some("3.20")), Ok(()));
        assert_eq!(rules.check("library/alpine", Some("3.18")), denied("library/alpine:3.1?"));
        assert_eq!(rules.check("library/busybox", Some("latest")), denied("library/busybox"));
        assert_eq!(rules.check("acme/old", Some("1")), denied("*/old:*"));
        // By digest, only a deny of every tag applies.
        assert_eq!(rules.check("library/alpine", None), Ok(()));
        assert_eq!(rules.check("library/busybox", None), denied("library/busybox"));
        assert_eq!(rules.check("acme/old", None), denied("*/old:*"));
        let deny_only = self::rules(&[], &["evil/*"]);
        assert_eq!(deny_only.check("good/app", Some("1")), Ok(()));
        assert_eq!(deny_only.check("evil/app", None), denied("evil/*"));
    }

    #[test]
    fn package_patterns_split_at_the_last_at_sign() {
        let rules = NameRules::new(&strings(&["lodash@4.*", "@types/*"]), &[], '@').unwrap();
        assert_eq!(rules.check("lodash", Some("4.17.21")), Ok(()));
        assert_eq!(rules.check("lodash", Some("3.0.0")), Err(Refusal::NotAllowed));
        assert_eq!(rules.check("@types/node", Some("22.0.0")), Ok(()), "a scope is part of the name");
    }

    #[test]
    fn bad_patterns_are_explained() {
        let error = |allow: &[&str]| NameRules::new(&strings(allow), &[], ':').unwrap_err();
        assert!(error(&["library/[abc"]).to_string().contains("allow pattern \"library/[abc\""));
        assert!(error(&[""]).reason.contains("empty"));
        assert!(error(&["library/alpine:"]).reason.contains("nothing after ':'"));
        assert!(error(&["a:b:c"]).reason.contains("more than one ':'"));
        assert!(error(&[" a"]).reason.contains("spaces"));
        let deny = NameRules::new(&[], &strings(&["x{a,"]), ':').unwrap_err();
        assert_eq!(deny.list, "deny");
    }

    #[test]
    fn shadowed_rules_are_named() {
        let notes = rules(
            &["library/alpine:3.*", "library/*", "library/*", "bitnami/redis"],
            &["bitnami/*", "bitnami/redis:7"],
        )
        .shadowed();
        let has = |fragment: &str| notes.iter().any(|note| note.contains(fragment));
        assert!(has("allow pattern \"library/*\" is listed twice"), "{notes:?}");
        assert!(
            has("allow pattern \"library/alpine:3.*\" adds nothing: allow pattern \"library/*\""),
            "{notes:?}"
        );
        assert!(
            has("allow pattern \"bitnami/redis\" allows nothing: deny pattern \"bitnami/*\""),
            "{notes:?}"
        );
        assert!(
            has("deny pattern \"bitnami/redis:7\" adds nothing: deny pattern \"bitnami/*\""),
            "{notes:?}"
        );
        assert_eq!(notes.len(), 4, "{notes:?}");
        // What cannot be told for sure is not claimed: `?` in the covering pattern.
        assert!(rules(&["a*"], &["a?"]).shadowed().is_empty());
        assert!(rules(&["ab"], &["a?"]).shadowed().is_empty());
        assert!(rules(&["library/*"], &["library/alpine:3.18"]).shadowed().is_empty());
        assert!(rules(&["library/alpine:3.*"], &[]).shadowed().is_empty());
    }

    #[test]
    fn immutable_tags_match_tags_or_names_with_tags() {
        let patterns = TagPatterns::new(&strings(&["v*.*.*", "*-sha-*", "acme/app:stable"]), ':').unwrap();
        assert!(patterns.matches("library/app", "v1.2.3"));
        assert!(patterns.matches("x", "main-sha-abc123"));
        assert!(!patterns.matches("library/app", "v1"));
        assert!(!patterns.matches("library/app", "latest"));
        assert!(patterns.matches("acme/app", "stable"));
        assert!(!patterns.matches("other/app", "stable"));
        assert!(!TagPatterns::default().matches("a", "v1.2.3"));
        assert!(
            TagPatterns::new(&strings(&["v[1"]), ':').unwrap_err().to_string().contains("immutable_tags")
        );
    }

    /// The cost a request pays for a group's rules: compiled sets, not a loop over patterns.
    /// Loose bound, any build: a debug build of the matcher takes well under it.
    #[test]
    fn a_hundred_rules_cost_little_per_request() {
        let allow: Vec<String> = (0..50).map(|i| format!("team{i}/*")).collect();
        let deny: Vec<String> = (0..50).map(|i| format!("team{i}/legacy:1.{i}.*")).collect();
        let rules = NameRules::new(&allow, &deny, ':').unwrap();
        let started = std::time::Instant::now();
        let rounds = 20_000;
        for round in 0..rounds {
            let team = round % 60;
            let _ = std::hint::black_box(rules.check(&format!("team{team}/app"), Some("2.0.1")));
        }
        let each = started.elapsed() / rounds;
        eprintln!("100 rules: {each:?} per check (a name formatted per round included)");
        assert!(each < std::time::Duration::from_micros(50), "{each:?} per check");
        assert_eq!(rules.check("team3/app", Some("2.0")), Ok(()));
        assert_eq!(rules.check("team3/legacy", Some("1.3.9")), denied("team3/legacy:1.3.*"));
        assert_eq!(rules.check("team55/app", Some("1")), Err(Refusal::NotAllowed));
    }
}
