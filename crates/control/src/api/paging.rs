//! `MaxResults` / `NextToken`. A token is opaque to the client: the hex of
//! `<action>:<key of the last item returned>`, so that a token is only good
//! for the action that issued it and a forged or mangled one is
//! `InvalidPaginationToken`. Items are ordered by a key that is unique and
//! stable (an id, a sequence number zero-padded), and a page starts after
//! the token's key, so that deletions between pages skip nothing.

use std::ops::RangeInclusive;

use ec2_wire::error::Ec2Error;
use ec2_wire::request::Ec2Request;

/// `ActionSpec::params` entries for a paginated action.
pub const PAGING_PARAMS: [&str; 2] = ["MaxResults", "NextToken"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// None: everything (EC2 returns all results when MaxResults is absent).
    pub max_results: Option<usize>,
    /// Start after the item with this key.
    pub after: Option<String>,
}

impl PageRequest {
    /// Reads `MaxResults` (within `range`, as the action's model says) and
    /// `NextToken` (issued by `scope`, normally the action name).
    pub fn parse(
        req: &Ec2Request,
        scope: &str,
        range: RangeInclusive<i64>,
    ) -> Result<PageRequest, Ec2Error> {
        let max = req.int("MaxResults", range)?;
        let after = match req.string("NextToken") {
            None | Some("") => None,
            Some(token) => Some(decode_token(scope, token)?),
        };
        Ok(PageRequest {
            max_results: max.and_then(|m| usize::try_from(m).ok()),
            after,
        })
    }
}

pub fn encode_token(scope: &str, key: &str) -> String {
    hex::encode(format!("{scope}:{key}"))
}

pub fn decode_token(scope: &str, token: &str) -> Result<String, Ec2Error> {
    let bad = || Ec2Error::invalid_pagination_token(token);
    if token.len() > 4096 {
        return Err(bad());
    }
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix(scope)
        .and_then(|rest| rest.strip_prefix(':'))
        .map(str::to_string)
        .ok_or_else(bad)
}

/// One page of `items` (sorted here by `key`), and the token for the next
/// page if there are more.
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    page: &PageRequest,
    scope: &str,
) -> (Vec<T>, Option<String>) {
    items.sort_by_key(|item| key(item));
    if let Some(after) = &page.after {
        items.retain(|item| key(item).as_str() > after.as_str());
    }
    let Some(max) = page.max_results else {
        return (items, None);
    };
    if items.len() <= max {
        return (items, None);
    }
    items.truncate(max);
    let next = items.last().map(|last| encode_token(scope, &key(last)));
    (items, next)
}
