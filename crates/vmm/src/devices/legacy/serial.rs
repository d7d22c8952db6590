//! The COM1 console: a 16550A UART (vm-superio's model) on the port bus.
//!
//! Output goes to a [`ConsoleSink`]: the instance's console log file and/or
//! the VMM's stdout. Input comes from [`SerialInput`] (stdin, or any other
//! readable fd, driven by the event manager) and from
//! [`SerialDevice::queue_input`] (the control API).
//!
//! The guest's interrupt is an [`EventFd`]: the VMM registers
//! [`SerialDevice::interrupt_evt`] as an irqfd for GSI `IRQ_COM1`, so a
//! write to it injects an edge on the IOAPIC pin without a trip through
//! the VMM.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use thiserror::Error;
use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::console_log::{ConsoleLog, LogCounters, LogLimits};
use crate::bus::BusDevice;

/// Number of I/O ports a 16550 decodes (`PORT_COM1..PORT_COM1 + 8`).
pub const SERIAL_PORT_LEN: u64 = 8;

/// Bytes injected through [`SerialDevice::queue_input`] wait here until the
/// guest makes room in the 64-byte receive FIFO. Bounded so that a client
/// pasting a file cannot grow the VMM without limit.
pub const INPUT_QUEUE_LIMIT: usize = 64 * 1024;

/// Offset of the receive/transmit holding register.
const DATA_OFFSET: u64 = 0;

#[derive(Debug, Error)]
pub enum SerialError {
    #[error("cannot create the serial interrupt eventfd: {0}")]
    EventFd(#[source] io::Error),
    #[error("cannot open console log {path}: {source}")]
    OpenLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot duplicate the console input fd: {0}")]
    DupInput(#[source] io::Error),
}

/// Where the console goes (`--console PATH|stdio`, and the daemon's
/// per-instance console log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The instance's console log (and `PATH.1`); see [`ConsoleLog`].
    pub log_path: Option<PathBuf>,
    /// Its size and rate limits.
    pub log_limits: LogLimits,
    /// Also write guest output to stdout (and, separately, the VMM may read
    /// stdin with [`SerialInput::stdin`]).
    pub stdio: bool,
}

/// `vm_superio::Trigger` for an [`EventFd`] (orphan rule: we need a newtype).
#[derive(Debug)]
pub struct EventFdTrigger(EventFd);

impl EventFdTrigger {
    pub fn new(evt: EventFd) -> Self {
        EventFdTrigger(evt)
    }
}

impl Trigger for EventFdTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

impl std::ops::Deref for EventFdTrigger {
    type Target = EventFd;

    fn deref(&self) -> &EventFd {
        &self.0
    }
}

struct SinkTarget {
    name: &'static str,
    writer: Box<dyn Write + Send>,
    dropped: u64,
}

/// The console output: every byte the guest transmits is written straight
/// to each target (no user-space buffering, so a VMM crash loses nothing
/// that the guest sent). A target that fails — disk full, stdout closed,
/// a non-blocking terminal that is full — just drops the byte and counts
/// it; the guest is never stalled or stopped by its console.
pub struct ConsoleSink {
    targets: Vec<SinkTarget>,
    /// The log's own counters (rate-limited and failed bytes).
    log: Option<Arc<LogCounters>>,
}

impl ConsoleSink {
    /// A sink with no targets (output discarded).
    pub fn empty() -> Self {
        ConsoleSink {
            targets: Vec::new(),
            log: None,
        }
    }

    pub fn from_config(config: &ConsoleConfig) -> Result<Self, SerialError> {
        let mut sink = Self::empty();
        if let Some(path) = &config.log_path {
            let log = ConsoleLog::open(path, config.log_limits).map_err(|source| {
                SerialError::OpenLog {
                    path: path.clone(),
                    source,
                }
            })?;
            sink.log = Some(log.counters());
            sink.add_target("log", Box::new(log));
        }
        if config.stdio {
            sink.add_target("stdout", Box::new(StdoutWriter));
        }
        Ok(sink)
    }

    /// Adds another destination (tests, or later an in-memory ring for
    /// GetConsoleOutput).
    pub fn add_target(&mut self, name: &'static str, writer: Box<dyn Write + Send>) {
        self.targets.push(SinkTarget {
            name,
            writer,
            dropped: 0,
        });
    }

    /// Bytes each target failed to take, by target name.
    pub fn dropped(&self) -> Vec<(&'static str, u64)> {
        self.targets.iter().map(|t| (t.name, t.dropped)).collect()
    }

    /// Total bytes dropped over all targets, the log's rate limit and
    /// failed writes included.
    pub fn dropped_total(&self) -> u64 {
        let log = self.log.as_ref().map_or(0, |c| {
            c.dropped_rate.load(Ordering::Relaxed) + c.dropped_io.load(Ordering::Relaxed)
        });
        self.targets.iter().map(|t| t.dropped).sum::<u64>() + log
    }

    /// The console log's counters, if there is a log.
    pub fn log_counters(&self) -> Option<&LogCounters> {
        self.log.as_deref()
    }
}

impl Write for ConsoleSink {
    /// Never fails: per-target failures are counted, not reported, because
    /// vm-superio would otherwise treat the byte as lost for every target.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for target in &mut self.targets {
            if target
                .writer
                .write_all(buf)
                .and_then(|()| target.writer.flush())
                .is_err()
            {
                target.dropped = target.dropped.saturating_add(buf.len() as u64);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes to fd 1 through `std::io::stdout()`, flushing every time so that
/// nothing sits in Rust's line buffer when the VMM dies.
struct StdoutWriter;

impl Write for StdoutWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = io::stdout().lock();
        let n = out.write(buf)?;
        out.flush()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// COM1 as a bus device. Share it as `Arc<Mutex<SerialDevice>>`: the port
/// bus, the stdin subscriber and the control API all hold a clone.
pub struct SerialDevice {
    serial: Serial<EventFdTrigger, NoEvents, ConsoleSink>,
    /// Injected bytes waiting for FIFO room (see [`INPUT_QUEUE_LIMIT`]).
    pending: VecDeque<u8>,
    /// Signalled when the guest drains the FIFO while [`SerialInput`] has
    /// paused reading because there was no room. Guarded by our mutex, like
    /// `input_paused`, so the pause/wake handshake cannot lose a wake-up.
    input_wakeup: EventFd,
    input_paused: bool,
}

impl SerialDevice {
    pub fn new(sink: ConsoleSink) -> Result<Self, SerialError> {
        let interrupt = EventFd::new(EFD_NONBLOCK).map_err(SerialError::EventFd)?;
        let input_wakeup = EventFd::new(EFD_NONBLOCK).map_err(SerialError::EventFd)?;
        Ok(SerialDevice {
            serial: Serial::new(EventFdTrigger::new(interrupt), sink),
            pending: VecDeque::new(),
            input_wakeup,
            input_paused: false,
        })
    }

    pub fn from_config(config: &ConsoleConfig) -> Result<Self, SerialError> {
        Self::new(ConsoleSink::from_config(config)?)
    }

    /// Register this with KVM as an irqfd for GSI `layout::IRQ_COM1`.
    pub fn interrupt_evt(&self) -> &EventFd {
        self.serial.interrupt_evt()
    }

    /// The console sink (for its drop counters).
    pub fn sink(&self) -> &ConsoleSink {
        self.serial.writer()
    }

    /// Queues bytes for the guest to read (the control API's console
    /// input). Returns how many were accepted: fewer than `bytes.len()` only
    /// when [`INPUT_QUEUE_LIMIT`] bytes are already waiting.
    pub fn queue_input(&mut self, bytes: &[u8]) -> usize {
        let room = INPUT_QUEUE_LIMIT.saturating_sub(self.pending.len());
        let accepted = bytes.len().min(room);
        self.pending.extend(&bytes[..accepted]);
        self.pump_input();
        accepted
    }

    /// How many bytes the receive FIFO can take right now without queueing
    /// (zero while earlier injected bytes are still waiting, so that input
    /// stays in order).
    pub fn input_room(&self) -> usize {
        if self.pending.is_empty() {
            self.serial.fifo_capacity()
        } else {
            0
        }
    }

    /// Bytes queued but not yet in the receive FIFO.
    pub fn pending_input(&self) -> usize {
        self.pending.len()
    }

    /// Moves queued bytes into the FIFO as far as it has room.
    fn pump_input(&mut self) {
        while !self.pending.is_empty() && self.serial.fifo_capacity() > 0 {
            let n = self.pending.len().min(self.serial.fifo_capacity());
            let chunk: Vec<u8> = self.pending.drain(..n).collect();
            // The only errors are a full FIFO (checked above) and a failed
            // eventfd write (counter overflow: the interrupt is already
            // pending), so nothing is lost by ignoring them.
            let _ = self.serial.enqueue_raw_bytes(&chunk);
        }
    }

    /// Called after the guest read the receive register.
    fn after_guest_read(&mut self) {
        self.pump_input();
        if self.input_paused && self.input_room() > 0 {
            self.input_paused = false;
            let _ = self.input_wakeup.write(1);
        }
    }

    fn read_byte(&mut self, offset: u64) -> u8 {
        if offset >= SERIAL_PORT_LEN {
            return 0xff;
        }
        let value = self.serial.read(offset as u8);
        if offset == DATA_OFFSET {
            self.after_guest_read();
        }
        value
    }

    fn write_byte(&mut self, offset: u64, value: u8) {
        if offset >= SERIAL_PORT_LEN {
            return;
        }
        // Errors: the sink never fails, and a failed interrupt eventfd write
        // means the counter is saturated, i.e. an interrupt is pending.
        let _ = self.serial.write(offset as u8, value);
    }
}

impl BusDevice for SerialDevice {
    /// The UART's registers are byte-wide; wider accesses are split into
    /// consecutive byte accesses, as the ISA bus would.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = self.read_byte(offset.saturating_add(i as u64));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, byte) in data.iter().enumerate() {
            self.write_byte(offset.saturating_add(i as u64), *byte);
        }
    }
}

/// Feeds the guest's console from a readable fd (stdin) under an
/// `event_manager::EventManager`. It reads only when the receive FIFO has
/// room; when the FIFO is full it stops watching the fd (the epoll loop is
/// level-triggered, so it would otherwise spin) until the guest drains the
/// FIFO. End of file or a read error ends input for good; output is not
/// affected.
pub struct SerialInput<R: Read + AsRawFd + Send> {
    serial: Arc<Mutex<SerialDevice>>,
    input: R,
    wakeup: EventFd,
    watching_input: bool,
    stopped: bool,
}

impl SerialInput<File> {
    /// Reads the VMM's stdin. The fd is duplicated: std's `Stdin` keeps its
    /// own buffer, which would hide bytes from epoll, so we read the fd
    /// directly. (Put the terminal in raw mode first if the VMM owns one.)
    pub fn stdin(serial: Arc<Mutex<SerialDevice>>) -> Result<Self, SerialError> {
        use std::os::fd::AsFd;
        let fd = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(SerialError::DupInput)?;
        Self::new(serial, File::from(fd))
    }
}

impl<R: Read + AsRawFd + Send> SerialInput<R> {
    pub fn new(serial: Arc<Mutex<SerialDevice>>, input: R) -> Result<Self, SerialError> {
        let wakeup = lock(&serial)
            .input_wakeup
            .try_clone()
            .map_err(SerialError::EventFd)?;
        Ok(SerialInput {
            serial,
            input,
            wakeup,
            watching_input: false,
            stopped: false,
        })
    }

    /// True once input has ended (EOF, read error, or an fd epoll refuses).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    fn watch_input(&mut self, ops: &mut EventOps) {
        if self.watching_input || self.stopped {
            return;
        }
        // epoll refuses regular files and /dev/null (EPERM): such an input
        // can never be waited on, so console input is simply off.
        match ops.add(Events::new(&self.input, EventSet::IN)) {
            Ok(()) => self.watching_input = true,
            Err(_) => self.stop(ops),
        }
    }

    fn unwatch_input(&mut self, ops: &mut EventOps) {
        if self.watching_input {
            let _ = ops.remove(Events::empty(&self.input));
            self.watching_input = false;
        }
    }

    fn stop(&mut self, ops: &mut EventOps) {
        self.unwatch_input(ops);
        let _ = ops.remove(Events::empty(&self.wakeup));
        self.stopped = true;
    }

    fn handle_input(&mut self, ops: &mut EventOps) {
        let room = {
            let mut serial = lock(&self.serial);
            let room = serial.input_room();
            if room == 0 {
                // Set under the device lock so that a guest read that makes
                // room afterwards sees the flag and wakes us.
                serial.input_paused = true;
            }
            room
        };
        if room == 0 {
            self.unwatch_input(ops);
            return;
        }
        // epoll said readable, so a single read() returns without blocking
        // even if the fd is in blocking mode. (We do not set O_NONBLOCK:
        // on a terminal, stdin and stdout share one file description, and
        // non-blocking stdout would drop console output.)
        let mut buf = [0u8; 64];
        let len = room.min(buf.len());
        match self.input.read(&mut buf[..len]) {
            Ok(0) => self.stop(ops),
            Ok(n) => {
                // Room can only have grown since we looked (only the guest
                // and queue_input touch the FIFO; the latter queues).
                lock(&self.serial).queue_input(&buf[..n]);
            }
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.stop(ops),
        }
    }
}

impl<R: Read + AsRawFd + Send> MutEventSubscriber for SerialInput<R> {
    fn init(&mut self, ops: &mut EventOps) {
        if ops.add(Events::new(&self.wakeup, EventSet::IN)).is_err() {
            self.stopped = true;
            return;
        }
        self.watch_input(ops);
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if self.stopped {
            return;
        }
        if events.fd() == self.wakeup.as_raw_fd() {
            let _ = self.wakeup.read();
            self.watch_input(ops);
        } else if events.fd() == self.input.as_raw_fd() {
            // EPOLLHUP/EPOLLERR come with or without EPOLLIN; read() tells
            // us which (EOF or an error) and we stop accordingly.
            self.handle_input(ops);
        }
    }
}

/// The device lock, recovered if a previous holder panicked: the UART state
/// is still consistent enough to keep a console going.
fn lock(serial: &Mutex<SerialDevice>) -> std::sync::MutexGuard<'_, SerialDevice> {
    serial.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_manager::{EventManager, SubscriberOps};
    use std::os::unix::net::UnixStream;

    // 16550 register offsets and bits used below.
    const IER: u64 = 1;
    const IIR: u64 = 2;
    const LSR: u64 = 5;
    const IER_RDA: u8 = 0x01;
    const IER_THRE: u8 = 0x02;
    const IIR_NONE: u8 = 0x01;
    const IIR_THRE: u8 = 0x02;
    const IIR_RDA: u8 = 0x04;
    const LSR_DR: u8 = 0x01;
    const LSR_THRE: u8 = 0x20;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("flint-serial-{}-{}", std::process::id(), name))
    }

    fn read_reg(dev: &mut SerialDevice, offset: u64) -> u8 {
        let mut b = [0u8];
        dev.read(offset, &mut b);
        b[0]
    }

    fn drain(dev: &mut SerialDevice) -> Vec<u8> {
        let mut out = Vec::new();
        while read_reg(dev, LSR) & LSR_DR != 0 {
            out.push(read_reg(dev, DATA_OFFSET));
        }
        out
    }

    #[test]
    fn guest_output_lands_in_the_log_file() {
        let path = temp_path("log");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(super::super::console_log::rotated_path(&path));
        std::fs::write(&path, b"previous boot\n").unwrap();
        let config = ConsoleConfig {
            log_path: Some(path.clone()),
            stdio: false,
            log_limits: LogLimits::default(),
        };
        let mut dev = SerialDevice::from_config(&config).unwrap();
        for b in b"Linux version 6.1\n" {
            dev.write(DATA_OFFSET, &[*b]);
        }
        // Written through: visible before the device is dropped.
        let log = std::fs::read(&path).unwrap();
        assert_eq!(log, b"previous boot\nLinux version 6.1\n");
        assert_eq!(dev.sink().dropped_total(), 0);
        drop(dev);
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_file(super::super::console_log::rotated_path(&path));
    }

    #[test]
    fn unopenable_log_is_a_config_error() {
        let config = ConsoleConfig {
            log_path: Some(PathBuf::from("/nonexistent-dir/console.log")),
            stdio: false,
            log_limits: LogLimits::default(),
        };
        assert!(matches!(
            SerialDevice::from_config(&config),
            Err(SerialError::OpenLog { .. })
        ));
    }

    #[test]
    fn thr_empty_interrupt_goes_through_the_eventfd() {
        let mut dev = SerialDevice::new(ConsoleSink::empty()).unwrap();
        assert!(dev.interrupt_evt().read().is_err(), "no interrupt yet");
        assert_ne!(read_reg(&mut dev, LSR) & LSR_THRE, 0);

        // Enabling THRE with an empty transmitter interrupts at once.
        dev.write(IER, &[IER_THRE]);
        assert_eq!(dev.interrupt_evt().read().unwrap(), 1);
        assert_eq!(read_reg(&mut dev, IIR) & 0x0f, IIR_THRE);
        // Reading IIR acknowledged it.
        assert_eq!(read_reg(&mut dev, IIR) & 0x0f, IIR_NONE);

        // Each transmitted byte empties the THR again.
        dev.write(DATA_OFFSET, b"x");
        assert_eq!(dev.interrupt_evt().read().unwrap(), 1);

        // With THRE masked, output raises nothing.
        dev.write(IER, &[0]);
        let _ = read_reg(&mut dev, IIR);
        let _ = dev.interrupt_evt().read();
        dev.write(DATA_OFFSET, b"y");
        assert!(dev.interrupt_evt().read().is_err());
    }

    #[test]
    fn injected_input_appears_in_the_receive_buffer() {
        let mut dev = SerialDevice::new(ConsoleSink::empty()).unwrap();
        dev.write(IER, &[IER_RDA]);
        assert_eq!(dev.queue_input(b"root\n"), 5);
        assert_eq!(dev.interrupt_evt().read().unwrap(), 1);
        assert_eq!(read_reg(&mut dev, IIR) & 0x0f, IIR_RDA);
        assert_eq!(drain(&mut dev), b"root\n");
        assert_eq!(read_reg(&mut dev, LSR) & LSR_DR, 0);
    }

    #[test]
    fn injected_input_beyond_the_fifo_is_queued_in_order() {
        let mut dev = SerialDevice::new(ConsoleSink::empty()).unwrap();
        let text: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(dev.queue_input(&text), text.len());
        assert!(dev.pending_input() > 0);
        assert_eq!(dev.input_room(), 0);
        assert_eq!(drain(&mut dev), text);
        assert_eq!(dev.pending_input(), 0);

        let huge = vec![b'z'; INPUT_QUEUE_LIMIT + 1000];
        assert_eq!(dev.queue_input(&huge), INPUT_QUEUE_LIMIT);
        // 64 of them went straight into the FIFO.
        assert_eq!(dev.pending_input(), INPUT_QUEUE_LIMIT - 64);
        assert_eq!(dev.queue_input(&huge), 64);
        assert_eq!(dev.queue_input(b"more"), 0);
    }

    struct FailingWriter;
    impl Write for FailingWriter {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::other("disk full"))
        }
    }

    #[derive(Clone, Default)]
    struct SharedBuf(Arc<Mutex<Vec<u8>>>);
    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failing_sink_drops_and_counts_without_stopping_the_guest() {
        let mut sink = ConsoleSink::empty();
        sink.add_target("broken", Box::new(FailingWriter));
        let good = SharedBuf::default();
        sink.add_target("good", Box::new(good.clone()));
        let mut dev = SerialDevice::new(sink).unwrap();
        dev.write(IER, &[IER_THRE]);
        let _ = dev.interrupt_evt().read();
        let _ = read_reg(&mut dev, IIR);
        for b in b"hello" {
            dev.write(DATA_OFFSET, &[*b]);
            // The guest still sees its byte go out.
            assert_eq!(dev.interrupt_evt().read().unwrap(), 1);
            assert_eq!(read_reg(&mut dev, IIR) & 0x0f, IIR_THRE);
        }
        assert_eq!(&*good.0.lock().unwrap(), b"hello");
        assert_eq!(dev.sink().dropped(), vec![("broken", 5), ("good", 0)]);
    }

    #[test]
    fn odd_widths_and_offsets_do_not_panic() {
        let mut dev = SerialDevice::new(ConsoleSink::empty()).unwrap();
        for offset in [0u64, 3, 7, 8, 100, u64::MAX] {
            for width in [1usize, 2, 4, 8] {
                let mut buf = vec![0u8; width];
                dev.read(offset, &mut buf);
                dev.write(offset, &buf);
            }
        }
    }

    #[test]
    fn input_subscriber_feeds_the_guest_and_pauses_when_full() {
        let serial = Arc::new(Mutex::new(SerialDevice::new(ConsoleSink::empty()).unwrap()));
        let (mut host, guest_side) = UnixStream::pair().unwrap();
        let input = SerialInput::new(serial.clone(), guest_side).unwrap();
        let mut manager: EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>> =
            EventManager::new().unwrap();
        let input = Arc::new(Mutex::new(input));
        manager.add_subscriber(input.clone());

        let text: Vec<u8> = (0..200u32).map(|i| (i % 251) as u8).collect();
        host.write_all(&text).unwrap();

        // Fill the FIFO; the subscriber then stops watching the socket.
        for _ in 0..10 {
            manager.run_with_timeout(50).unwrap();
        }
        let mut received = {
            let mut dev = lock(&serial);
            assert_eq!(dev.input_room(), 0, "FIFO should be full");
            drain(&mut dev)
        };
        assert_eq!(received.len(), 64);

        // Draining woke the subscriber; the rest arrives.
        for _ in 0..20 {
            manager.run_with_timeout(50).unwrap();
            received.extend(drain(&mut lock(&serial)));
            if received.len() == text.len() {
                break;
            }
        }
        assert_eq!(received, text);

        // EOF ends input without disturbing anything else.
        drop(host);
        for _ in 0..3 {
            manager.run_with_timeout(50).unwrap();
        }
        assert!(input.lock().unwrap().stopped());
    }
}
