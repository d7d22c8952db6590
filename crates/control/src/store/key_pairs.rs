//! Key pairs: only the public half is kept (EC2 returns the private key of
//! CreateKeyPair once and forgets it).

use rusqlite::{OptionalExtension, Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairRecord {
    /// The user's name for it, unique.
    pub name: String,
    /// `key-` + 17 hex.
    pub id: String,
    /// `rsa` or `ed25519`.
    pub key_type: String,
    pub fingerprint: String,
    /// OpenSSH format, one line.
    pub public_key: String,
    pub created_ms: i64,
}

const COLUMNS: &str = "name, id, key_type, fingerprint, public_key, created_ms";

fn from_row(row: &Row<'_>) -> rusqlite::Result<KeyPairRecord> {
    Ok(KeyPairRecord {
        name: row.get("name")?,
        id: row.get("id")?,
        key_type: row.get("key_type")?,
        fingerprint: row.get("fingerprint")?,
        public_key: row.get("public_key")?,
        created_ms: row.get("created_ms")?,
    })
}

impl Tx<'_> {
    /// Fails with `Duplicate` when the name (or id) is taken, which the
    /// API reports as `InvalidKeyPair.Duplicate`.
    pub fn insert_key_pair(&self, r: &KeyPairRecord) -> Result<(), StoreError> {
        self.conn
            .execute(
                &format!("INSERT INTO key_pairs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    r.name,
                    r.id,
                    r.key_type,
                    r.fingerprint,
                    r.public_key,
                    r.created_ms
                ],
            )
            .map_err(|e| StoreError::from_constraint(e, "key pair", &r.name))?;
        Ok(())
    }

    pub fn get_key_pair(&self, name: &str) -> Result<Option<KeyPairRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM key_pairs WHERE name = ?1"),
                [name],
                from_row,
            )
            .optional()?)
    }

    /// Key pairs by exact names and/or ids (both empty: all), by name.
    pub fn list_key_pairs(
        &self,
        names: &[String],
        ids: &[String],
    ) -> Result<Vec<KeyPairRecord>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("name", names);
        c.any_equal("id", ids);
        let sql = format!(
            "SELECT {COLUMNS} FROM key_pairs{} ORDER BY name",
            c.where_sql()
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes by name; whether it existed (EC2's DeleteKeyPair succeeds
    /// either way).
    pub fn delete_key_pair(&self, name: &str) -> Result<bool, StoreError> {
        let id: Option<String> = self
            .conn
            .query_row("SELECT id FROM key_pairs WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        let Some(id) = id else {
            return Ok(false);
        };
        self.conn
            .execute("DELETE FROM tags WHERE resource_id = ?1", [&id])?;
        self.conn
            .execute("DELETE FROM key_pairs WHERE name = ?1", [name])?;
        Ok(true)
    }
}
