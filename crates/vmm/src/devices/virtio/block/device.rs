//! `Block`: the virtio-blk `VirtioDevice` and its event-loop side.
//!
//! Threads: the transport calls `activate`/`reset`/config accessors on a
//! vCPU thread; queue and completion events run on the VMM's event-loop
//! thread. Both go through the same lock (the device is shared as
//! `Arc<Mutex<Block>>`). Registering fds needs the event loop's `EventOps`,
//! which only `process`/`init` get, so `activate` and `reset` only change
//! state and write `ctrl_evt`; the loop then adds the queue fds (or
//! removes stale ones).
//!
//! Event ids (the `data` of each registered fd): 0 = ctrl, and for queue
//! i: 1 + 2i = io_uring completions, 2 + 2i = guest notification; from
//! EVENT_LIMITS up: the volume's limits changed, then queue i's throttle
//! timer at EVENT_LIMITS + 1 + i.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tracing::error;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use thiserror::Error;
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::config::ConfigSpace;
use super::direct::{DirectError, DirectFile};
use super::queue::{QueueError, QueueHandler};
use super::slot::Disk;
use super::volume::{Volume, VolumeError};
use super::{BlockConfig, BlockMetrics, MAX_QUEUES, QUEUE_SIZE, SECTOR_SHIFT, SERIAL_MAX_LEN};
use crate::devices::virtio::{
    ActivateError, ActivatedQueue, FEATURE_RING_EVENT_IDX, FEATURE_VERSION_1, TYPE_BLOCK,
    VirtioDevice, VirtioInterrupt, check_queue_subset,
};
use crate::memory::GuestMemoryMmap;

const EVENT_CTRL: u32 = 0;
const EVENT_LIMITS: u32 = 0x8000_0000;

fn timer_event(queue: usize) -> u32 {
    EVENT_LIMITS + 1 + queue as u32
}

fn completion_event(queue: usize) -> u32 {
    1 + 2 * queue as u32
}

fn notify_event(queue: usize) -> u32 {
    2 + 2 * queue as u32
}

#[derive(Debug, Error)]
pub enum BlockError {
    #[error("disk image {0}: no such file")]
    NotFound(PathBuf),
    #[error("disk image {0}: is a directory")]
    IsDirectory(PathBuf),
    #[error("disk image {0}: not a regular file or block device")]
    NotAFile(PathBuf),
    #[error("disk image {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("disk image {0} is in use by another process")]
    InUse(PathBuf),
    #[error("disk serial {0:?} is longer than {SERIAL_MAX_LEN} bytes")]
    SerialTooLong(String),
    #[error("disk serial {0:?} contains a NUL byte")]
    SerialHasNul(String),
    #[error("virtio-blk queue set-up: {0}")]
    Queue(#[from] QueueError),
    #[error("virtio-blk eventfd: {0}")]
    EventFd(io::Error),
    #[error("virtio-blk volume: {0}")]
    Volume(#[from] VolumeError),
    #[error("{0}")]
    Direct(#[from] DirectError),
}

pub struct Block {
    path: PathBuf,
    disk: Arc<Disk>,
    config: ConfigSpace,
    features: u64,
    acked_features: u64,
    /// One entry per request queue offered.
    queue_sizes: Vec<u16>,
    handlers: Vec<QueueHandler>,
    ctrl_evt: EventFd,
    metrics: Arc<BlockMetrics>,
    volume: Arc<Volume>,
    active: bool,
    /// The active queues' notify fds are in the event loop.
    registered: bool,
    /// Fds still in the event loop that belong to a reset queue; removed
    /// (and closed) by the loop.
    stale: Vec<EventFd>,
    /// init() could not register our fds: the device cannot work.
    init_failed: bool,
}

impl Block {
    /// Opens the disk image and sets up the I/O engine. Fails with a clear
    /// error for a missing file, a directory, a file another VMM holds, a
    /// bad serial, or io_uring being unavailable.
    pub fn new(cfg: BlockConfig) -> Result<Self, BlockError> {
        let id = serial_id(cfg.serial.as_deref())?;
        let (file, size) = open_image(&cfg.path, cfg.read_only)?;
        let direct = if cfg.direct {
            Some(DirectFile::open(&cfg.path, cfg.read_only)?)
        } else {
            None
        };
        // A tail that is not a whole sector is not exposed.
        let capacity = size >> SECTOR_SHIFT;
        let num_queues = cfg.num_queues.clamp(1, MAX_QUEUES);
        let disk = Arc::new(Disk {
            file,
            direct,
            capacity: AtomicU64::new(capacity),
            read_only: cfg.read_only,
            id,
            zero_range_unsupported: AtomicBool::new(false),
            work: cfg.work,
        });
        let volume = match cfg.volume {
            Some(v) => v,
            None => {
                let name = cfg.serial.clone();
                Volume::new(name.unwrap_or_else(|| cfg.path.display().to_string()), None)?
            }
        };
        volume.set_size_bytes(capacity << SECTOR_SHIFT);
        let metrics = volume.counters().clone();
        let handlers = (0..num_queues)
            .map(|i| QueueHandler::new(i, u32::from(QUEUE_SIZE), disk.clone(), volume.clone()))
            .collect::<Result<Vec<_>, _>>()?;

        let mut features = FEATURE_VERSION_1
            | FEATURE_RING_EVENT_IDX
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_BLK_SIZE)
            | (1 << VIRTIO_BLK_F_FLUSH);
        if num_queues > 1 {
            features |= 1 << VIRTIO_BLK_F_MQ;
        }
        if cfg.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        } else {
            // Offered only where they can succeed; a read-only disk still
            // answers them (IOERR) if a guest sends them anyway.
            features |= (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
        }

        Ok(Block {
            path: cfg.path,
            disk,
            config: ConfigSpace::new(capacity, num_queues),
            features,
            acked_features: 0,
            queue_sizes: vec![QUEUE_SIZE; usize::from(num_queues)],
            handlers,
            ctrl_evt: EventFd::new(EFD_NONBLOCK).map_err(BlockError::EventFd)?,
            metrics,
            volume,
            active: false,
            registered: false,
            stale: Vec::new(),
            init_failed: false,
        })
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.disk.capacity.load(Ordering::Acquire)
    }

    pub fn read_only(&self) -> bool {
        self.disk.read_only
    }

    /// Re-reads the backing file's size and exposes it as the capacity.
    /// Returns the new capacity in sectors; the transport then tells the
    /// driver (configuration change interrupt). Requests already checked
    /// against the old size finish as the host file lets them.
    pub fn resize(&mut self) -> Result<u64, BlockError> {
        let size = (&self.disk.file)
            .seek(SeekFrom::End(0))
            .map_err(|source| BlockError::Open {
                path: self.path.clone(),
                source,
            })?;
        let capacity = size >> SECTOR_SHIFT;
        self.disk.capacity.store(capacity, Ordering::Release);
        self.config.set_capacity(capacity);
        self.volume.set_size_bytes(capacity << SECTOR_SHIFT);
        Ok(capacity)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters, shareable with the API thread.
    pub fn metrics(&self) -> Arc<BlockMetrics> {
        self.metrics.clone()
    }

    /// The volume: id, size, EBS-named metrics, live limits
    /// (`Volume::set_limits`).
    pub fn volume(&self) -> &Arc<Volume> {
        &self.volume
    }

    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    fn kick_event_loop(&self) {
        // Cannot fail short of the counter overflowing, which a blocked
        // loop would need 2^64 kicks for.
        let _ = self.ctrl_evt.write(1);
    }

    fn on_ctrl(&mut self, ops: &mut EventOps) {
        let _ = self.ctrl_evt.read();
        if !self.active || self.registered {
            return;
        }
        for (i, h) in self.handlers.iter().enumerate() {
            let Some(fd) = h.notify_watch() else { continue };
            if let Err(e) = ops.add(Events::with_data(fd, notify_event(i), EventSet::IN)) {
                error!(
                    "virtio-blk {}: cannot watch queue {i}: {e}",
                    self.path.display()
                );
                self.init_failed = true;
            }
        }
        self.registered = true;
        // The guest may have queued requests (and notified) before the fds
        // were watched: look now.
        for h in &mut self.handlers {
            h.process_queue();
        }
    }

    fn remove_stale(&mut self, ops: &mut EventOps) {
        for fd in self.stale.drain(..) {
            // Failure means it was never added; nothing else to undo.
            let _ = ops.remove(Events::empty(&fd));
        }
    }

    #[cfg(test)]
    pub(super) fn handler(&mut self, i: usize) -> &mut QueueHandler {
        &mut self.handlers[i]
    }
}

/// The GET_ID answer: the serial, NUL-padded to 20 bytes.
fn serial_id(serial: Option<&str>) -> Result<[u8; SERIAL_MAX_LEN], BlockError> {
    let mut id = [0u8; SERIAL_MAX_LEN];
    if let Some(s) = serial {
        if s.len() > SERIAL_MAX_LEN {
            return Err(BlockError::SerialTooLong(s.to_string()));
        }
        if s.contains('\0') {
            return Err(BlockError::SerialHasNul(s.to_string()));
        }
        id[..s.len()].copy_from_slice(s.as_bytes());
    }
    Ok(id)
}

/// Opens the image and returns it with its size in bytes.
fn open_image(path: &Path, read_only: bool) -> Result<(File, u64), BlockError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BlockError::NotFound(path.to_path_buf()));
        }
        Err(source) => {
            return Err(BlockError::Open {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if meta.is_dir() {
        return Err(BlockError::IsDirectory(path.to_path_buf()));
    }
    if !meta.is_file() && !meta.file_type().is_block_device() {
        return Err(BlockError::NotAFile(path.to_path_buf()));
    }
    let open_err = |source| BlockError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .map_err(open_err)?;
    // Two VMMs writing one image corrupt it: take an advisory lock,
    // shared for read-only users, released when the process exits.
    let op = if read_only {
        libc::LOCK_SH
    } else {
        libc::LOCK_EX
    };
    // SAFETY: flock on an fd we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(BlockError::InUse(path.to_path_buf()));
        }
        return Err(open_err(e));
    }
    // Works for block devices too, whose metadata length is 0.
    let size = file.seek(SeekFrom::End(0)).map_err(open_err)?;
    Ok((file, size))
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn device_features(&self) -> u64 {
        self.features
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Every field is read-only (no VIRTIO_BLK_F_CONFIG_WCE).
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        acked_features: u64,
        queues: Vec<ActivatedQueue>,
        interrupt: Arc<dyn VirtioInterrupt>,
    ) -> Result<(), ActivateError> {
        if self.active {
            return Err(ActivateError::AlreadyActive);
        }
        if self.init_failed {
            return Err(ActivateError::Engine(
                "the device's fds could not be registered with the event loop".into(),
            ));
        }
        // A driver may use fewer queues than offered (Linux: one per CPU
        // it has, up to num_queues; firmware: queue 0 only); the others
        // stay idle.
        check_queue_subset(&queues, &mem, &self.queue_sizes)?;
        let acked = acked_features & self.features;
        let event_idx = acked & FEATURE_RING_EVENT_IDX != 0;
        for q in queues {
            let index = usize::from(q.index);
            let r = self.handlers[index].activate(
                q.queue,
                event_idx,
                q.notify,
                mem.clone(),
                interrupt.clone(),
            );
            if let Err(e) = r {
                for h in &mut self.handlers {
                    h.reset();
                }
                return Err(ActivateError::Io(e));
            }
        }
        self.acked_features = acked;
        self.active = true;
        self.registered = false;
        self.kick_event_loop();
        Ok(())
    }

    fn reset(&mut self) -> Option<Vec<EventFd>> {
        if !self.active {
            return None;
        }
        let mut notifies = Vec::with_capacity(self.handlers.len());
        for h in &mut self.handlers {
            if let Some((notify, watch)) = h.reset() {
                if self.registered {
                    self.stale.push(watch);
                }
                notifies.push(notify);
            }
        }
        self.active = false;
        self.registered = false;
        self.acked_features = 0;
        self.kick_event_loop();
        Some(notifies)
    }

    fn needs_reset(&self) -> bool {
        self.handlers.iter().any(|h| h.is_broken())
    }
}

impl MutEventSubscriber for Block {
    fn init(&mut self, ops: &mut EventOps) {
        let mut ok = ops
            .add(Events::with_data(&self.ctrl_evt, EVENT_CTRL, EventSet::IN))
            .is_ok();
        let limits = Events::with_data(self.volume.limits_changed(), EVENT_LIMITS, EventSet::IN);
        ok &= ops.add(limits).is_ok();
        for (i, h) in self.handlers.iter().enumerate() {
            let ev = Events::with_data(h.completion_fd(), completion_event(i), EventSet::IN);
            ok &= ops.add(ev).is_ok();
            let timer = Events::with_data(h.timer(), timer_event(i), EventSet::IN);
            ok &= ops.add(timer).is_ok();
        }
        if !ok {
            error!(
                "virtio-blk {}: cannot register with the event loop",
                self.path.display()
            );
            self.init_failed = true;
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        self.remove_stale(ops);
        let data = events.data();
        if data == EVENT_CTRL {
            self.on_ctrl(ops);
            return;
        }
        if data == EVENT_LIMITS {
            let _ = self.volume.limits_changed().read();
            for h in &mut self.handlers {
                h.handle_limits_changed();
            }
            return;
        }
        if data > EVENT_LIMITS {
            if let Some(h) = self.handlers.get_mut((data - EVENT_LIMITS - 1) as usize) {
                h.handle_timer();
            }
            return;
        }
        let queue = ((data - 1) / 2) as usize;
        let Some(h) = self.handlers.get_mut(queue) else {
            return;
        };
        if data == completion_event(queue) {
            h.handle_completions();
        } else {
            h.handle_notify();
        }
    }
}
