//! Where an instance's files live under the data dir:
//!
//! ```text
//! DATA_DIR/instances/<id>/vm.json       the `flint vmm --config` file
//!                         console.log   the serial console, rotating with
//!                         console.log.1 (each capped, rate-limited)
//!                         vmm.log       the VMM's stdout + stderr (appended,
//!                                       one marker line per start)
//!                         vmm.sock      the per-VM control socket
//! DATA_DIR/volumes/<vol-id>.raw         volumes (the root volume too)
//! DATA_DIR/snapshots/<snap-id>.raw      snapshots (copies of volume files)
//! DATA_DIR/images/                      registered AMIs
//! ```

use std::path::{Path, PathBuf};

/// What the supervisor writes before each start, so that the VMM's last
/// words (`flint vmm: reason`) can be told apart from an earlier run's.
pub const START_MARKER: &str = "flint serve: starting the VMM";

#[derive(Clone, Debug)]
pub struct Layout {
    data_dir: PathBuf,
}

impl Layout {
    pub fn new(data_dir: &Path) -> Layout {
        Layout {
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn instances_dir(&self) -> PathBuf {
        self.data_dir.join("instances")
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.data_dir.join("volumes")
    }

    /// `id` has been validated as an instance id (hex after `i-`) before
    /// it gets here, so it cannot climb out of the directory.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.instances_dir().join(id)
    }

    pub fn vm_config(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("vm.json")
    }

    pub fn console(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("console.log")
    }

    /// The console's other file: the log rotates between the two.
    pub fn console_rotated(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("console.log.1")
    }

    pub fn vmm_log(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("vmm.log")
    }

    pub fn socket(&self, id: &str) -> PathBuf {
        self.instance_dir(id).join("vmm.sock")
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }

    /// `id` has been made by us (`snap-` + hex).
    pub fn snapshot(&self, snapshot_id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{snapshot_id}.raw"))
    }

    pub fn volume(&self, volume_id: &str) -> PathBuf {
        self.volumes_dir().join(format!("{volume_id}.raw"))
    }
}
