//! Key material for CreateKeyPair / ImportKeyPair: generation with
//! `ssh-keygen` (openssh-client), OpenSSH public-key parsing, and the
//! fingerprints in EC2's formats:
//!
//! - RSA, created by EC2: SHA-1 of the private key's DER PKCS#8 form, hex
//!   with colons (what `openssl pkcs8 -topk8 -nocrypt -outform DER |
//!   openssl sha1 -c` prints, as EC2's docs show);
//! - RSA, imported: MD5 of the public key's DER SubjectPublicKeyInfo, hex
//!   with colons (`ssh-keygen -ef key.pub -m PKCS8 | openssl pkey -pubin
//!   -outform DER | openssl md5 -c`);
//! - ED25519, either way: base64 SHA-256 of the OpenSSH public key blob,
//!   as `ssh-keygen -l` prints it after `SHA256:` (with base64 padding).

use std::path::Path;
use std::process::Command;

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::codec::{base64_decode, base64_encode, colon_hex};

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot run ssh-keygen: {0}")]
    Spawn(std::io::Error),
    #[error("ssh-keygen failed: {0}")]
    Failed(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Format(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

pub struct GeneratedKey {
    /// What CreateKeyPair returns once: PEM (PKCS#1) for RSA, OpenSSH
    /// format for ED25519, as EC2 does.
    pub private_key: String,
    /// One OpenSSH line, `ssh-rsa AAAA…` (no comment).
    pub public_key: String,
    pub fingerprint: String,
}

/// Generates a key with ssh-keygen in a private directory under `tmp`.
pub fn generate(key_type: KeyType, tmp: &Path) -> Result<GeneratedKey, KeyError> {
    let dir = tmp.join(format!(
        "keygen-{}",
        super::super::ec2::ids::new_request_id()
    ));
    std::fs::create_dir(&dir).map_err(|e| KeyError::Io(format!("{}: {e}", dir.display())))?;
    let result = generate_in(key_type, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn generate_in(key_type: KeyType, dir: &Path) -> Result<GeneratedKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let key_path = dir.join("key");
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-C", ""]);
    match key_type {
        KeyType::Rsa => cmd.args(["-t", "rsa", "-b", "2048", "-m", "PEM"]),
        KeyType::Ed25519 => cmd.args(["-t", "ed25519"]),
    };
    cmd.arg("-f").arg(&key_path);
    let out = cmd.output().map_err(KeyError::Spawn)?;
    if !out.status.success() {
        return Err(KeyError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| KeyError::Io(format!("{}: {e}", p.display())))
    };
    let private_key = read(&key_path)?;
    let public_line = read(&dir.join("key.pub"))?;
    let public = parse_public_key(&public_line)?;
    let fingerprint = match key_type {
        KeyType::Rsa => {
            let pkcs1 = pem_body(&private_key, "RSA PRIVATE KEY")?;
            colon_hex(&Sha1::digest(pkcs8_from_pkcs1(&pkcs1)))
        }
        KeyType::Ed25519 => public.sha256_fingerprint(),
    };
    Ok(GeneratedKey {
        private_key: private_key.trim_end().to_string(),
        public_key: public.line(),
        fingerprint,
    })
}

/// A parsed OpenSSH public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub key_type: KeyType,
    /// The wire-format blob (base64-decoded second field).
    pub blob: Vec<u8>,
    /// For RSA: (e, n) as SSH mpints (big-endian two's complement).
    rsa: Option<(Vec<u8>, Vec<u8>)>,
}

impl PublicKey {
    pub fn line(&self) -> String {
        let name = match self.key_type {
            KeyType::Rsa => "ssh-rsa",
            KeyType::Ed25519 => "ssh-ed25519",
        };
        format!("{name} {}", base64_encode(&self.blob))
    }

    pub fn sha256_fingerprint(&self) -> String {
        base64_encode(&Sha256::digest(&self.blob))
    }

    /// EC2's fingerprint of an imported key.
    pub fn import_fingerprint(&self) -> String {
        match (&self.key_type, &self.rsa) {
            (KeyType::Rsa, Some((e, n))) => colon_hex(&Md5::digest(rsa_spki(e, n))),
            _ => self.sha256_fingerprint(),
        }
    }
}

/// Reads an SSH string (u32 length + bytes) off the front of `data`.
fn ssh_string<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], KeyError> {
    let bad = || KeyError::Format("truncated public key blob".into());
    let len_bytes: [u8; 4] = data
        .get(..4)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let value = data.get(4..4 + len).ok_or_else(bad)?;
    *data = &data[4 + len..];
    Ok(value)
}

/// `ssh-rsa AAAA… [comment]` or `ssh-ed25519 AAAA… [comment]`.
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let mut fields = text.split_whitespace();
    let (Some(kind), Some(b64)) = (fields.next(), fields.next()) else {
        return Err(KeyError::Format(
            "expected an OpenSSH public key: ssh-rsa|ssh-ed25519 BASE64 [comment]".into(),
        ));
    };
    let key_type = match kind {
        "ssh-rsa" => KeyType::Rsa,
        "ssh-ed25519" => KeyType::Ed25519,
        other => {
            return Err(KeyError::Format(format!(
                "key type {} is not supported (rsa and ed25519 are)",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let blob = base64_decode(b64).map_err(|e| KeyError::Format(format!("public key: {e}")))?;
    let mut rest: &[u8] = &blob;
    if ssh_string(&mut rest)? != kind.as_bytes() {
        return Err(KeyError::Format(
            "the key blob's type differs from its label".into(),
        ));
    }
    let rsa = match key_type {
        KeyType::Rsa => {
            let e = ssh_string(&mut rest)?.to_vec();
            let n = ssh_string(&mut rest)?.to_vec();
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if e.is_empty() || !(1024..=16384).contains(&bits) {
                return Err(KeyError::Format(format!(
                    "RSA keys must have 1024 to 16384 bits (this one has about {bits})"
                )));
            }
            Some((e, n))
        }
        KeyType::Ed25519 => {
            if ssh_string(&mut rest)?.len() != 32 {
                return Err(KeyError::Format("an ed25519 key has 32 bytes".into()));
            }
            None
        }
    };
    if !rest.is_empty() {
        return Err(KeyError::Format("trailing bytes in the key blob".into()));
    }
    Ok(PublicKey {
        key_type,
        blob,
        rsa,
    })
}

fn pem_body(pem: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| KeyError::Format(format!("no {begin}")))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| KeyError::Format(format!("no {end}")))?;
    base64_decode(&pem[start..start + stop]).map_err(|e| KeyError::Format(e.to_string()))
}

// ---- minimal DER ----

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// AlgorithmIdentifier { rsaEncryption, NULL }.
fn rsa_algorithm() -> Vec<u8> {
    let oid = der(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
    );
    let null = der(0x05, &[]);
    der(0x30, &[oid, null].concat())
}

/// PKCS#8 PrivateKeyInfo around a PKCS#1 RSAPrivateKey, byte for byte
/// what `openssl pkcs8 -topk8 -nocrypt -outform DER` writes.
pub fn pkcs8_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    let version = der(0x02, &[0]);
    der(0x30, &[version, rsa_algorithm(), der(0x04, pkcs1)].concat())
}

/// SubjectPublicKeyInfo of an RSA key from its SSH mpints (which are
/// already DER INTEGER contents: minimal, sign byte when needed).
pub fn rsa_spki(e: &[u8], n: &[u8]) -> Vec<u8> {
    let rsa_key = der(0x30, &[der(0x02, n), der(0x02, e)].concat());
    let mut bits = vec![0u8];
    bits.extend_from_slice(&rsa_key);
    der(0x30, &[rsa_algorithm(), der(0x03, &bits)].concat())
}
