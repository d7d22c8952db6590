//! Key material for CreateKeyPair / ImportKeyPair: generation (the `rsa`
//! and `ssh-key` crates, from the kernel's random numbers), OpenSSH
//! public-key parsing (`ssh-key`), and the fingerprints in EC2's formats:
//!
//! - RSA, created by EC2: SHA-1 of the private key's DER PKCS#8 form, hex
//!   with colons (what `openssl pkcs8 -topk8 -nocrypt -outform DER |
//!   openssl sha1 -c` prints, as EC2's docs show);
//! - RSA, imported: MD5 of the public key's DER SubjectPublicKeyInfo, hex
//!   with colons (`ssh-keygen -ef key.pub -m PKCS8 | openssl pkey -pubin
//!   -outform DER | openssl md5 -c`);
//! - ED25519, either way: base64 SHA-256 of the OpenSSH public key blob,
//!   as `ssh-keygen -l` prints it after `SHA256:` (with base64 padding).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use rsa::pkcs1::{self, EncodeRsaPrivateKey};
use rsa::pkcs8::der::{Encode, asn1::BitStringRef};
use rsa::pkcs8::{EncodePrivateKey, SubjectPublicKeyInfoRef};
use sha1::{Digest, Sha1};
use ssh_key::private::Ed25519Keypair;
use ssh_key::public::{KeyData, RsaPublicKey};
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use thiserror::Error;

use super::codec::{base64_decode, colon_hex};

/// The size of the RSA keys CreateKeyPair makes, as EC2's.
pub const RSA_BITS: usize = 2048;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{0}")]
    Generate(String),
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

/// Generates a key from the kernel's random numbers (getrandom(2)).
pub fn generate(key_type: KeyType) -> Result<GeneratedKey, KeyError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| KeyError::Generate(format!("{what}: {e}"));
    let (private_key, key_data, fingerprint) = match key_type {
        KeyType::Rsa => {
            let key = rsa::PrivateKey::new(&mut ssh_key::getrandom::SysRng, RSA_BITS)
                .map_err(|e| failed("RSA key generation", &e))?;
            let pem = key
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|e| failed("PKCS#1 encoding", &e))?;
            let pkcs8 = key
                .to_pkcs8_der()
                .map_err(|e| failed("PKCS#8 encoding", &e))?;
            let public = RsaPublicKey::try_from(key.to_public_key())
                .map_err(|e| failed("RSA public key", &e))?;
            let fingerprint = colon_hex(&Sha1::digest(pkcs8.as_bytes()));
            (
                pem.trim_end().to_string(),
                KeyData::Rsa(public),
                fingerprint,
            )
        }
        KeyType::Ed25519 => {
            let mut seed = [0u8; 32];
            ssh_key::getrandom::fill(&mut seed).map_err(|e| failed("getrandom", &e))?;
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            let openssh = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| failed("OpenSSH encoding", &e))?;
            let key_data = key.public_key().key_data().clone();
            let fingerprint = openssh_sha256_fingerprint(&key_data);
            (openssh.trim_end().to_string(), key_data, fingerprint)
        }
    };
    let public = PublicKey::new(key_type, key_data).map_err(|e| failed("public key", &e))?;
    Ok(GeneratedKey {
        private_key,
        public_key: public.line,
        fingerprint,
    })
}

/// A parsed OpenSSH public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub key_type: KeyType,
    line: String,
    import_fingerprint: String,
}

impl PublicKey {
    fn new(key_type: KeyType, key_data: KeyData) -> Result<Self, KeyError> {
        let import_fingerprint = match key_data.rsa() {
            Some(rsa) => colon_hex(&Md5::digest(rsa_spki(rsa)?)),
            None => openssh_sha256_fingerprint(&key_data),
        };
        let line = ssh_key::PublicKey::new(key_data, "")
            .to_openssh()
            .map_err(|e| KeyError::Format(format!("public key: {e}")))?;
        Ok(PublicKey {
            key_type,
            line,
            import_fingerprint,
        })
    }

    /// `ssh-rsa AAAA…` / `ssh-ed25519 AAAA…`, without a comment.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// EC2's fingerprint of an imported key.
    pub fn import_fingerprint(&self) -> &str {
        &self.import_fingerprint
    }
}

/// Base64 (padded) of the SHA-256 of the key blob.
fn openssh_sha256_fingerprint(key_data: &KeyData) -> String {
    STANDARD.encode(key_data.fingerprint(HashAlg::Sha256).as_bytes())
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
    // Decodes the whole blob (the type name, then the key's fields) and
    // refuses trailing bytes.
    let key = ssh_key::PublicKey::from_bytes(&blob)
        .map_err(|e| KeyError::Format(format!("public key blob: {e}")))?;
    if key.algorithm().as_str() != kind {
        return Err(KeyError::Format(
            "the key blob's type differs from its label".into(),
        ));
    }
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa.key_size();
        if !(1024..=16384).contains(&bits) {
            return Err(KeyError::Format(format!(
                "RSA keys must have 1024 to 16384 bits (this one has about {bits})"
            )));
        }
    }
    PublicKey::new(key_type, key.key_data().clone())
}

/// DER SubjectPublicKeyInfo (rsaEncryption, NULL parameters) of an RSA
/// public key, as `openssl pkey -pubin -outform DER` writes it. Encoded
/// from the SSH fields as they are, so any key the parser accepted has one.
fn rsa_spki(key: &RsaPublicKey) -> Result<Vec<u8>, KeyError> {
    let bad = |e: &dyn std::fmt::Display| KeyError::Format(format!("RSA public key: {e}"));
    let (Some(n), Some(e)) = (key.n().as_positive_bytes(), key.e().as_positive_bytes()) else {
        return Err(KeyError::Format("RSA public key: negative field".into()));
    };
    let pkcs1 = pkcs1::RsaPublicKeyRef {
        modulus: pkcs1::UintRef::new(n).map_err(|e| bad(&e))?,
        public_exponent: pkcs1::UintRef::new(e).map_err(|e| bad(&e))?,
    }
    .to_der()
    .map_err(|e| bad(&e))?;
    SubjectPublicKeyInfoRef {
        algorithm: pkcs1::ALGORITHM_ID,
        subject_public_key: BitStringRef::from_bytes(&pkcs1).map_err(|e| bad(&e))?,
    }
    .to_der()
    .map_err(|e| bad(&e))
}
