//! A reply's XML → the JSON `aws ec2` prints, by botocore's EC2 parsing
//! rules: members found by their locationName (else member name), lists
//! as `<item>` children, integers/booleans/doubles typed by the model,
//! timestamps as the wire text (the aws CLI v1 prints them unchanged),
//! members absent from the XML absent from the JSON, keys in model order;
//! printed as Python's `json.dumps(indent=4, ensure_ascii=False)`.

use quick_xml::Reader;
use quick_xml::events::Event;
use thiserror::Error;

use super::model::{Model, Shape};

#[derive(Debug, Error)]
#[error("cannot read the reply XML: {0}")]
pub struct XmlError(pub String);

#[derive(Debug, Default)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Parses a document into its root element.
pub fn parse(xml: &[u8]) -> Result<Node, XmlError> {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError(e.to_string()))?;
        match event {
            Event::Start(e) => stack.push(Node {
                name: e.local_name().into_inner().to_string(),
                ..Node::default()
            }),
            Event::Empty(e) => {
                let node = Node {
                    name: e.local_name().into_inner().to_string(),
                    ..Node::default()
                };
                if let Some(top) = stack.last_mut() {
                    top.children.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| XmlError("unbalanced".into()))?;
                match stack.last_mut() {
                    Some(top) => top.children.push(node),
                    None => return Err(XmlError("unbalanced".into())),
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let name = r.into_inner().into_owned();
                let text = match name.as_str() {
                    "amp" => "&".to_string(),
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "quot" => "\"".to_string(),
                    "apos" => "'".to_string(),
                    n => n
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32)
                        .map(String::from)
                        .ok_or_else(|| XmlError(format!("unknown entity &{n};")))?,
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.into_inner());
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let mut doc = stack.pop().ok_or_else(|| XmlError("empty".into()))?;
    if !stack.is_empty() || doc.children.len() != 1 {
        return Err(XmlError("not one root element".into()));
    }
    doc.children.pop().ok_or_else(|| XmlError("empty".into()))
}

/// JSON with ordered keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Obj(Vec<(String, Json)>),
    Arr(Vec<Json>),
    Str(String),
    Num(String),
    Bool(bool),
}

pub fn convert(model: &Model, node: &Node, shape: &Shape) -> Json {
    match shape.t.as_str() {
        "structure" => {
            let mut members = Vec::new();
            for m in shape.members() {
                let xml_name = if m.location.is_empty() {
                    m.name
                } else {
                    m.location
                };
                if let (Some(child), Some(sub)) = (node.child(xml_name), model.shape(m.shape)) {
                    members.push((m.name.to_string(), convert(model, child, sub)));
                }
            }
            Json::Obj(members)
        }
        "list" => {
            let item_name = if shape.n.is_empty() {
                "member"
            } else {
                &shape.n
            };
            match model.shape(&shape.i) {
                Some(item) => Json::Arr(
                    node.children
                        .iter()
                        .filter(|c| c.name == item_name)
                        .map(|c| convert(model, c, item))
                        .collect(),
                ),
                None => Json::Arr(Vec::new()),
            }
        }
        "integer" | "long" => match node.text.trim().parse::<i64>() {
            Ok(n) => Json::Num(n.to_string()),
            Err(_) => Json::Str(node.text.clone()),
        },
        "double" | "float" => match node.text.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Json::Num(python_float(f)),
            _ => Json::Str(node.text.clone()),
        },
        "boolean" => Json::Bool(node.text.trim() == "true"),
        _ => Json::Str(node.text.clone()),
    }
}

/// Python's repr of a float: `2.5`, `3.0`.
fn python_float(f: f64) -> String {
    let s = format!("{f}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn print(j: &Json, indent: usize, out: &mut String) {
    let pad = |n: usize| " ".repeat(n * 4);
    match j {
        Json::Obj(m) if m.is_empty() => out.push_str("{}"),
        Json::Arr(a) if a.is_empty() => out.push_str("[]"),
        Json::Obj(m) => {
            out.push_str("{\n");
            for (i, (k, v)) in m.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                escape(k, out);
                out.push_str(": ");
                print(v, indent + 1, out);
                if i + 1 < m.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Json::Arr(a) => {
            out.push_str("[\n");
            for (i, v) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                print(v, indent + 1, out);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        Json::Str(s) => escape(s, out),
        Json::Num(n) => out.push_str(n),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
    }
}
