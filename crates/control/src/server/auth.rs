//! `--credentials FILE`: the access keys whose SigV4 signatures the daemon
//! accepts. Format, one key per line:
//!
//! ```text
//! # comment
//! AKIAFLINTEXAMPLE  wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
//! ```
//!
//! (access key id, whitespace, secret access key; blank lines and `#`
//! lines ignored). The file must not be readable by its group or others
//! (mode 0600 or stricter). With such a file every request must be signed by one of
//! these keys; without one, requests are accepted signed or not.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::ServerError;
use ec2_wire::error::Ec2Error;
use ec2_wire::sigv4::{self, Authentication, HttpParts};

pub type Credentials = HashMap<String, String>;

pub fn parse_credentials(path: &Path) -> Result<Credentials, ServerError> {
    let mut file = std::fs::File::open(path).map_err(ServerError::io(path.display()))?;
    // The secrets are as good as the file's protection: refuse one that
    // others can read (checked on the opened file, not the path again).
    let mode = file
        .metadata()
        .map_err(ServerError::io(path.display()))?
        .permissions()
        .mode();
    if mode & 0o044 != 0 {
        return Err(ServerError::CredentialsExposed {
            path: path.display().to_string(),
            mode: mode & 0o7777,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(ServerError::io(path.display()))?;
    let bad = |line: usize, reason: &str| ServerError::Credentials {
        path: path.display().to_string(),
        line,
        reason: reason.to_string(),
    };
    let mut keys = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, secret] = fields[..] else {
            return Err(bad(n + 1, "expected ACCESS_KEY_ID SECRET_ACCESS_KEY"));
        };
        if keys.insert(id.to_string(), secret.to_string()).is_some() {
            return Err(bad(n + 1, "access key id listed twice"));
        }
    }
    if keys.is_empty() {
        return Err(bad(0, "no keys (every request would be refused)"));
    }
    Ok(keys)
}

/// Who sent the request, or why it is refused.
pub fn authenticate(
    parts: &HttpParts<'_>,
    credentials: Option<&Credentials>,
) -> Result<Authentication, Ec2Error> {
    let now = ec2_wire::clock::now_unix_ms() / 1000;
    let signed = parts
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    match credentials {
        Some(keys) if !signed => {
            let _ = keys;
            Err(Ec2Error::missing_authentication_token())
        }
        Some(keys) => Ok(sigv4::verify(parts, keys, now)?),
        // Open mode: a signature cannot be checked without the secret, so
        // the request is taken as it comes.
        None => Ok(Authentication::Unsigned),
    }
}
