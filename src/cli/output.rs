//! `--query EXPR` and `--output json|text|table`, as the aws CLI applies
//! them to a reply: the JMESPath expression (the `jmespath` crate, the
//! reference Rust implementation) runs on the JSON result, then the
//! result is printed in the chosen format. `text` follows awscli's
//! `text.py` (tab-separated; dict keys sorted; one line per object of a
//! list, with the union of the list's scalar keys; nested lists and
//! objects on lines of their own, prefixed with their key upper-cased).
//! `table` is a simple boxed rendering of the same shapes.

use std::fmt::Write as _;

use jmespath::{Expression, Variable};
use serde::Serialize;
use serde_json::Value;

use super::xml_json::Json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Text,
    Table,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            "table" => Ok(Format::Table),
            other => Err(format!(
                "invalid choice: {other:?} (choose from \"json\", \"text\", \"table\")"
            )),
        }
    }
}

/// A compiled `--query`; the error text is jmespath's, for the usage line.
pub fn compile(expr: &str) -> Result<Expression<'static>, String> {
    jmespath::compile(expr).map_err(|e| format!("Bad value for --query {expr}: {e}"))
}

/// The reply as a JSON value (numbers stay numbers).
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Obj(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
        Json::Arr(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Str(s) => Value::String(s.clone()),
        Json::Num(n) => n
            .parse::<serde_json::Number>()
            .map_or_else(|_| Value::String(n.clone()), Value::Number),
        Json::Bool(b) => Value::Bool(*b),
    }
}

/// `--query` on the reply: the value it selects.
pub fn search(expr: &Expression<'static>, value: Value) -> Result<Variable, String> {
    let var = Variable::try_from(value).map_err(|e| e.to_string())?;
    expr.search(var)
        .map(|r| (*r).clone())
        .map_err(|e| e.to_string())
}

/// What is printed for `var` (without the final newline handling: the
/// result is exactly what goes to stdout). `title` heads a table (aws
/// uses the operation name).
pub fn render(var: &Variable, format: Format, title: &str) -> String {
    match format {
        Format::Json => json(var),
        Format::Text => {
            let mut out = String::new();
            text(var, None, None, &mut out);
            out
        }
        Format::Table => table(var, title),
    }
}

/// Python's `json.dumps(v, indent=4, ensure_ascii=False)` and a newline;
/// nothing for `{}` (the aws CLI prints no empty reply).
fn json(var: &Variable) -> String {
    if matches!(var, Variable::Object(m) if m.is_empty()) {
        return String::new();
    }
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if var.serialize(&mut ser).is_err() {
        return String::new();
    }
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    s.push('\n');
    s
}

/// Python's `str()` of a scalar, as awscli's text output writes it.
fn scalar(var: &Variable) -> String {
    match var {
        Variable::String(s) => s.clone(),
        Variable::Number(n) => n.to_string(),
        Variable::Bool(true) => "True".to_string(),
        Variable::Bool(false) => "False".to_string(),
        Variable::Null => "None".to_string(),
        // Not reached: callers pass scalars only.
        other => other.to_string(),
    }
}

fn is_scalar(var: &Variable) -> bool {
    !matches!(var, Variable::Array(_) | Variable::Object(_))
}

/// awscli `text._format_text`.
fn text(var: &Variable, id: Option<&str>, keys: Option<&[String]>, out: &mut String) {
    match var {
        Variable::Object(_) => text_dict(var, id, keys, out),
        Variable::Array(items) => text_list(items, id, out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn text_list(items: &[jmespath::Rcvar], id: Option<&str>, out: &mut String) {
    if items.is_empty() {
        return;
    }
    if items.iter().any(|v| v.is_object()) {
        // The sorted union of the scalar keys of the list's objects.
        let mut keys: Vec<String> = items
            .iter()
            .filter_map(|v| v.as_object())
            .flat_map(|m| {
                m.iter()
                    .filter(|(_, v)| is_scalar(v))
                    .map(|(k, _)| k.clone())
            })
            .collect();
        keys.sort();
        keys.dedup();
        for item in items {
            text(item, id, Some(&keys), out);
        }
    } else if items.iter().any(|v| v.is_array()) {
        let scalars: Vec<&Variable> = items
            .iter()
            .filter(|v| is_scalar(v))
            .map(|v| &**v)
            .collect();
        if !scalars.is_empty() {
            scalar_list(&scalars, id, out);
        }
        for item in items.iter().filter(|v| !is_scalar(v)) {
            text(item, id, None, out);
        }
    } else {
        let all: Vec<&Variable> = items.iter().map(|v| &**v).collect();
        scalar_list(&all, id, out);
    }
}

fn scalar_list(items: &[&Variable], id: Option<&str>, out: &mut String) {
    match id {
        Some(id) => {
            for item in items {
                let _ = writeln!(out, "{}\t{}", id.to_uppercase(), scalar(item));
            }
        }
        None => {
            let line: Vec<String> = items.iter().map(|v| scalar(v)).collect();
            out.push_str(&line.join("\t"));
            out.push('\n');
        }
    }
}

fn text_dict(var: &Variable, id: Option<&str>, keys: Option<&[String]>, out: &mut String) {
    let Some(map) = var.as_object() else { return };
    let mut scalars = Vec::new();
    let mut nested: Vec<(&String, &Variable)> = Vec::new();
    match keys {
        None => {
            // BTreeMap: already in sorted key order, as Python's sorted().
            for (k, v) in map {
                if is_scalar(v) {
                    scalars.push(scalar(v));
                } else {
                    nested.push((k, v));
                }
            }
        }
        Some(keys) => {
            for k in keys {
                scalars.push(map.get(k).map_or_else(String::new, |v| scalar(v)));
            }
            for (k, v) in map {
                if !keys.contains(k) {
                    nested.push((k, v));
                }
            }
        }
    }
    if !scalars.is_empty() {
        if let Some(id) = id {
            scalars.insert(0, id.to_uppercase());
        }
        out.push_str(&scalars.join("\t"));
        out.push('\n');
    }
    for (k, v) in nested {
        text(v, Some(k), None, out);
    }
}

/// One box of a table: an optional title, column headers, rows.
struct Section {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn sections(var: &Variable, title: &str, out: &mut Vec<Section>) {
    match var {
        Variable::Object(map) => {
            let scalars: Vec<(&String, &jmespath::Rcvar)> =
                map.iter().filter(|(_, v)| is_scalar(v)).collect();
            if !scalars.is_empty() {
                out.push(Section {
                    title: title.to_string(),
                    headers: scalars.iter().map(|(k, _)| (*k).clone()).collect(),
                    rows: vec![scalars.iter().map(|(_, v)| scalar(v)).collect()],
                });
            } else {
                out.push(Section {
                    title: title.to_string(),
                    headers: Vec::new(),
                    rows: Vec::new(),
                });
            }
            for (k, v) in map.iter().filter(|(_, v)| !is_scalar(v)) {
                sections(v, k, out);
            }
        }
        Variable::Array(items) => {
            let scalars: Vec<&jmespath::Rcvar> = items.iter().filter(|v| is_scalar(v)).collect();
            let mut keys: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_object())
                .flat_map(|m| {
                    m.iter()
                        .filter(|(_, v)| is_scalar(v))
                        .map(|(k, _)| k.clone())
                })
                .collect();
            keys.sort();
            keys.dedup();
            let mut rows: Vec<Vec<String>> = scalars.iter().map(|v| vec![scalar(v)]).collect();
            for m in items.iter().filter_map(|v| v.as_object()) {
                rows.push(
                    keys.iter()
                        .map(|k| m.get(k).map_or_else(String::new, |v| scalar(v)))
                        .collect(),
                );
            }
            out.push(Section {
                title: title.to_string(),
                headers: keys,
                rows,
            });
            for item in items.iter().filter(|v| !is_scalar(v)) {
                match &**item {
                    Variable::Object(m) => {
                        for (k, v) in m.iter().filter(|(_, v)| !is_scalar(v)) {
                            sections(v, k, out);
                        }
                    }
                    other => sections(other, title, out),
                }
            }
        }
        other => out.push(Section {
            title: title.to_string(),
            headers: Vec::new(),
            rows: vec![vec![scalar(other)]],
        }),
    }
}

fn table(var: &Variable, title: &str) -> String {
    if matches!(var, Variable::Object(m) if m.is_empty()) {
        return String::new();
    }
    let mut all = Vec::new();
    sections(var, title, &mut all);
    // Drop boxes with nothing in them but a title, except the first.
    let mut out = String::new();
    for (i, s) in all.iter().enumerate() {
        if i > 0 && s.headers.is_empty() && s.rows.is_empty() {
            continue;
        }
        draw(s, &mut out);
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn draw(s: &Section, out: &mut String) {
    let columns = s
        .headers
        .len()
        .max(s.rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0usize; columns];
    for row in std::iter::once(&s.headers).chain(&s.rows) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(cell));
        }
    }
    // Cells are "| x " (3 + width each) and a closing "|".
    let mut inner = widths
        .iter()
        .map(|w| w + 3)
        .sum::<usize>()
        .saturating_sub(1);
    if inner < width(&s.title) + 2 {
        // Widen the last column so the title fits.
        let extra = width(&s.title) + 2 - inner;
        if let Some(last) = widths.last_mut() {
            *last += extra;
        }
        inner += extra;
    }
    let dashes = |n: usize| "-".repeat(n);
    let _ = writeln!(out, "{}", dashes(inner + 2));
    let pad = inner - width(&s.title);
    let _ = writeln!(
        out,
        "|{}{}{}|",
        " ".repeat(pad / 2),
        s.title,
        " ".repeat(pad - pad / 2)
    );
    let rule = |out: &mut String| {
        let cells: Vec<String> = widths.iter().map(|w| dashes(w + 2)).collect();
        let _ = writeln!(out, "+{}+", cells.join("+"));
    };
    let line = |out: &mut String, row: &[String], center: bool| {
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            let gap = w - width(cell);
            if center {
                let _ = write!(
                    out,
                    " {}{}{} |",
                    " ".repeat(gap / 2),
                    cell,
                    " ".repeat(gap - gap / 2)
                );
            } else {
                let _ = write!(out, " {cell}{} |", " ".repeat(gap));
            }
        }
        out.push('\n');
    };
    if columns == 0 {
        let _ = writeln!(out, "{}", dashes(inner + 2));
        return;
    }
    rule(out);
    if !s.headers.is_empty() {
        line(out, &s.headers, true);
        rule(out);
    }
    for row in &s.rows {
        line(out, row, false);
    }
    rule(out);
}
