//! Tags on any resource, keyed by the resource's id.

use std::collections::HashMap;

use rusqlite::params;

use super::pattern::Conditions;
use super::{StoreError, Tx};

/// EC2's limit of user tags per resource.
pub const TAG_LIMIT: usize = 50;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub resource_id: String,
    pub key: String,
    pub value: String,
}

/// DescribeTags' selection; all but `resource_ids` are EC2 patterns
/// (a resource type is a prefix pattern such as `i-*`).
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    pub resource_ids: Vec<String>,
    pub resource_id_patterns: Vec<String>,
    pub keys: Vec<String>,
    pub values: Vec<String>,
}

impl Tx<'_> {
    /// Adds or overwrites tags (CreateTags). More than [`TAG_LIMIT`] on the
    /// resource afterwards is `TagLimitExceeded`, and since the caller's
    /// transaction then rolls back, none of the tags is applied.
    pub fn set_tags(&self, resource_id: &str, tags: &[(String, String)]) -> Result<(), StoreError> {
        let mut statement = self.conn.prepare_cached(
            "INSERT INTO tags (resource_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (resource_id, key) DO UPDATE SET value = excluded.value",
        )?;
        for (key, value) in tags {
            statement.execute(params![resource_id, key, value])?;
        }
        let count: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM tags WHERE resource_id = ?1",
            [resource_id],
            |row| row.get(0),
        )?;
        if count > TAG_LIMIT as i64 {
            return Err(StoreError::TagLimitExceeded {
                resource: resource_id.to_string(),
                limit: TAG_LIMIT,
            });
        }
        Ok(())
    }

    /// DeleteTags: each key, only if its value matches when a value is
    /// given; no keys at all deletes every tag of the resource. Returns how
    /// many were deleted.
    pub fn delete_tags(
        &self,
        resource_id: &str,
        tags: &[(String, Option<String>)],
    ) -> Result<usize, StoreError> {
        if tags.is_empty() {
            return Ok(self
                .conn
                .execute("DELETE FROM tags WHERE resource_id = ?1", [resource_id])?);
        }
        let mut deleted = 0;
        for (key, value) in tags {
            deleted += self.conn.execute(
                "DELETE FROM tags WHERE resource_id = ?1 AND key = ?2 AND (?3 IS NULL OR value = ?3)",
                params![resource_id, key, value],
            )?;
        }
        Ok(deleted)
    }

    /// A resource's tags as (key, value), by key.
    pub fn tags_of(&self, resource_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT key, value FROM tags WHERE resource_id = ?1 ORDER BY key")?;
        let rows = statement.query_map([resource_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The tags of many resources in one query (DescribeInstances on a
    /// thousand instances must not cost a thousand queries).
    pub fn tags_of_many(
        &self,
        resource_ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, StoreError> {
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        if resource_ids.is_empty() {
            return Ok(out);
        }
        let mut c = Conditions::default();
        c.any_equal("resource_id", resource_ids);
        let sql = format!(
            "SELECT resource_id, key, value FROM tags{} ORDER BY resource_id, key",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(c.params()))?;
        while let Some(row) = rows.next()? {
            out.entry(row.get(0)?)
                .or_default()
                .push((row.get(1)?, row.get(2)?));
        }
        Ok(out)
    }

    pub fn list_tags(&self, filter: &TagFilter) -> Result<Vec<Tag>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("resource_id", &filter.resource_ids);
        c.any_pattern("resource_id", &filter.resource_id_patterns);
        c.any_pattern("key", &filter.keys);
        c.any_pattern("value", &filter.values);
        let sql = format!(
            "SELECT resource_id, key, value FROM tags{} ORDER BY resource_id, key",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), |row| {
            Ok(Tag {
                resource_id: row.get(0)?,
                key: row.get(1)?,
                value: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
