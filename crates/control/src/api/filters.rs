//! EC2 `Filter.N.Name` / `Filter.N.Value.N`: parsing against the names an
//! action supports, and matching values in memory with EC2's wildcards
//! (`*` any run, `?` any one character, `\` escapes), case-sensitively.
//!
//! Filters with different names are ANDed; the values of one filter are
//! ORed. A name given twice is ANDed too (every occurrence must match).

use ec2_wire::error::Ec2Error;
use ec2_wire::request::{Ec2Request, Filter};

/// The parameters a `Filter` list takes, for `ActionSpec::params`.
pub const FILTER_PARAMS: [&str; 2] = ["Filter.N.Name", "Filter.N.Value.N"];

#[derive(Clone, Debug, Default)]
pub struct Filters {
    list: Vec<Filter>,
}

impl Filters {
    /// The request's filters; a name not in `allowed` is EC2's
    /// `InvalidParameterValue` ("The filter 'x' is invalid"). `tag:KEY`
    /// filters are allowed when `allowed` contains `"tag:"`.
    pub fn parse(req: &Ec2Request, allowed: &[&str]) -> Result<Filters, Ec2Error> {
        let list = req.filters()?;
        let tags_ok = allowed.contains(&"tag:");
        for f in &list {
            let ok = if let Some(key) = f.name.strip_prefix("tag:") {
                tags_ok && !key.is_empty()
            } else {
                allowed.contains(&f.name.as_str())
            };
            if !ok {
                return Err(Ec2Error::new(
                    "InvalidParameterValue",
                    400,
                    format!("The filter '{}' is invalid", shorten(&f.name)),
                ));
            }
        }
        Ok(Filters { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Filter> {
        self.list.iter()
    }

    /// Every value given for `name`, across occurrences (for handing to
    /// the store, whose filters OR one list per name).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.list
            .iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.values.iter().cloned())
            .collect()
    }

    /// `tag:KEY` filters as (KEY, values).
    pub fn tags(&self) -> Vec<(String, Vec<String>)> {
        self.list
            .iter()
            .filter_map(|f| Some((f.name.strip_prefix("tag:")?.to_string(), f.values.clone())))
            .collect()
    }

    /// Whether `value` satisfies every filter named `name` (true when there
    /// is none).
    pub fn matches(&self, name: &str, value: &str) -> bool {
        self.list
            .iter()
            .filter(|f| f.name == name)
            .all(|f| f.values.iter().any(|p| wildcard_match(p, value)))
    }

    /// `matches` for a member that has several values (any may match).
    pub fn matches_any(&self, name: &str, values: &[&str]) -> bool {
        self.list.iter().filter(|f| f.name == name).all(|f| {
            values
                .iter()
                .any(|v| f.values.iter().any(|p| wildcard_match(p, v)))
        })
    }

    /// Whether a resource's tags satisfy the `tag:KEY` and `tag-key`
    /// filters.
    pub fn matches_tags(&self, tags: &[(String, String)]) -> bool {
        self.list.iter().all(|f| {
            if let Some(key) = f.name.strip_prefix("tag:") {
                tags.iter()
                    .any(|(k, v)| k == key && f.values.iter().any(|p| wildcard_match(p, v)))
            } else if f.name == "tag-key" {
                tags.iter()
                    .any(|(k, _)| f.values.iter().any(|p| wildcard_match(p, k)))
            } else {
                true
            }
        })
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(128).collect()
}

/// EC2 wildcard matching: `*`, `?`, and `\` escaping the next character.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' => Tok::Any,
            '?' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let text: Vec<char> = value.chars().collect();
    // Iterative matcher with one backtrack point (the last `*`): linear
    // in practice, never exponential.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
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
    toks[p..].iter().all(|tok| *tok == Tok::Any)
}
