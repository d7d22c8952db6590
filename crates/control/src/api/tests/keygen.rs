//! Key pairs: EC2's fingerprints of imported keys against values printed by
//! OpenSSH and OpenSSL (golden), and generated keys checked by those tools
//! as independent clients: `ssh-keygen` (openssh-client, which
//! scripts/install-deps installs) and `openssl` (Debian's openssl, which
//! ca-certificates pulls in; tests/serve_api uses it too).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha1::{Digest, Sha1};

use super::super::codec::colon_hex;
use super::super::keygen::{KeyType, generate, parse_public_key};

/// `ssh-keygen -t rsa -b 1024`; its fingerprint from `ssh-keygen -e -m
/// PKCS8 -f key.pub | openssl pkey -pubin -outform DER | openssl md5 -c`.
const RSA_PUB: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCwytRIkFixbrmBV/gPw1ERkhjcrrr8Xg1ULhe6n01RMxrAoqVb2sK3P0rvobMBGgkYSyI7hZJcmlxiGsFbMR8lxY1O0RB/agYYJLwou0z5lZ0MKSUhokW9GxhIJe1zJanilPPjwOgOjWDVQ8Kwwc6ZP/zxDWHb5KSTUgJEug2uXQ== gold";
const RSA_MD5: &str = "56:b1:5d:7e:84:6a:ac:da:59:31:2a:fe:bc:a3:ea:c3";

/// `ssh-keygen -t ed25519`; `ssh-keygen -l -E sha256` printed
/// `SHA256:/7zypRN62U4J3azmgGvkraQ8es4Ng+yVn2ULGYxUwhI`.
const ED25519_PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC0UKfQaqBrfTvP1UHIimLeQGQlMmoQjtEnTYqBrALpm gold";
const ED25519_SHA256: &str = "/7zypRN62U4J3azmgGvkraQ8es4Ng+yVn2ULGYxUwhI=";

#[test]
fn imported_key_fingerprints_match_openssh_and_openssl() {
    let rsa = parse_public_key(RSA_PUB).unwrap();
    assert_eq!(rsa.key_type, KeyType::Rsa);
    assert_eq!(rsa.import_fingerprint(), RSA_MD5);
    assert_eq!(rsa.line(), RSA_PUB.trim_end_matches(" gold"));
    let ed = parse_public_key(ED25519_PUB).unwrap();
    assert_eq!(ed.key_type, KeyType::Ed25519);
    assert_eq!(ed.import_fingerprint(), ED25519_SHA256);
    assert_eq!(ed.line(), ED25519_PUB.trim_end_matches(" gold"));
    // Surrounding whitespace and a trailing newline, as in a .pub file.
    let padded = format!("  {RSA_PUB}\n");
    assert_eq!(
        parse_public_key(&padded).unwrap().import_fingerprint(),
        RSA_MD5
    );
}

#[test]
fn public_keys_are_refused_for_ec2s_reasons() {
    let (label, b64) = RSA_PUB.split_once(' ').unwrap();
    let b64 = b64.trim_end_matches(" gold");
    let refused = |line: &str| parse_public_key(line).unwrap_err().to_string();
    // The label must name the blob's type.
    assert!(refused(&format!("ssh-ed25519 {b64}")).contains("differs"));
    // URL-safe base64 is not OpenSSH's.
    assert!(refused(&format!("{label} {}", b64.replace('/', "_"))).contains("base64"));
    // Truncated or extended blobs.
    assert!(refused(&format!("{label} {}", &b64[..b64.len() - 8])).contains("blob"));
    let mut longer = super::super::codec::base64_decode(b64).unwrap();
    longer.push(0);
    let longer = super::super::codec::base64_encode(&longer);
    assert!(refused(&format!("{label} {longer}")).contains("blob"));
    // Too small an RSA key: 512 bits.
    let small = rsa_blob(&[0x01, 0x00, 0x01], &[0x45; 64]);
    assert!(refused(&format!("ssh-rsa {small}")).contains("1024 to 16384 bits"));
    let ok = rsa_blob(&[0x01, 0x00, 0x01], &[0x45; 256]);
    assert!(parse_public_key(&format!("ssh-rsa {ok}")).is_ok());
    assert!(refused("ecdsa-sha2-nistp256 AAAA").contains("not supported"));
}

/// `ssh-rsa` blob with the given exponent and modulus (positive, no
/// leading zero needed: the first byte is below 0x80).
fn rsa_blob(e: &[u8], n: &[u8]) -> String {
    let mut blob = Vec::new();
    for part in [&b"ssh-rsa"[..], e, n] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    super::super::codec::base64_encode(&blob)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flint-keygen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a private key as `ssh-keygen` wants it (0600).
fn write_key(dir: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    writeln!(f, "{text}").unwrap();
    path
}

fn run(program: &str, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (packages openssh-client, openssl): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or_default()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn created_rsa_key_is_what_openssh_and_openssl_read() {
    let key = generate(KeyType::Rsa).unwrap();
    assert!(
        key.private_key
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
    );
    assert!(key.private_key.ends_with("\n-----END RSA PRIVATE KEY-----"));
    let dir = scratch("rsa");
    let path = write_key(&dir, &key.private_key);
    let path = path.to_str().unwrap();
    // The public half, as OpenSSH derives it from the private key.
    let public = run("ssh-keygen", &["-y", "-f", path], None);
    assert_eq!(String::from_utf8(public).unwrap().trim(), key.public_key);
    let bits = run("ssh-keygen", &["-l", "-f", path], None);
    assert!(
        bits.starts_with(b"2048 "),
        "{}",
        String::from_utf8_lossy(&bits)
    );
    // EC2's fingerprint: SHA-1 of the DER PKCS#8 form, as OpenSSL writes it.
    let der = run(
        "openssl",
        &[
            "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", path,
        ],
        None,
    );
    assert_eq!(key.fingerprint, colon_hex(&Sha1::digest(&der)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn created_ed25519_key_is_what_openssh_reads() {
    let key = generate(KeyType::Ed25519).unwrap();
    assert!(
        key.private_key
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    );
    let dir = scratch("ed25519");
    let path = write_key(&dir, &key.private_key);
    let path = path.to_str().unwrap();
    let public = run("ssh-keygen", &["-y", "-f", path], None);
    assert_eq!(String::from_utf8(public).unwrap().trim(), key.public_key);
    let printed = run("ssh-keygen", &["-l", "-E", "sha256", "-f", path], None);
    let printed = String::from_utf8(printed).unwrap();
    let sha256 = printed.split_whitespace().nth(1).unwrap();
    assert_eq!(
        sha256,
        format!("SHA256:{}", key.fingerprint.trim_end_matches('='))
    );
    // The same key, imported, has the same fingerprint.
    assert_eq!(
        parse_public_key(&key.public_key)
            .unwrap()
            .import_fingerprint(),
        key.fingerprint
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Two keys are never the same.
    assert_ne!(
        generate(KeyType::Ed25519).unwrap().public_key,
        key.public_key
    );
}
