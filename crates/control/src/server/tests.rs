use super::parse_credentials;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("flint-creds-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn credentials_file_format() {
    let ok = write("ok", "# keys\n\nAKID1 secret1\n  AKID2\tsecret/2+x  \n");
    let keys = parse_credentials(&ok).unwrap();
    assert_eq!(keys.get("AKID1").map(String::as_str), Some("secret1"));
    assert_eq!(keys.get("AKID2").map(String::as_str), Some("secret/2+x"));
    for (name, text) in [
        ("one-field", "AKID1\n"),
        ("three", "A B C\n"),
        ("dup", "A s\nA t\n"),
        ("empty", "# nothing\n"),
    ] {
        let path = write(name, text);
        assert!(parse_credentials(&path).is_err(), "{name}");
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(ok);
}
