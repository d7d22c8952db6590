//! `flint vmm` flags: the hand-use equivalent of the config file. Flags
//! override the file's fields.

use std::path::PathBuf;

use clap::Args;

use super::{ConfigError, VmConfigExt};
use flint_contract::config::{
    BootMode, ConsoleConfig, DiskConfig, ImageConfig, KernelConfig, NetConfig, RebootAction,
    VmConfig, default_cmdline,
};
use flint_contract::metadata::MetadataConfig;

#[derive(Debug, Default, Args)]
pub struct VmmArgs {
    /// JSON config file (flags below override its fields).
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
    /// Kernel to boot directly: bzImage or ELF vmlinux.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    #[arg(long, value_name = "PATH", requires = "kernel")]
    pub initrd: Option<PathBuf>,
    #[arg(long, value_name = "STR", requires = "kernel")]
    pub cmdline: Option<String>,
    /// AMI disk image (raw) to boot through firmware; it is the first disk.
    #[arg(long, value_name = "PATH", conflicts_with = "kernel")]
    pub image: Option<PathBuf>,
    /// How the image boots: legacy-bios (EC2's default) or uefi.
    #[arg(long, value_name = "legacy-bios|uefi", requires = "image")]
    pub boot_mode: Option<BootMode>,
    /// BIOS image for --image (default: Debian's SeaBIOS, bios-256k.bin).
    #[arg(long, value_name = "PATH", requires = "image")]
    pub firmware: Option<PathBuf>,
    /// Instance id shown to the guest (SMBIOS asset tag), e.g. i-0123456789abcdef0.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// Instance type shown to the guest (SMBIOS product name), e.g. t3.micro.
    #[arg(long, value_name = "TYPE")]
    pub instance_type: Option<String>,
    /// A NIC on a host TAP: tap=NAME,mac=MAC[,ip=A.B.C.D/NN,gw=A.B.C.D].
    /// With ip=, the VMM's DHCP server hands the guest that address.
    /// Repeatable.
    #[arg(
        long = "net",
        value_name = "tap=NAME,mac=MAC[,ip=A.B.C.D/NN,gw=A.B.C.D]"
    )]
    pub nets: Vec<String>,
    /// Instance metadata (JSON) served on 169.254.169.254 through the
    /// first NIC; sets the instance id and type unless given.
    #[arg(long, value_name = "FILE.json")]
    pub metadata: Option<PathBuf>,
    /// A disk, in order: PATH[,ro][,serial=ID][,id=NAME] and optional EBS
    /// limits type=gp2|gp3|io1|io2|st1|sc1|standard,size_gib=N[,iops=N]
    /// [,throughput_mibps=N]. Repeatable.
    #[arg(
        long = "disk",
        value_name = "PATH[,ro][,serial=ID][,id=NAME][,type=T,size_gib=N,...]"
    )]
    pub disks: Vec<String>,
    #[arg(long)]
    pub vcpus: Option<u8>,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u64>,
    /// Serial console: a file to append to, or `stdio`. Repeatable (both).
    #[arg(long = "console", value_name = "PATH|stdio")]
    pub consoles: Vec<String>,
    /// Per-VM control socket (JSON over HTTP).
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,
    /// What a guest reboot does: restart (default) or exit (code 3).
    #[arg(long, value_name = "restart|exit")]
    pub on_reboot: Option<String>,
    /// How long a graceful shutdown (SIGTERM, control socket) may take
    /// before a hard stop, in seconds (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_timeout: Option<u64>,
    /// Do not install seccomp filters (debugging only).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Run jailed (needs root): the jail uid/gid, new mount, PID, IPC and
    /// UTS namespaces, pivot_root into --jail-root, rlimits, no
    /// capabilities, no_new_privs, then the seccomp filters.
    #[arg(long, requires_all = ["jail_uid", "jail_gid", "jail_root"])]
    pub jail: bool,
    #[arg(long, value_name = "UID", requires = "jail")]
    pub jail_uid: Option<u32>,
    #[arg(long, value_name = "GID", requires = "jail")]
    pub jail_gid: Option<u32>,
    /// The directory that becomes the VMM's `/` (the files of the VM are
    /// bound into it at their own paths).
    #[arg(long, value_name = "DIR", requires = "jail")]
    pub jail_root: Option<PathBuf>,
    /// A cgroup v2 directory to join (made, with its limits, by the caller).
    #[arg(long, value_name = "PATH", requires = "jail")]
    pub jail_cgroup: Option<PathBuf>,
    /// Containment drill: enter the jail, try to break out, exit.
    #[arg(long, requires = "jail", hide = true)]
    pub jail_selftest: bool,
    /// A path the drill must fail to open. Repeatable.
    #[arg(long, value_name = "PATH", requires = "jail_selftest", hide = true)]
    pub jail_selftest_deny: Vec<PathBuf>,
    /// Serve every guest kick and I/O completion at once: never let the
    /// event loop batch block I/O (see src/vmm/loop_policy.rs).
    #[arg(long)]
    pub no_io_batching: bool,
}

impl VmmArgs {
    /// The jail asked for by --jail and its options.
    pub fn jail_request(&self) -> Option<crate::jail::JailRequest> {
        if !self.jail {
            return None;
        }
        Some(crate::jail::JailRequest {
            uid: self.jail_uid.unwrap_or(0),
            gid: self.jail_gid.unwrap_or(0),
            root: self.jail_root.clone().unwrap_or_default(),
            cgroup: self.jail_cgroup.clone(),
            selftest: self.jail_selftest,
            deny: self.jail_selftest_deny.clone(),
        })
    }

    pub fn to_config(&self) -> Result<VmConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => VmConfig::from_file(path)?,
            None => serde_json::from_str("{}").map_err(|e| ConfigError::Flag(e.to_string()))?,
        };
        if let Some(path) = &self.kernel {
            let previous = config.kernel.take();
            config.image = None;
            config.kernel = Some(KernelConfig {
                path: path.clone(),
                initrd: self
                    .initrd
                    .clone()
                    .or_else(|| previous.as_ref().and_then(|k| k.initrd.clone())),
                cmdline: self
                    .cmdline
                    .clone()
                    .or_else(|| previous.map(|k| k.cmdline))
                    .unwrap_or_else(default_cmdline),
            });
        }
        if let Some(path) = &self.image {
            let mut image = config
                .image
                .take()
                .unwrap_or_else(|| ImageConfig::new(path.clone()));
            image.path = path.clone();
            config.image = Some(image);
            config.kernel = None;
        }
        if let Some(image) = config.image.as_mut() {
            if let Some(mode) = self.boot_mode {
                image.boot_mode = mode;
            }
            if let Some(firmware) = &self.firmware {
                image.firmware = firmware.clone();
            }
        }
        if !self.nets.is_empty() {
            config.nics = self
                .nets
                .iter()
                .map(|s| NetConfig::parse(s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(path) = &self.metadata {
            let metadata = MetadataConfig::load(path)
                .map_err(|e| ConfigError::Metadata(format!("{}: {e}", path.display())))?;
            config.identity.instance_id = metadata.instance_id.clone();
            config.identity.instance_type = metadata.instance_type.clone();
            config.metadata = Some(metadata);
        }
        if let Some(id) = &self.instance_id {
            config.identity.instance_id = id.clone();
        }
        if let Some(instance_type) = &self.instance_type {
            config.identity.instance_type = instance_type.clone();
        }
        if !self.disks.is_empty() {
            config.disks = self
                .disks
                .iter()
                .map(|s| parse_disk(s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(vcpus) = self.vcpus {
            config.vcpus = vcpus;
        }
        if let Some(memory) = self.memory {
            config.memory_mib = memory;
        }
        if !self.consoles.is_empty() {
            let mut console = ConsoleConfig::default();
            for c in &self.consoles {
                if c == "stdio" {
                    console.stdio = true;
                } else if c.is_empty() {
                    return Err(ConfigError::Flag("--console needs a path or stdio".into()));
                } else {
                    console.file = Some(PathBuf::from(c));
                }
            }
            config.console = console;
        }
        if let Some(socket) = &self.api_socket {
            config.api_socket = Some(socket.clone());
        }
        if let Some(action) = &self.on_reboot {
            config.on_reboot = match action.as_str() {
                "restart" => RebootAction::Restart,
                "exit" => RebootAction::Exit,
                other => {
                    return Err(ConfigError::Flag(format!(
                        "--on-reboot wants restart or exit, got {other:?}"
                    )));
                }
            };
        }
        if let Some(seconds) = self.shutdown_timeout {
            config.shutdown_timeout_s = seconds;
        }
        if self.no_seccomp {
            config.seccomp = false;
        }
        if self.no_io_batching {
            config.io_batching = false;
        }
        Ok(config)
    }
}

/// PATH[,ro][,direct][,serial=ID][,id=NAME][,type=T,size_gib=N[,iops=N][,throughput_mibps=N]]
fn parse_disk(spec: &str) -> Result<DiskConfig, ConfigError> {
    let mut parts = spec.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ConfigError::Flag(format!("--disk {spec:?}: the path comes first")))?;
    let mut disk = DiskConfig::new(PathBuf::from(path));
    // The limits, as the JSON config spells them, built from key=value.
    let mut limits = serde_json::Map::new();
    for option in parts {
        match option.split_once('=') {
            None if option == "ro" => disk.read_only = true,
            None if option == "direct" => disk.direct = true,
            Some(("serial", serial)) => disk.serial = Some(serial.to_string()),
            Some(("id", id)) => disk.id = Some(id.to_string()),
            Some(("type", t)) => {
                limits.insert("volume_type".into(), t.into());
            }
            Some((key @ ("size_gib" | "iops" | "throughput_mibps"), n)) => {
                let n: u64 = n.parse().map_err(|_| {
                    ConfigError::Flag(format!("--disk {spec:?}: {key} wants a number, got {n:?}"))
                })?;
                limits.insert(key.into(), n.into());
            }
            _ => {
                return Err(ConfigError::Flag(format!(
                    "--disk {spec:?}: unknown option {option:?} (ro, direct, serial=ID, id=NAME, \
                     type=gp2|gp3|io1|io2|st1|sc1|standard, size_gib=N, iops=N, throughput_mibps=N)"
                )));
            }
        }
    }
    if !limits.is_empty() {
        let limits = serde_json::from_value(limits.into()).map_err(|e| {
            ConfigError::Flag(format!(
                "--disk {spec:?}: limits: {e} (give type= and size_gib=)"
            ))
        })?;
        disk.limits = Some(limits);
    }
    Ok(disk)
}
