use std::collections::HashSet;

use super::super::ids::*;
use super::super::random;

#[test]
fn new_ids_have_the_prefix_and_17_hex_digits() {
    for kind in ResourceKind::ALL {
        let id = new_id(kind);
        assert!(id.starts_with(kind.prefix()), "{id}");
        assert_eq!(id.len(), kind.prefix().len() + LONG_ID_HEX, "{id}");
        assert!(is_valid(kind, &id), "{id}");
        assert_eq!(ResourceKind::of(&id), Some(kind));
    }
}

#[test]
fn new_ids_are_unique() {
    let ids: HashSet<String> = (0..10_000)
        .map(|_| new_id(ResourceKind::Instance))
        .collect();
    assert_eq!(ids.len(), 10_000);
}

#[test]
fn validation_accepts_long_and_legacy_short_forms_only() {
    use ResourceKind::*;
    assert!(is_valid(Instance, "i-0123456789abcdef0"));
    assert!(is_valid(Instance, "i-1234abcd"));
    assert!(is_valid(Image, "ami-0abcdef1234567890"));
    assert!(is_valid(Volume, "vol-049df61146c4d7901"));
    assert!(is_valid(SecurityGroup, "sg-12345678"));
    for bad in [
        "",
        "i-",
        "i-123",
        "i-0123456789ABCDEF0",
        "i-0123456789abcdef",
        "i-0123456789abcdef01",
        "i-0123456789abcdefg",
        "I-0123456789abcdef0",
        "ami-0123456789abcdef0",
        " i-0123456789abcdef0",
        "i-1234abcd\n",
    ] {
        assert!(!is_valid(Instance, bad), "{bad:?}");
    }
    assert!(!is_valid(Image, "i-0123456789abcdef0"));
}

#[test]
fn validate_reports_kind_and_a_bounded_id() {
    let long = "i-".to_string() + &"x".repeat(500);
    match validate(ResourceKind::Instance, &long) {
        Err(IdError::Malformed { kind, id }) => {
            assert_eq!(kind, ResourceKind::Instance);
            assert_eq!(id.chars().count(), 64);
        }
        other => panic!("{other:?}"),
    }
    let message = validate(ResourceKind::Volume, "vol-zz")
        .unwrap_err()
        .to_string();
    assert!(message.contains("vol-"), "{message}");
    assert!(validate(ResourceKind::Volume, "vol-12345678").is_ok());
}

#[test]
fn kind_of_picks_by_prefix() {
    assert_eq!(ResourceKind::of("ami-1"), Some(ResourceKind::Image));
    assert_eq!(ResourceKind::of("i-1"), Some(ResourceKind::Instance));
    assert_eq!(ResourceKind::of("snap-1"), Some(ResourceKind::Snapshot));
    assert_eq!(ResourceKind::of("subnet-1"), Some(ResourceKind::Subnet));
    assert_eq!(ResourceKind::of("sg-1"), Some(ResourceKind::SecurityGroup));
    assert_eq!(ResourceKind::of("foo-1"), None);
}

#[test]
fn request_ids_are_uuid_v4() {
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let id = new_request_id();
        assert_eq!(id.len(), 36, "{id}");
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        assert_eq!(&parts[2][..1], "4", "{id}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        assert!(seen.insert(id));
    }
}

#[test]
fn fallback_randomness_still_differs_every_call() {
    let a: [u8; 40] = random::fallback_bytes();
    let b: [u8; 40] = random::fallback_bytes();
    assert_ne!(a, b);
    assert_ne!(random::bytes::<32>(), [0u8; 32]);
}
