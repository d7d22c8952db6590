use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use super::http::{host_allowed, http_error};
use super::{ServerError, parse_credentials};
use flint_http::HttpError;

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("flint-creds-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
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

#[test]
fn credentials_readable_by_others_are_refused() {
    let path = write("mode", "AKID1 secret1\n");
    for (mode, refused) in [
        (0o600, false),
        (0o400, false),
        (0o620, false),
        (0o640, true),
        (0o604, true),
        (0o644, true),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match parse_credentials(&path) {
            Err(e @ ServerError::CredentialsExposed { .. }) => {
                assert!(refused, "{mode:o}");
                let text = e.to_string();
                assert!(
                    text.contains("readable") && text.contains("chmod 600"),
                    "{text}"
                );
            }
            Ok(_) => assert!(!refused, "{mode:o}"),
            Err(e) => panic!("{mode:o}: {e}"),
        }
    }
    let _ = std::fs::remove_file(path);
}

#[test]
fn host_header_must_name_this_endpoint() {
    let v4: SocketAddr = "127.0.0.1:8773".parse().unwrap();
    let other_v4: SocketAddr = "127.0.0.2:8773".parse().unwrap();
    let v6: SocketAddr = "[::1]:8773".parse().unwrap();
    let allowed = [
        "127.0.0.1:8773",
        "127.0.0.1",
        "localhost",
        "LocalHost:8773",
        "[::1]",
        "[::1]:8773",
        // Through a port forward.
        "localhost:9999",
        "127.0.0.1:41979",
    ];
    for listen in [v4, other_v4, v6] {
        for host in allowed {
            assert!(host_allowed(Some(host), listen, 1), "{host} on {listen}");
        }
    }
    assert!(host_allowed(Some("127.0.0.2:8773"), other_v4, 1));
    assert!(!host_allowed(Some("127.0.0.2:8773"), v4, 1));
    for host in [
        "evil.example",
        "evil.example:8773",
        "localhost.evil.example",
        "127.0.0.1:",
        "localhost:http",
        "127.0.0.1:123456",
        "localhost.",
        "[::1]x",
        "[::1",
        "[::2]:8773",
        "0.0.0.0:8773",
        "",
    ] {
        assert!(!host_allowed(Some(host), v4, 1), "{host}");
    }
    // Host is required of HTTP/1.1, not of HTTP/1.0.
    assert!(!host_allowed(None, v4, 1));
    assert!(host_allowed(None, v4, 0));
}

#[test]
fn http_errors_become_ec2_errors() {
    let cases = [
        (HttpError::HeadTooLarge, "RequestHeaderSectionTooLarge", 431),
        (
            HttpError::TooManyHeaders,
            "RequestHeaderSectionTooLarge",
            431,
        ),
        (HttpError::TransferEncoding, "MissingContentLength", 411),
        (HttpError::BodyTooLarge, "RequestEntityTooLarge", 413),
        (HttpError::BadContentLength, "MalformedHTTPRequest", 400),
        (
            HttpError::NotUtf8("X-Amz-Date".into()),
            "MalformedHTTPRequest",
            400,
        ),
        (
            HttpError::Malformed("x".into()),
            "MalformedHTTPRequest",
            400,
        ),
    ];
    for (error, code, status) in cases {
        let ec2 = http_error(&error);
        assert_eq!((ec2.code, ec2.status), (code, status), "{error:?}");
        assert_eq!(ec2.status, error.status());
    }
}

#[test]
fn vmms_log_json_when_the_daemon_does() {
    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        serve: super::ServeArgs,
    }
    let parse = |argv: &[&str]| <Cmd as clap::Parser>::parse_from(argv).serve;
    let mut args = parse(&["serve"]);
    assert_eq!(super::vmm_command(&args), None, "the supervisor's default");
    args.log_json = true;
    let command = super::vmm_command(&args).unwrap();
    assert_eq!(command[1..], ["--log-format", "json", "vmm"]);
    // A stand-in VMM is run as given.
    let mut args = parse(&["serve", "--vmm-command", "python3 standin.py"]);
    args.log_json = true;
    assert_eq!(
        super::vmm_command(&args).unwrap(),
        ["python3", "standin.py"]
    );
}
