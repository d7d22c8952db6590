//! A client for the per-VM control socket (`src/vmm/api`): one HTTP/1.1
//! request per connection, JSON bodies, short timeouts (a wedged VMM must
//! not wedge the daemon).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::SupervisorError;

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

/// `GET /vm`'s `state` (starting | running | shutting-down | stopped).
pub fn vm_state(socket: &Path) -> Result<String, SupervisorError> {
    let (status, body) = request(socket, "GET", "/vm", None)?;
    if status != 200 {
        return Err(SupervisorError::Control(format!(
            "GET /vm: status {status}"
        )));
    }
    let value: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| SupervisorError::Control(format!("GET /vm: {e}")))?;
    value
        .get("state")
        .and_then(|s| s.as_str())
        .map(str::to_string)
        .ok_or_else(|| SupervisorError::Control("GET /vm: no state".into()))
}

/// `PUT /vm/shutdown`, `/vm/stop`, `/vm/reboot`: 202 expected.
pub fn action(socket: &Path, name: &str) -> Result<(), SupervisorError> {
    let path = format!("/vm/{name}");
    let (status, body) = request(socket, "PUT", &path, None)?;
    if status == 202 || status == 200 {
        Ok(())
    } else {
        Err(SupervisorError::Control(format!(
            "PUT {path}: status {status}: {}",
            body.chars().take(200).collect::<String>()
        )))
    }
}

/// `PUT /vm/metadata` with a `MetadataUpdate` document.
pub fn update_metadata(socket: &Path, update: &str) -> Result<(), SupervisorError> {
    let (status, body) = request(socket, "PUT", "/vm/metadata", Some(update))?;
    if status == 200 {
        Ok(())
    } else {
        Err(SupervisorError::Control(format!(
            "PUT /vm/metadata: status {status}: {}",
            body.chars().take(200).collect::<String>()
        )))
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
