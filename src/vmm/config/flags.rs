//! `flint vmm` flags: the hand-use equivalent of the config file. Flags
//! override the file's fields.

use std::path::PathBuf;

use clap::Args;

use super::{ConfigError, ConsoleConfig, DiskConfig, KernelConfig, RebootAction, VmConfig};

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
    /// A disk, in order: PATH[,ro][,serial=ID]. Repeatable.
    #[arg(long = "disk", value_name = "PATH[,ro][,serial=ID]")]
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
    /// Do not install seccomp filters (debugging only).
    #[arg(long)]
    pub no_seccomp: bool,
}

impl VmmArgs {
    pub fn to_config(&self) -> Result<VmConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => VmConfig::from_file(path)?,
            None => serde_json::from_str("{}").map_err(|e| ConfigError::Flag(e.to_string()))?,
        };
        if let Some(path) = &self.kernel {
            let previous = config.kernel.take();
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
                    .unwrap_or_else(super::default_cmdline),
            });
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
        if self.no_seccomp {
            config.seccomp = false;
        }
        Ok(config)
    }
}

/// PATH[,ro][,serial=ID]
fn parse_disk(spec: &str) -> Result<DiskConfig, ConfigError> {
    let mut parts = spec.split(',');
    let path = parts
        .next()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ConfigError::Flag(format!("--disk {spec:?}: the path comes first")))?;
    let mut disk = DiskConfig {
        path: PathBuf::from(path),
        read_only: false,
        serial: None,
    };
    for option in parts {
        match option.split_once('=') {
            None if option == "ro" => disk.read_only = true,
            Some(("serial", id)) => disk.serial = Some(id.to_string()),
            _ => {
                return Err(ConfigError::Flag(format!(
                    "--disk {spec:?}: unknown option {option:?} (ro, serial=ID)"
                )));
            }
        }
    }
    Ok(disk)
}
