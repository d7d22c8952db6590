//! An EC2 Query request: `Action`, `Version` and the flattened parameters,
//! read the way botocore's `EC2Serializer` writes them:
//!
//! - scalars: `InstanceType=t3.micro`
//! - lists, 1-based: `InstanceId.1=…&InstanceId.2=…`
//! - lists of structures: `TagSpecification.1.ResourceType=instance`,
//!   `TagSpecification.1.Tag.1.Key=Name`
//! - nested structures: `MetadataOptions.HttpTokens=required`
//! - filters: `Filter.1.Name=…&Filter.1.Value.1=…`
//! - booleans `true`/`false`, integers in decimal.
//!
//! (The wire names are the shapes' `queryName`, else their `locationName`
//! capitalised, else the member name; list members take no name of their
//! own, only the index.)
//!
//! Reading is through a [`Scope`], a view of the parameters under a prefix;
//! `Ec2Request` forwards the common accessors to its root scope. Every
//! handler declares the parameter names it understands to
//! [`Ec2Request::reject_unknown`], so a misspelt or unsupported parameter is
//! an `UnknownParameter` error rather than silently ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use thiserror::Error;

use super::error::Ec2Error;
use super::form::{self, shorten};

/// The API version this daemon implements; others are accepted and
/// recorded (clients of every age send this one for EC2).
pub const API_VERSION: &str = "2016-11-15";
/// The largest list index accepted (`InstanceId.1000`).
pub const MAX_LIST_INDEX: u32 = 1000;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request body is {size} bytes; at most {max} are allowed")]
    BodyTooLarge { size: usize, max: usize },
    #[error("the request has more than {max} parameters")]
    TooManyParameters { max: usize },
    #[error("malformed form body: {0}")]
    Malformed(String),
    #[error("the parameter {0} appears more than once")]
    DuplicateParameter(String),
    #[error("the request must contain the parameter Action")]
    MissingAction,
    #[error("the request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("value ({value}) for parameter {name} is invalid: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    /// A list that cannot be read as one: a gap, a bad index, a scalar
    /// where structures are expected or the reverse.
    #[error("{0}")]
    InvalidList(String),
    #[error("the parameter {0} is not recognized")]
    UnknownParameter(String),
}

impl From<form::FormError> for RequestError {
    fn from(e: form::FormError) -> Self {
        match e {
            form::FormError::BodyTooLarge { size, max } => RequestError::BodyTooLarge { size, max },
            form::FormError::TooManyParameters { max } => RequestError::TooManyParameters { max },
            form::FormError::Malformed(why) => RequestError::Malformed(why),
        }
    }
}

impl From<form::FormError> for Ec2Error {
    fn from(e: form::FormError) -> Self {
        RequestError::from(e).into()
    }
}

impl From<RequestError> for Ec2Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BodyTooLarge { max, .. } => Ec2Error::request_entity_too_large(max),
            RequestError::TooManyParameters { .. } | RequestError::DuplicateParameter(_) => {
                Ec2Error::invalid_query_parameter(capitalise(&e.to_string()))
            }
            RequestError::Malformed(_) => {
                Ec2Error::malformed_query_string(capitalise(&e.to_string()))
            }
            RequestError::MissingAction => Ec2Error::missing_action(),
            RequestError::MissingParameter(name) => Ec2Error::missing_parameter(&name),
            RequestError::InvalidValue {
                name,
                value,
                reason,
            } => Ec2Error::invalid_parameter_value(&name, &value, &capitalise(&reason)),
            RequestError::InvalidList(message) => Ec2Error::invalid_parameter(capitalise(&message)),
            RequestError::UnknownParameter(name) => Ec2Error::unknown_parameter(&name),
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One `Filter.N`: a name and the values any of which may match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Ec2Request {
    action: String,
    version: Option<String>,
    /// Everything but Action and Version, by wire name.
    params: BTreeMap<String, String>,
}

impl Ec2Request {
    /// Parses a form-encoded body (or a query string: same format).
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        Self::from_pairs(form::decode_pairs(body)?)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, RequestError> {
        let mut action = None;
        let mut version = None;
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "Action" => &mut action,
                "Version" => &mut version,
                _ => {
                    if params.contains_key(&name) {
                        return Err(RequestError::DuplicateParameter(shorten(&name)));
                    }
                    params.insert(name, value);
                    continue;
                }
            };
            if slot.is_some() {
                return Err(RequestError::DuplicateParameter(name));
            }
            *slot = Some(value);
        }
        let action = action
            .filter(|a| !a.is_empty())
            .ok_or(RequestError::MissingAction)?;
        Ok(Ec2Request {
            action,
            version,
            params,
        })
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    /// The `Version` the client sent, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether the client asked for [`API_VERSION`] (or named none).
    pub fn is_current_version(&self) -> bool {
        self.version.as_deref().is_none_or(|v| v == API_VERSION)
    }

    /// The parameters other than Action and Version, by wire name.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }

    pub fn root(&self) -> Scope<'_> {
        Scope {
            params: &self.params,
            prefix: String::new(),
        }
    }

    /// Fails with `UnknownParameter` on the first parameter that none of
    /// `known` describes. A pattern is a wire name whose list indexes are
    /// written `N`: `InstanceId.N`, `TagSpecification.N.Tag.N.Key`,
    /// `Filter.N.Value.N`, `MetadataOptions.HttpTokens`. An `N` matches
    /// only a valid index (1..=1000, no leading zero).
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), RequestError> {
        match self
            .params
            .keys()
            .find(|name| !known.iter().any(|pattern| pattern_matches(pattern, name)))
        {
            Some(name) => Err(RequestError::UnknownParameter(shorten(name))),
            None => Ok(()),
        }
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn required_string(&self, name: &str) -> Result<&str, RequestError> {
        self.root().required_string(name)
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, RequestError> {
        self.root().bool(name)
    }

    pub fn int(&self, name: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, RequestError> {
        self.root().int(name, range)
    }

    pub fn string_list(&self, name: &str) -> Result<Vec<&str>, RequestError> {
        self.root().string_list(name)
    }

    pub fn structs(&self, name: &str) -> Result<Vec<Scope<'_>>, RequestError> {
        self.root().structs(name)
    }

    pub fn child(&self, name: &str) -> Scope<'_> {
        self.root().child(name)
    }

    pub fn filters(&self) -> Result<Vec<Filter>, RequestError> {
        self.root().filters()
    }
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut pattern_parts = pattern.split('.');
    let mut name_parts = name.split('.');
    loop {
        match (pattern_parts.next(), name_parts.next()) {
            (None, None) => return true,
            (Some("N"), Some(part)) if parse_index(part).is_some() => {}
            (Some(p), Some(part)) if p == part && p != "N" => {}
            _ => return false,
        }
    }
}

/// A list index as botocore writes it: decimal, no sign, no leading zero,
/// 1..=MAX_LIST_INDEX.
fn parse_index(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 4 || text.starts_with('0') {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse()
        .ok()
        .filter(|i| (1..=MAX_LIST_INDEX).contains(i))
}

/// The parameters under one prefix: the whole request, one element of a
/// list of structures (`TagSpecification.2.`), or a nested structure
/// (`MetadataOptions.`). Names passed to its methods are relative.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    params: &'a BTreeMap<String, String>,
    /// Empty, or ending in '.'.
    prefix: String,
}

impl<'a> Scope<'a> {
    /// The full wire name of a relative one, for lookups and messages.
    pub fn wire_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether any parameter lies under this scope (e.g. whether the client
    /// sent `MetadataOptions` at all).
    pub fn is_present(&self) -> bool {
        self.under(&self.prefix).next().is_some()
    }

    /// Parameters whose wire name starts with `prefix`, in name order.
    fn under<'s>(&'s self, prefix: &'s str) -> impl Iterator<Item = (&'a String, &'a String)> + 's {
        self.params
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(name, _)| name.starts_with(prefix))
    }

    pub fn string(&self, name: &str) -> Option<&'a str> {
        self.params.get(&self.wire_name(name)).map(String::as_str)
    }

    /// A string that must be present and non-empty (EC2 treats `ImageId=`
    /// as a missing ImageId).
    pub fn required_string(&self, name: &str) -> Result<&'a str, RequestError> {
        match self.string(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(RequestError::MissingParameter(self.wire_name(name))),
        }
    }

    fn invalid(&self, name: &str, value: &str, reason: impl Into<String>) -> RequestError {
        RequestError::InvalidValue {
            name: self.wire_name(name),
            value: shorten(value),
            reason: reason.into(),
        }
    }

    /// `true` or `false` (any case, as EC2 accepts).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, RequestError> {
        let Some(value) = self.string(name) else {
            return Ok(None);
        };
        if value.eq_ignore_ascii_case("true") {
            Ok(Some(true))
        } else if value.eq_ignore_ascii_case("false") {
            Ok(Some(false))
        } else {
            Err(self.invalid(name, value, "expected true or false"))
        }
    }

    /// A decimal integer within `range`.
    pub fn int(&self, name: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, RequestError> {
        let Some(value) = self.string(name) else {
            return Ok(None);
        };
        let digits = value.strip_prefix('-').unwrap_or(value);
        let parsed = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            value.parse::<i64>().ok()
        } else {
            None
        };
        match parsed {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(self.invalid(
                name,
                value,
                format!(
                    "expected an integer from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// The indexes of list `name` in order, each with the rest of the wire
    /// name after `name.N` ("" for a scalar item, ".Key" etc. for fields).
    /// Fails on a bad index, a gap, or a mix of scalar and field items
    /// depending on `structured`.
    fn list_indexes(&self, name: &str, structured: bool) -> Result<Vec<u32>, RequestError> {
        let list_prefix = format!("{}.", self.wire_name(name));
        let mut indexes = BTreeSet::new();
        for (wire, _) in self.under(&list_prefix) {
            let rest = &wire[list_prefix.len()..];
            let (index_text, tail) = match rest.split_once('.') {
                Some((index, tail)) => (index, Some(tail)),
                None => (rest, None),
            };
            let index = parse_index(index_text).ok_or_else(|| {
                RequestError::InvalidList(format!(
                    "{}: list indexes run from 1 to {MAX_LIST_INDEX}, without leading zeros",
                    shorten(wire)
                ))
            })?;
            match (structured, tail) {
                (true, Some(field)) if !field.is_empty() => {}
                (false, None) => {}
                (true, _) => {
                    return Err(RequestError::InvalidList(format!(
                        "{}: the items of {}{name} are structures, not values",
                        shorten(wire),
                        self.prefix
                    )));
                }
                (false, Some(_)) => {
                    return Err(RequestError::InvalidList(format!(
                        "{}: the items of {}{name} are values, not structures",
                        shorten(wire),
                        self.prefix
                    )));
                }
            }
            indexes.insert(index);
        }
        // Contiguous from 1: then the largest index is the count.
        if let Some(missing) = (1..).zip(&indexes).find(|(want, got)| want != *got) {
            return Err(RequestError::InvalidList(format!(
                "{list_prefix}{} is missing: list items are numbered from 1 without gaps",
                missing.0
            )));
        }
        Ok(indexes.into_iter().collect())
    }

    /// `name.1`, `name.2`, … as strings; empty if none.
    pub fn string_list(&self, name: &str) -> Result<Vec<&'a str>, RequestError> {
        let indexes = self.list_indexes(name, false)?;
        Ok(indexes
            .into_iter()
            .filter_map(|i| self.string(&format!("{name}.{i}")))
            .collect())
    }

    /// `name.1.*`, `name.2.*`, … as scopes; empty if none.
    pub fn structs(&self, name: &str) -> Result<Vec<Scope<'a>>, RequestError> {
        let indexes = self.list_indexes(name, true)?;
        Ok(indexes
            .into_iter()
            .map(|i| Scope {
                params: self.params,
                prefix: format!("{}{name}.{i}.", self.prefix),
            })
            .collect())
    }

    /// The nested structure `name` (`MetadataOptions.` …).
    pub fn child(&self, name: &str) -> Scope<'a> {
        Scope {
            params: self.params,
            prefix: format!("{}{name}.", self.prefix),
        }
    }

    /// `Filter.N.Name` + `Filter.N.Value.M`. Every filter needs a name and
    /// at least one value.
    pub fn filters(&self) -> Result<Vec<Filter>, RequestError> {
        let mut filters = Vec::new();
        for scope in self.structs("Filter")? {
            let name = scope.required_string("Name")?.to_string();
            let values: Vec<String> = scope
                .string_list("Value")?
                .into_iter()
                .map(str::to_string)
                .collect();
            if values.is_empty() {
                return Err(RequestError::MissingParameter(scope.wire_name("Value.1")));
            }
            filters.push(Filter { name, values });
        }
        Ok(filters)
    }
}
