//! Help for the EC2 verbs: the list `flint --help` shows, `flint <verb>
//! --help`, and close matches for a mistyped verb. The one-line texts come
//! from botocore's documentation (`resources/ec2-cli-help.json`, made by
//! `scripts/gen-cli-help`); the options are the ones the compiled-in model
//! accepts (`model.rs`), spelled as the aws CLI spells them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde::Deserialize;

use super::metrics;
use super::model::{Model, option_name};

const HELP_JSON: &str = include_str!("../../resources/ec2-cli-help.json");

#[derive(Debug, Deserialize)]
struct OpHelp {
    doc: String,
    /// [member, one line, required]
    options: Vec<(String, String, bool)>,
}

#[derive(Debug, Deserialize)]
struct HelpFile {
    operations: HashMap<String, OpHelp>,
}

fn help_file() -> Option<&'static HelpFile> {
    static HELP: OnceLock<Option<HelpFile>> = OnceLock::new();
    HELP.get_or_init(|| serde_json::from_str(HELP_JSON).ok())
        .as_ref()
}

const METRICS_DOC: &str = "Flint's own: each volume's I/O counters from its VM, as JSON.";

/// The options every verb takes, beside its own.
pub const GLOBAL_OPTIONS: &[(&str, &str)] = &[
    (
        "--query EXPR",
        "A JMESPath expression applied to the result (as the aws CLI's).",
    ),
    (
        "--output json|text|table",
        "How the result is printed (default json).",
    ),
    (
        "--socket PATH",
        "The daemon's Unix socket (default /run/flint/flint.sock).",
    ),
    (
        "--endpoint-url URL",
        "http://HOST:PORT of a daemon's --listen instead of the socket.",
    ),
];

/// The groups of `flint --help`, by a word of the operation name.
const GROUPS: &[(&str, &[&str])] = &[
    ("Instances", &["Instance", "ConsoleOutput"]),
    ("Images", &["Image"]),
    ("Key pairs", &["KeyPair"]),
    ("Volumes and snapshots", &["Volume", "Snapshot"]),
    ("Tags", &["Tags"]),
    ("Regions, zones and account", &[""]),
];

/// Every verb the client knows: (verb, one line), sorted.
pub fn verbs(model: &Model) -> Vec<(String, String)> {
    let help = help_file();
    let mut out: Vec<(String, String)> = model
        .operations
        .keys()
        .map(|op| {
            let doc = help
                .and_then(|h| h.operations.get(op))
                .map_or_else(String::new, |o| o.doc.clone());
            (option_name(op), doc)
        })
        .collect();
    out.push((metrics::VERB.to_string(), METRICS_DOC.to_string()));
    out.sort();
    out
}

/// The EC2 part of `flint --help`: the verbs, grouped, one line each.
pub fn overview(model: &Model) -> String {
    let mut ops: Vec<&String> = model.operations.keys().collect();
    ops.sort();
    let help = help_file();
    let doc = |op: &str| {
        help.and_then(|h| h.operations.get(op))
            .map_or("", |o| o.doc.as_str())
    };
    let mut out = String::from(
        "EC2 commands (as `aws ec2 <command>`; `flint <command> --help` lists its options;\n\
         all take --query, --output json|text|table, --socket, --endpoint-url):\n",
    );
    let mut placed: Vec<&str> = Vec::new();
    for (group, words) in GROUPS {
        let members: Vec<&str> = ops
            .iter()
            .map(|s| s.as_str())
            .filter(|op| !placed.contains(op) && words.iter().any(|w| op.contains(w)))
            .collect();
        if members.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n  {group}:");
        for op in &members {
            let _ = writeln!(out, "    {:<33} {}", option_name(op), doc(op));
            if *group == "Volumes and snapshots" && *op == "DescribeVolumesModifications" {
                let _ = writeln!(out, "    {:<33} {METRICS_DOC}", metrics::VERB);
            }
        }
        placed.extend(members);
    }
    out
}

/// How an option's value is written, from its shape's type.
fn value_hint(model: &Model, shape: &str) -> &'static str {
    let Some(s) = model.shape(shape) else {
        return "<value>";
    };
    match s.t.as_str() {
        "boolean" => "",
        "integer" | "long" => "<integer>",
        "structure" => "<shorthand|JSON>",
        "blob" => "<value|fileb://PATH>",
        "list" => match model.shape(&s.i).map(|i| i.t.as_str()) {
            Some("structure") => "<shorthand|JSON> ...",
            _ => "<value> ...",
        },
        _ => "<value>",
    }
}

/// `flint <verb> --help`.
pub fn verb_help(model: &Model, verb: &str, operation: &str, input: &str) -> String {
    let help = help_file().and_then(|h| h.operations.get(operation));
    let line = |member: &str| {
        help.and_then(|h| h.options.iter().find(|(m, _, _)| m == member))
            .map(|(_, l, r)| (l.as_str(), *r))
            .unwrap_or(("", false))
    };
    let mut out = String::new();
    let _ = writeln!(out, "usage: flint {verb} [options]\n");
    if let Some(h) = help {
        let _ = writeln!(out, "{}\n", h.doc);
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some(shape) = model.shape(input) {
        for m in shape.members() {
            let (text, required) = line(m.name);
            let name = option_name(m.name);
            // The aws CLI folds RunInstances' MinCount/MaxCount into --count.
            if operation == "RunInstances" && name == "min-count" {
                rows.push((
                    "--count N|MIN:MAX".to_string(),
                    "How many instances to launch (default 1); sets MinCount and MaxCount."
                        .to_string(),
                ));
            }
            let hint = value_hint(model, m.shape);
            let spelled = if hint.is_empty() {
                format!("--{name} | --no-{name}")
            } else {
                format!("--{name} {hint}")
            };
            let required = required && !(operation == "RunInstances" && name.ends_with("-count"));
            let text = if required {
                format!("(required) {text}")
            } else {
                text.to_string()
            };
            rows.push((spelled, text));
        }
    }
    let _ = writeln!(out, "options:");
    table_rows(&rows, &mut out);
    let _ = writeln!(out, "\nglobal options:");
    let global: Vec<(String, String)> = GLOBAL_OPTIONS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    table_rows(&global, &mut out);
    out
}

fn table_rows(rows: &[(String, String)], out: &mut String) {
    let w = rows.iter().map(|(a, _)| a.len()).max().unwrap_or(0).min(44);
    for (a, b) in rows {
        if a.len() > w {
            let _ = writeln!(out, "  {a}\n  {:w$}  {b}", "");
        } else {
            let _ = writeln!(out, "  {a:w$}  {b}");
        }
    }
}

/// Verbs close to a mistyped one: small edit distance, or containing it.
pub fn close_matches(model: &Model, verb: &str) -> Vec<String> {
    let mut scored: Vec<(usize, String)> = verbs(model)
        .into_iter()
        .filter_map(|(v, _)| {
            let d = strsim::levenshtein(verb, &v);
            if d <= (verb.len() / 4).max(2) {
                Some((d, v))
            } else if verb.len() >= 4 && v.contains(verb) {
                Some((d + 100, v))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.into_iter().take(6).map(|(_, v)| v).collect()
}
