//! `flint <ec2-verb> …`: one EC2 request to the daemon (its Unix socket by
//! default, or `--endpoint-url http://127.0.0.1:PORT`), the reply printed
//! as `aws ec2` prints it. Exit codes are the aws CLI's: 0 success, 252
//! bad command line, 254 an EC2 error, 255 no connection / other failure.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use thiserror::Error;

use super::args::{self, ArgsError};
use super::help;
use super::model::{self, operation_of_verb};
use super::output::{self, Format};
use super::xml_json::{self, Json};

pub const DEFAULT_SOCKET: &str = "/run/flint/flint.sock";
pub const EXIT_USAGE: u8 = 252;
pub const EXIT_API_ERROR: u8 = 254;
pub const EXIT_OTHER: u8 = 255;
/// Long enough for RegisterImage converting a large qcow2.
const TIMEOUT: Duration = Duration::from_secs(1800);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("Could not connect to the endpoint URL: \"{0}\"")]
    Connect(String),
    #[error("{0}")]
    Io(String),
    #[error("unsupported --endpoint-url {0:?}: only http://HOST:PORT")]
    Endpoint(String),
    #[error("the daemon's reply is not HTTP: {0}")]
    BadReply(String),
}

pub fn usage(verb: &str, message: &str) -> ExitCode {
    let _ = writeln!(
        std::io::stderr(),
        "usage: flint {verb} [options]\nflint: error: {message}"
    );
    ExitCode::from(EXIT_USAGE)
}

/// Form-encodes like botocore: everything but unreserved characters
/// percent-escaped.
fn form(params: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One POST, the whole reply read to EOF: (status, body).
fn post(socket: &str, endpoint: Option<&str>, body: &str) -> Result<(u16, Vec<u8>), ClientError> {
    request(socket, endpoint, "POST", "/", body)
}

/// One request to the daemon, the whole reply read to EOF: (status, body).
pub fn request(
    socket: &str,
    endpoint: Option<&str>,
    method: &str,
    target: &str,
    body: &str,
) -> Result<(u16, Vec<u8>), ClientError> {
    let (host, mut stream): (String, Box<dyn ReadWrite>) = match endpoint {
        Some(url) => {
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| ClientError::Endpoint(url.to_string()))?;
            let authority = rest.trim_end_matches('/').to_string();
            let s = TcpStream::connect(&authority)
                .map_err(|_| ClientError::Connect(url.to_string()))?;
            s.set_read_timeout(Some(TIMEOUT)).ok();
            (authority, Box::new(s))
        }
        None => {
            let s = UnixStream::connect(socket)
                .map_err(|e| ClientError::Connect(format!("unix:{socket} ({e})")))?;
            s.set_read_timeout(Some(TIMEOUT)).ok();
            ("localhost".to_string(), Box::new(s))
        }
    };
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded; \
         charset=utf-8\r\nContent-Length: {}\r\nUser-Agent: flint-cli\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| ClientError::Io(e.to_string()))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|e| ClientError::Io(e.to_string()))?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(&reply) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(ClientError::BadReply("truncated".into())),
        Err(e) => return Err(ClientError::BadReply(e.to_string())),
    };
    let status = response.code.unwrap_or(0);
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let body = &reply[head..];
    let body = match length {
        Some(n) if n <= body.len() => &body[..n],
        _ => body,
    };
    Ok((status, body.to_vec()))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

pub fn run(verb: &str, argv: &[String]) -> ExitCode {
    let Some(model) = model::model() else {
        let _ = writeln!(
            std::io::stderr(),
            "flint: the compiled-in EC2 model is unreadable"
        );
        return ExitCode::from(EXIT_OTHER);
    };
    let operation = operation_of_verb(verb);
    let Some([input_name, output_name]) = model.operations.get(&operation) else {
        return unknown_verb(model, verb);
    };
    if is_help(argv) {
        print!("{}", help::verb_help(model, verb, &operation, input_name));
        return ExitCode::SUCCESS;
    }
    let Some(input) = model.shape(input_name) else {
        return usage(verb, "command not in the model");
    };
    let (params, global) = match args::to_params(model, &operation, input, argv) {
        Ok(p) => p,
        Err(e @ (ArgsError::Unknown(_) | ArgsError::Invalid { .. })) => {
            return usage(verb, &e.to_string());
        }
    };
    // Both checked before anything is sent, as the aws CLI does.
    let format = match global.output.as_deref().map(Format::parse).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return usage(verb, &format!("argument --output: {e}")),
    };
    let query = match global.query.as_deref().map(output::compile).transpose() {
        Ok(q) => q,
        Err(e) => {
            // aws: the message after a blank line, exit 255.
            let _ = writeln!(std::io::stderr(), "\n{e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let mut all = vec![
        ("Action".to_string(), operation.clone()),
        ("Version".to_string(), "2016-11-15".to_string()),
    ];
    all.extend(params);
    let socket = global.socket.as_deref().unwrap_or(DEFAULT_SOCKET);
    let (status, body) = match post(socket, global.endpoint_url.as_deref(), &form(&all)) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "\n{e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let doc = match xml_json::parse(&body) {
        Ok(doc) => doc,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "\nflint: HTTP {status}: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    if status >= 300 || doc.name == "Response" {
        let error = doc.child("Errors").and_then(|e| e.child("Error"));
        let code = error
            .and_then(|e| e.child("Code"))
            .map_or("Unknown", |c| c.text.as_str());
        let message = error
            .and_then(|e| e.child("Message"))
            .map_or("", |m| m.text.as_str());
        let _ = writeln!(
            std::io::stderr(),
            "\nAn error occurred ({code}) when calling the {operation} operation: {message}"
        );
        return ExitCode::from(EXIT_API_ERROR);
    }
    // Operations without output (CreateTags) print nothing, as aws does.
    if output_name.is_empty() {
        return ExitCode::SUCCESS;
    }
    let Some(output) = model.shape(output_name) else {
        return ExitCode::SUCCESS;
    };
    let json = xml_json::convert(model, &doc, output);
    if query.is_none() && format == Format::Json {
        // The model's key order, as aws prints it.
        let mut text = String::new();
        xml_json::print(&json, 0, &mut text);
        if json != Json::Obj(Vec::new()) {
            println!("{text}");
        }
        return ExitCode::SUCCESS;
    }
    let order = output::KeyOrder::new(&json, query.as_ref());
    print_result(
        output::to_value(&json),
        query.as_ref(),
        format,
        &operation,
        &order,
    )
}

/// `--query` and `--output` on a reply (any verb's, metrics' too).
pub fn print_result(
    value: serde_json::Value,
    query: Option<&jmespath::Expression<'static>>,
    format: Format,
    title: &str,
    order: &output::KeyOrder,
) -> ExitCode {
    let result = match query {
        Some(q) => output::search(q, value),
        None => jmespath::Variable::try_from(value).map_err(|e| e.to_string()),
    };
    match result {
        Ok(v) => {
            print!("{}", output::render(&v, format, title, order));
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "\nflint: --query: {e}");
            ExitCode::from(EXIT_OTHER)
        }
    }
}

/// `--help`, `-h`, or aws's own `<verb> help`.
pub fn is_help(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "--help" || a == "-h") || argv == ["help"]
}

fn unknown_verb(model: &model::Model, verb: &str) -> ExitCode {
    let close = help::close_matches(model, verb);
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", close.join(", "))
    };
    let _ = writeln!(
        std::io::stderr(),
        "usage: flint <command> [options]\nflint: error: unknown command {verb:?}{hint}\n\
         (`flint --help` lists the commands)"
    );
    ExitCode::from(EXIT_USAGE)
}
