//! FIPS 180-4 (SHA-256) and RFC 4231 (HMAC-SHA256) test vectors.

use super::super::sha256::*;

fn sha_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

fn unhex(text: &str) -> Vec<u8> {
    if text == "aa*131" {
        return vec![0xaa; 131];
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn fips_180_4_vectors() {
    assert_eq!(
        sha_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    assert_eq!(
        sha_hex(
            b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        ),
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
    );
}

#[test]
fn one_million_a_streamed_in_odd_chunks() {
    let mut hasher = Sha256::new();
    let chunk = [b'a'; 997];
    let mut left = 1_000_000;
    while left > 0 {
        let n = left.min(chunk.len());
        hasher.update(&chunk[..n]);
        left -= n;
    }
    assert_eq!(
        hex(&hasher.finish()),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
}

#[test]
fn every_length_around_the_padding_boundary_streams_like_one_shot() {
    let data: Vec<u8> = (0..200u8).collect();
    for len in 0..data.len() {
        for split in [0, 1, len / 2, len.saturating_sub(1), len] {
            let split = split.min(len);
            let mut hasher = Sha256::new();
            hasher.update(&data[..split]);
            hasher.update(&data[split..len]);
            assert_eq!(
                hasher.finish(),
                sha256(&data[..len]),
                "len {len} split {split}"
            );
        }
    }
    // 55, 56 and 64 bytes are where the length field does or does not fit.
    assert_eq!(
        sha_hex(&[b'a'; 55]),
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"
    );
    assert_eq!(
        sha_hex(&[b'a'; 56]),
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"
    );
    assert_eq!(
        sha_hex(&[b'a'; 64]),
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"
    );
}

/// RFC 4231 section 4: (key, data, HMAC-SHA-256).
const RFC4231: [(&str, &str, &str); 6] = [
    (
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "4869205468657265",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        "4a656665",
        "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        "aa*131",
        "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        "aa*131",
        "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
];

#[test]
fn rfc_4231_hmac_vectors() {
    for (i, (key, data, mac)) in RFC4231.iter().enumerate() {
        assert_eq!(
            hex(&hmac_sha256(&unhex(key), &unhex(data))),
            *mac,
            "RFC 4231 case {}",
            i + 1
        );
    }
}

#[test]
fn rfc_4231_truncated_case_5() {
    let mac = hmac_sha256(&[0x0c; 20], b"Test With Truncation");
    assert_eq!(hex(&mac[..16]), "a3b6167473100ee06e0c796c2955552b");
}

#[test]
fn constant_time_eq_compares_whole_slices() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(constant_time_eq(b"", b""));
}
