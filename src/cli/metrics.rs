//! `flint describe-volume-metrics [--volume-ids ID ...]`: not an EC2
//! verb (EC2 has CloudWatch for this): the daemon's `GET /metrics/volumes`,
//! each volume's counters from its VM (`GET /vm/disks/{id}/metrics`),
//! printed as JSON. Same `--socket` / `--endpoint-url` as the EC2 verbs.

use std::io::Write;
use std::process::ExitCode;

use super::client::{
    DEFAULT_SOCKET, EXIT_API_ERROR, EXIT_OTHER, is_help, print_result, request, usage,
};
use super::help::GLOBAL_OPTIONS;
use super::output::{self, Format};
use super::xml_json;

pub const VERB: &str = "describe-volume-metrics";

struct Options {
    volume_ids: Vec<String>,
    socket: Option<String>,
    endpoint_url: Option<String>,
    query: Option<String>,
    output: Option<String>,
}

fn parse(argv: &[String]) -> Result<Options, String> {
    let mut o = Options {
        volume_ids: Vec::new(),
        socket: None,
        endpoint_url: None,
        query: None,
        output: None,
    };
    let mut i = 0;
    while i < argv.len() {
        let (name, inline) = match argv[i].split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (argv[i].as_str(), None),
        };
        i += 1;
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = argv
                .get(i)
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| format!("argument {name}: expected one argument"))?;
            i += 1;
            Ok(v.clone())
        };
        match name {
            "--socket" => o.socket = Some(value()?),
            "--endpoint-url" => o.endpoint_url = Some(value()?),
            "--query" => o.query = Some(value()?),
            "--output" => o.output = Some(value()?),
            "--volume-ids" => {
                if let Some(v) = inline.clone() {
                    o.volume_ids.extend(v.split(',').map(str::to_string));
                    continue;
                }
                while let Some(v) = argv.get(i).filter(|v| !v.starts_with("--")) {
                    o.volume_ids.push(v.clone());
                    i += 1;
                }
                if o.volume_ids.is_empty() {
                    return Err("argument --volume-ids: expected at least one argument".into());
                }
            }
            other => return Err(format!("Unknown options: {other}")),
        }
    }
    Ok(o)
}

/// Query-string escaping of a volume id (ids are hex, but the argument
/// is the user's).
fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn help() -> String {
    let mut out = format!(
        "usage: flint {VERB} [options]\n\n\
         Flint's own (not an EC2 action): each volume's I/O counters, from its VM.\n\n\
         options:\n  --volume-ids <value> ...  The volumes (default: all).\n\n\
         global options:\n"
    );
    for (a, b) in GLOBAL_OPTIONS {
        out.push_str(&format!("  {a:24}  {b}\n"));
    }
    out
}

pub fn run(argv: &[String]) -> ExitCode {
    if is_help(argv) {
        print!("{}", help());
        return ExitCode::SUCCESS;
    }
    let o = match parse(argv) {
        Ok(o) => o,
        Err(e) => return usage(VERB, &e),
    };
    let format = match o.output.as_deref().map(Format::parse).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return usage(VERB, &format!("argument --output: {e}")),
    };
    let expr = match o.query.as_deref().map(output::compile).transpose() {
        Ok(q) => q,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "\n{e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let query: Vec<String> = o
        .volume_ids
        .iter()
        .map(|id| format!("VolumeId={}", escape(id)))
        .collect();
    let target = if query.is_empty() {
        "/metrics/volumes".to_string()
    } else {
        format!("/metrics/volumes?{}", query.join("&"))
    };
    let socket = o.socket.as_deref().unwrap_or(DEFAULT_SOCKET);
    let (status, body) = match request(socket, o.endpoint_url.as_deref(), "GET", &target, "") {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "\n{e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    if status == 200 {
        if expr.is_none() && format == Format::Json {
            println!("{}", String::from_utf8_lossy(&body).trim_end());
            return ExitCode::SUCCESS;
        }
        return match serde_json::from_slice(&body) {
            Ok(value) => {
                let order = output::KeyOrder::default();
                print_result(
                    value,
                    expr.as_ref(),
                    format,
                    "DescribeVolumeMetrics",
                    &order,
                )
            }
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "\nflint: the daemon's reply: {e}");
                ExitCode::from(EXIT_OTHER)
            }
        };
    }
    // Errors come as EC2 error documents.
    let (code, message) = match xml_json::parse(&body) {
        Ok(doc) => {
            let error = doc.child("Errors").and_then(|e| e.child("Error"));
            (
                error
                    .and_then(|e| e.child("Code"))
                    .map_or("Unknown".to_string(), |c| c.text.clone()),
                error
                    .and_then(|e| e.child("Message"))
                    .map_or(String::new(), |m| m.text.clone()),
            )
        }
        Err(_) => (format!("HTTP {status}"), String::new()),
    };
    let _ = writeln!(
        std::io::stderr(),
        "\nAn error occurred ({code}) when calling {VERB}: {message}"
    );
    ExitCode::from(EXIT_API_ERROR)
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_as_the_aws_cli_spells_them() {
        let o = parse(&args(&["--volume-ids", "vol-1", "vol-2", "--socket", "/s"])).unwrap();
        assert_eq!(
            (o.volume_ids, o.socket.as_deref()),
            (vec!["vol-1".to_string(), "vol-2".to_string()], Some("/s"))
        );
        let o = parse(&args(&[
            "--volume-ids=vol-1,vol-2",
            "--endpoint-url=http://127.0.0.1:1",
        ]))
        .unwrap();
        assert_eq!(o.volume_ids.len(), 2);
        assert!(parse(&args(&["--volume-ids"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
    }
}
