//! How a VM process ending moves its instance through EC2's state
//! machine. Pure: the state the record is in, how the process ended, and
//! the instance's shutdown behaviour decide.

use crate::store::instances::{InstanceState, ShutdownBehavior, StateReason};
use flint_contract::exit::EXIT_POWEROFF;

/// How the VM process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Our child: its exit code.
    Code(i32),
    /// Our child, killed by a signal.
    Signal(i32),
    /// Not our child (adopted after a daemon restart): no exit status, only
    /// what the VMM last wrote on stderr (`flint vmm: reason` before any
    /// non-zero exit; nothing after a power-off).
    Unknown { last_words: Option<String> },
}

impl Exit {
    /// The guest (or a graceful stop) powered the VM off.
    fn clean(&self) -> bool {
        match self {
            Exit::Code(code) => *code == i32::from(EXIT_POWEROFF),
            Exit::Signal(_) => false,
            Exit::Unknown { last_words } => last_words.is_none(),
        }
    }

    fn describe(&self, last_words: Option<&str>) -> String {
        let said = last_words.map(|w| format!(": {w}")).unwrap_or_default();
        match self {
            Exit::Code(code) => format!("the VM process exited with status {code}{said}"),
            Exit::Signal(signal) => format!("the VM process was killed by signal {signal}{said}"),
            Exit::Unknown { last_words } => match last_words {
                Some(w) => format!("the VM process failed: {w}"),
                None => "the VM process ended".to_string(),
            },
        }
    }
}

pub fn user_shutdown() -> StateReason {
    StateReason {
        code: "Client.UserInitiatedShutdown".into(),
        message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
    }
}

pub fn instance_shutdown() -> StateReason {
    StateReason {
        code: "Client.InstanceInitiatedShutdown".into(),
        message: "Client.InstanceInitiatedShutdown: Instance initiated shutdown".into(),
    }
}

pub fn internal_error(detail: &str) -> StateReason {
    StateReason {
        code: "Server.InternalError".into(),
        message: format!("Server.InternalError: {detail}"),
    }
}

/// Where the instance goes when its VM process has ended while the record
/// says `state`; None: nowhere (it was already stopped or terminated).
///
/// - a stop or terminate that was asked for completes, however the
///   process ended (a hard stop after the timeout is still the stop);
/// - a clean exit nobody asked for is the guest powering off: stopped or
///   terminated per InstanceInitiatedShutdownBehavior;
/// - anything else is a failure: stopped (never terminated, so no volume
///   is lost to a crash) with Server.InternalError.
pub fn after_exit(
    state: InstanceState,
    exit: &Exit,
    behavior: ShutdownBehavior,
    last_words: Option<&str>,
) -> Option<(InstanceState, StateReason)> {
    match state {
        InstanceState::Stopping => Some((InstanceState::Stopped, user_shutdown())),
        InstanceState::ShuttingDown => Some((InstanceState::Terminated, user_shutdown())),
        InstanceState::Pending | InstanceState::Running if exit.clean() => {
            let to = match behavior {
                ShutdownBehavior::Stop => InstanceState::Stopped,
                ShutdownBehavior::Terminate => InstanceState::Terminated,
            };
            Some((to, instance_shutdown()))
        }
        InstanceState::Pending | InstanceState::Running => Some((
            InstanceState::Stopped,
            internal_error(&exit.describe(last_words)),
        )),
        InstanceState::Stopped | InstanceState::Terminated => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;

    #[test]
    fn requested_stops_and_terminations_complete_however_the_process_ended() {
        for exit in [
            Exit::Code(0),
            Exit::Code(4),
            Exit::Signal(9),
            Exit::Unknown { last_words: None },
        ] {
            let (to, reason) =
                after_exit(Stopping, &exit, ShutdownBehavior::Terminate, None).unwrap();
            assert_eq!(
                (to, reason.code.as_str()),
                (Stopped, "Client.UserInitiatedShutdown")
            );
            let (to, _) = after_exit(ShuttingDown, &exit, ShutdownBehavior::Stop, None).unwrap();
            assert_eq!(to, Terminated);
        }
    }

    #[test]
    fn a_guest_power_off_follows_the_shutdown_behavior() {
        let (to, reason) =
            after_exit(Running, &Exit::Code(0), ShutdownBehavior::Stop, None).unwrap();
        assert_eq!(
            (to, reason.code.as_str()),
            (Stopped, "Client.InstanceInitiatedShutdown")
        );
        let (to, _) =
            after_exit(Running, &Exit::Code(0), ShutdownBehavior::Terminate, None).unwrap();
        assert_eq!(to, Terminated);
        let quiet = Exit::Unknown { last_words: None };
        let (to, _) = after_exit(Running, &quiet, ShutdownBehavior::Terminate, None).unwrap();
        assert_eq!(to, Terminated);
    }

    #[test]
    fn a_crash_stops_the_instance_with_an_internal_error_and_never_terminates_it() {
        for exit in [
            Exit::Code(2),
            Exit::Code(5),
            Exit::Signal(9),
            Exit::Unknown {
                last_words: Some("KVM internal error".into()),
            },
        ] {
            let (to, reason) =
                after_exit(Running, &exit, ShutdownBehavior::Terminate, Some("boom")).unwrap();
            assert_eq!(
                (to, reason.code.as_str()),
                (Stopped, "Server.InternalError")
            );
            assert!(
                reason
                    .message
                    .starts_with("Server.InternalError: the VM process"),
                "{reason:?}"
            );
        }
        let (_, reason) = after_exit(
            Pending,
            &Exit::Code(1),
            ShutdownBehavior::Stop,
            Some("bad disk"),
        )
        .unwrap();
        assert!(reason.message.contains("status 1: bad disk"), "{reason:?}");
    }

    #[test]
    fn stopped_and_terminated_records_stay_put() {
        assert_eq!(
            after_exit(Stopped, &Exit::Code(0), ShutdownBehavior::Stop, None),
            None
        );
        assert_eq!(
            after_exit(Terminated, &Exit::Signal(9), ShutdownBehavior::Stop, None),
            None
        );
    }
}
