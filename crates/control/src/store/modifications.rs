//! ModifyVolume requests: one row per request, the latest row of a volume
//! being what DescribeVolumesModifications reports for it.

use rusqlite::{Row, params};

use super::pattern::Conditions;
use super::{StoreError, Tx, bad_value, now_ms, read_error};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModificationState {
    Modifying,
    Optimizing,
    Completed,
    Failed,
}

impl ModificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModificationState::Modifying => "modifying",
            ModificationState::Optimizing => "optimizing",
            ModificationState::Completed => "completed",
            ModificationState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<ModificationState> {
        [
            ModificationState::Modifying,
            ModificationState::Optimizing,
            ModificationState::Completed,
            ModificationState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A volume's size, type, IOPS and throughput: before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSpec {
    pub size_gib: u64,
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModificationRecord {
    pub seq: i64,
    pub volume_id: String,
    pub state: ModificationState,
    pub status_message: Option<String>,
    pub original: VolumeSpec,
    pub target: VolumeSpec,
    pub progress: u8,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

const COLUMNS: &str = "seq, volume_id, state, status_message, original_size_gib, target_size_gib, \
     original_type, target_type, original_iops, target_iops, original_throughput, \
     target_throughput, progress, start_ms, end_ms";

fn spec(row: &Row<'_>, which: &str) -> rusqlite::Result<VolumeSpec> {
    let size: i64 = row.get(format!("{which}_size_gib").as_str())?;
    let get_u32 = |name: String| -> rusqlite::Result<Option<u32>> {
        let v: Option<i64> = row.get(name.as_str())?;
        Ok(v.and_then(|v| u32::try_from(v).ok()))
    };
    Ok(VolumeSpec {
        size_gib: u64::try_from(size).unwrap_or(0),
        volume_type: row.get(format!("{which}_type").as_str())?,
        iops: get_u32(format!("{which}_iops"))?,
        throughput: get_u32(format!("{which}_throughput"))?,
    })
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<ModificationRecord> {
    let state: String = row.get("state")?;
    let progress: i64 = row.get("progress")?;
    Ok(ModificationRecord {
        seq: row.get("seq")?,
        volume_id: row.get("volume_id")?,
        state: ModificationState::parse(&state)
            .ok_or_else(|| bad_value(format!("modification state {state:?}")))?,
        status_message: row.get("status_message")?,
        original: spec(row, "original")?,
        target: spec(row, "target")?,
        progress: u8::try_from(progress.clamp(0, 100)).unwrap_or(0),
        start_ms: row.get("start_ms")?,
        end_ms: row.get("end_ms")?,
    })
}

fn size(gib: u64) -> Result<i64, StoreError> {
    i64::try_from(gib).map_err(|_| StoreError::Constraint("volume size".into()))
}

impl Tx<'_> {
    /// Records a modification in state `modifying`; returns its number.
    pub fn insert_modification(
        &self,
        volume_id: &str,
        original: &VolumeSpec,
        target: &VolumeSpec,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO volume_modifications (volume_id, state, original_size_gib, target_size_gib,
                original_type, target_type, original_iops, target_iops, original_throughput,
                target_throughput, progress, start_ms)
             VALUES (?1, 'modifying', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
            params![
                volume_id,
                size(original.size_gib)?,
                size(target.size_gib)?,
                original.volume_type,
                target.volume_type,
                original.iops,
                target.iops,
                original.throughput,
                target.throughput,
                now_ms(),
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Moves modification `seq` on; completed and failed ones get an end
    /// time (and completed ones progress 100).
    pub fn set_modification_state(
        &self,
        seq: i64,
        state: ModificationState,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = matches!(
            state,
            ModificationState::Completed | ModificationState::Failed
        );
        let progress = match state {
            ModificationState::Modifying => 0,
            ModificationState::Optimizing => 50,
            ModificationState::Completed => 100,
            ModificationState::Failed => 0,
        };
        self.conn.execute(
            "UPDATE volume_modifications SET state = ?2, status_message = ?3, progress = ?4,
                end_ms = CASE WHEN ?5 THEN ?6 ELSE end_ms END
             WHERE seq = ?1",
            params![seq, state.as_str(), message, progress, done, now_ms()],
        )?;
        Ok(())
    }

    /// The latest modification of each volume in `volume_ids` (empty: of
    /// every volume), by volume id.
    pub fn latest_modifications(
        &self,
        volume_ids: &[String],
    ) -> Result<Vec<ModificationRecord>, StoreError> {
        let mut c = Conditions::default();
        c.any_equal("volume_id", volume_ids);
        let filter = c.where_sql();
        let and_or_where = if filter.is_empty() { " WHERE" } else { " AND" };
        let sql = format!(
            "SELECT {COLUMNS} FROM volume_modifications{filter}{and_or_where} seq IN
                (SELECT MAX(seq) FROM volume_modifications GROUP BY volume_id)
             ORDER BY volume_id"
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(c.params()), from_row)?;
        rows.collect::<Result<_, _>>()
            .map_err(read_error("volume modification"))
    }

    /// Modifications left unfinished (the daemon died while applying them).
    pub fn unfinished_modifications(&self) -> Result<Vec<ModificationRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM volume_modifications WHERE state IN ('modifying', 'optimizing')
             ORDER BY seq"
        );
        let mut statement = self.conn.prepare(&sql)?;
        let rows = statement.query_map([], from_row)?;
        rows.collect::<Result<_, _>>()
            .map_err(read_error("volume modification"))
    }
}
