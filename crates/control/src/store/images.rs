//! Registered images (AMIs): a disk file under the data dir.

use std::fmt;

use rusqlite::{OptionalExtension, Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx, bad_value, read_error};

/// EC2's image states that Flint uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageState {
    /// Being imported (qcow2 conversion, copy).
    Pending,
    Available,
    Failed,
}

impl ImageState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Pending => "pending",
            ImageState::Available => "available",
            ImageState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ImageState> {
        [
            ImageState::Pending,
            ImageState::Available,
            ImageState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for ImageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    pub id: String,
    /// Unique, as AMI names are within an account and region.
    pub name: String,
    /// What the user registered (`ImageLocation`).
    pub location: String,
    /// The image file Flint boots from, under the data dir.
    pub path: String,
    pub size_bytes: u64,
    /// `legacy-bios` or `uefi`.
    pub boot_mode: String,
    pub state: ImageState,
    pub created_ms: i64,
}

/// DescribeImages' selection; names and states are EC2 patterns.
#[derive(Clone, Debug, Default)]
pub struct ImageFilter {
    pub ids: Vec<String>,
    pub names: Vec<String>,
    pub states: Vec<String>,
    pub tags: Vec<(String, Vec<String>)>,
    pub tag_keys: Vec<String>,
}

const COLUMNS: &str = "id, name, location, path, size_bytes, boot_mode, state, created_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    let state: String = row.get("state")?;
    let size: i64 = row.get("size_bytes")?;
    Ok(ImageRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        location: row.get("location")?,
        path: row.get("path")?,
        size_bytes: u64::try_from(size).unwrap_or(0),
        boot_mode: row.get("boot_mode")?,
        state: ImageState::parse(&state)
            .ok_or_else(|| bad_value(format!("image state {state:?}")))?,
        created_ms: row.get("created_ms")?,
    })
}

impl Tx<'_> {
    /// Fails with `Duplicate` if the id or the name is taken.
    pub fn insert_image(&self, r: &ImageRecord) -> Result<(), StoreError> {
        let size = i64::try_from(r.size_bytes)
            .map_err(|_| StoreError::Constraint(format!("image {} size", r.id)))?;
        self.conn
            .execute(
                &format!("INSERT INTO images ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    r.id,
                    r.name,
                    r.location,
                    r.path,
                    size,
                    r.boot_mode,
                    r.state.as_str(),
                    r.created_ms
                ],
            )
            .map_err(|e| {
                StoreError::from_constraint(e, "image", &format!("{} ({})", r.id, r.name))
            })?;
        Ok(())
    }

    pub fn get_image(&self, id: &str) -> Result<Option<ImageRecord>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM images WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
            .map_err(read_error("image"))
    }

    pub fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRecord>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("id", &filter.ids);
        c.any_pattern("name", &filter.names);
        c.any_pattern("state", &filter.states);
        for (key, values) in &filter.tags {
            c.tag_matches("images.id", key, values);
        }
        c.tag_key_matches("images.id", &filter.tag_keys);
        let sql = format!(
            "SELECT {COLUMNS} FROM images{} ORDER BY created_ms, id",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        rows.collect::<Result<_, _>>().map_err(read_error("image"))
    }

    pub fn set_image_state(
        &self,
        id: &str,
        state: ImageState,
        size_bytes: Option<u64>,
    ) -> Result<(), StoreError> {
        let size = size_bytes
            .map(i64::try_from)
            .transpose()
            .map_err(|_| StoreError::Constraint(format!("image {id} size")))?;
        let changed = self.conn.execute(
            "UPDATE images SET state = ?2, size_bytes = COALESCE(?3, size_bytes) WHERE id = ?1",
            params![id, state.as_str(), size],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound {
                kind: "image",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// Deregisters: the record and its tags. Instances launched from it
    /// keep its id, as on EC2.
    pub fn delete_image(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM tags WHERE resource_id = ?1", [id])?;
        if self
            .conn
            .execute("DELETE FROM images WHERE id = ?1", [id])?
            == 0
        {
            return Err(StoreError::NotFound {
                kind: "image",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}
