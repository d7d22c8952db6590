//! A client for the per-VM control socket (`contract::socket`): one
//! HTTP/1.1 request per connection, the contract's types as JSON bodies,
//! short timeouts (a wedged VMM must not wedge the daemon).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::SupervisorError;
use flint_contract::metadata::MetadataUpdate;
use flint_contract::socket::{self, VmAction, VmState, VmStatus};

const TIMEOUT: Duration = Duration::from_secs(5);
/// The control socket's answers are small; more is not a VMM talking.
const MAX_REPLY: u64 = 1 << 20;

/// Sends `method path` with an optional JSON body; returns the status and
/// the body.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), SupervisorError> {
    let err = |what: &str, e: std::io::Error| {
        SupervisorError::Control(format!("{} {method} {path}: {what}: {e}", socket.display()))
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| err("connect", e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| err("timeout", e))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: vm\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| err("write", e))?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .map_err(|e| err("read", e))?;
    parse_reply(&reply).ok_or_else(|| {
        SupervisorError::Control(format!(
            "{} {method} {path}: not an HTTP reply",
            socket.display()
        ))
    })
}

fn parse_reply(reply: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// `request` with `body` as its JSON.
pub fn send<T: Serialize>(
    socket: &Path,
    method: &str,
    path: &str,
    body: &T,
) -> Result<(u16, String), SupervisorError> {
    let body = serde_json::to_string(body)
        .map_err(|e| SupervisorError::Control(format!("{method} {path}: {e}")))?;
    request(socket, method, path, Some(&body))
}

/// A reply body as the contract's type `T`.
pub fn parse<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &str,
) -> Result<T, SupervisorError> {
    serde_json::from_str(body)
        .map_err(|e| SupervisorError::Control(format!("{method} {path}: {e}")))
}

/// A refusal: the status and the start of what the VMM said.
pub fn refused(method: &str, path: &str, status: u16, body: &str) -> SupervisorError {
    SupervisorError::Control(format!(
        "{method} {path}: status {status}: {}",
        body.chars().take(200).collect::<String>()
    ))
}

/// `GET /vm`.
pub fn vm_status(socket: &Path) -> Result<VmStatus, SupervisorError> {
    let (status, body) = request(socket, "GET", socket::VM, None)?;
    if status != 200 {
        return Err(refused("GET", socket::VM, status, &body));
    }
    parse("GET", socket::VM, &body)
}

/// `GET /vm`'s `state`.
pub fn vm_state(socket: &Path) -> Result<VmState, SupervisorError> {
    vm_status(socket).map(|s| s.state)
}

/// `PUT /vm/shutdown`, `/vm/stop`, `/vm/reboot`: 202 expected.
pub fn action(socket: &Path, action: VmAction) -> Result<(), SupervisorError> {
    let path = action.path();
    let (status, body) = request(socket, "PUT", &path, None)?;
    if status == 202 || status == 200 {
        Ok(())
    } else {
        Err(refused("PUT", &path, status, &body))
    }
}

/// `PUT /vm/metadata`.
pub fn update_metadata(socket: &Path, update: &MetadataUpdate) -> Result<(), SupervisorError> {
    let (status, body) = send(socket, "PUT", socket::METADATA, update)?;
    if status == 200 {
        Ok(())
    } else {
        Err(refused("PUT", socket::METADATA, status, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_reply;

    #[test]
    fn replies_are_split_into_status_and_body() {
        let reply = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_reply(reply), Some((202, "{}".to_string())));
        assert_eq!(parse_reply(b"garbage"), None);
        assert_eq!(parse_reply(b"HTTP/1.1 abc\r\n\r\n"), None);
    }
}
