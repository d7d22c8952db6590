//! `flint <verb> --option value…` → EC2 Query parameters, the way the aws
//! CLI reads options and botocore's EC2 serializer flattens them. Options
//! are the input members in kebab case; lists take one or more values;
//! structures take shorthand or JSON; booleans are flags (`--dry-run`,
//! `--no-dry-run`); `file://` / `fileb://` read a value from a file.

use serde_json::Value;
use thiserror::Error;

use super::model::{Model, Shape, option_name};
use super::shorthand;

#[derive(Debug, Error)]
pub enum ArgsError {
    #[error("Unknown options: {0}")]
    Unknown(String),
    #[error("argument {option}: {reason}")]
    Invalid { option: String, reason: String },
}

/// Options every verb takes, not part of the request.
#[derive(Debug, Default)]
pub struct Global {
    pub socket: Option<String>,
    pub endpoint_url: Option<String>,
    /// `--query`: a JMESPath expression for the result.
    pub query: Option<String>,
    /// `--output`: json (default), text or table.
    pub output: Option<String>,
}

fn invalid(option: &str, reason: impl Into<String>) -> ArgsError {
    ArgsError::Invalid {
        option: format!("--{option}"),
        reason: reason.into(),
    }
}

/// Reads `file://` (text) and `fileb://` (bytes) values.
fn load(option: &str, text: &str) -> Result<Vec<u8>, ArgsError> {
    let path = text
        .strip_prefix("fileb://")
        .or_else(|| text.strip_prefix("file://"));
    match path {
        Some(p) => std::fs::read(p).map_err(|e| invalid(option, format!("{p}: {e}"))),
        None => Ok(text.as_bytes().to_vec()),
    }
}

fn base64(data: &[u8]) -> String {
    flint_control::api::codec::base64_encode(data)
}

/// Groups argv into (option, values).
fn group(args: &[String]) -> Result<Vec<(String, Vec<String>)>, ArgsError> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for a in args {
        if let Some(name) = a.strip_prefix("--") {
            out.push((name.to_string(), Vec::new()));
        } else if let Some((_, values)) = out.last_mut() {
            values.push(a.clone());
        } else {
            return Err(ArgsError::Unknown(a.clone()));
        }
    }
    Ok(out)
}

/// The wire parameters for `operation` from `args`.
pub fn to_params(
    model: &Model,
    operation: &str,
    input: &Shape,
    args: &[String],
) -> Result<(Vec<(String, String)>, Global), ArgsError> {
    let mut params = Vec::new();
    let mut global = Global::default();
    let mut unknown = Vec::new();
    for (name, values) in group(args)? {
        let one = |values: &[String]| -> Result<String, ArgsError> {
            match values {
                [v] => Ok(v.clone()),
                _ => Err(invalid(&name, "expected one argument")),
            }
        };
        match name.as_str() {
            "socket" => {
                global.socket = Some(one(&values)?);
                continue;
            }
            "endpoint-url" => {
                global.endpoint_url = Some(one(&values)?);
                continue;
            }
            "query" => {
                global.query = Some(one(&values)?);
                continue;
            }
            "output" => {
                global.output = Some(one(&values)?);
                continue;
            }
            // Accepted for compatibility with aws-CLI command lines.
            "region" | "profile" => {
                one(&values)?;
                continue;
            }
            "no-cli-pager" | "no-paginate" | "no-sign-request" | "debug" => continue,
            "count" if operation == "RunInstances" => {
                let v = one(&values)?;
                let (min, max) = v.split_once(':').unwrap_or((&v, &v));
                for (n, wire) in [(min, "MinCount"), (max, "MaxCount")] {
                    n.parse::<u32>()
                        .map_err(|_| invalid(&name, "expected N or MIN:MAX"))?;
                    params.push((wire.to_string(), n.to_string()));
                }
                continue;
            }
            _ => {}
        }
        let (flag, negated) = match name.strip_prefix("no-") {
            Some(rest) => (rest.to_string(), true),
            None => (name.clone(), false),
        };
        let member = input.members().find(|m| option_name(m.name) == flag);
        let Some(member) = member else {
            unknown.push(format!("--{name}"));
            continue;
        };
        let shape = model
            .shape(member.shape)
            .ok_or_else(|| invalid(&name, "not in the model"))?;
        let wire = wire_name(member.name, member.location, member.query);
        if shape.t == "boolean" {
            if !values.is_empty() {
                return Err(invalid(&name, "takes no value"));
            }
            params.push((wire, (!negated).to_string()));
            continue;
        }
        if negated {
            unknown.push(format!("--{name}"));
            continue;
        }
        if values.is_empty() {
            return Err(invalid(&name, "expected a value"));
        }
        let value: Value = match shape.t.as_str() {
            "list" => {
                let item = model
                    .shape(&shape.i)
                    .ok_or_else(|| invalid(&name, "not in the model"))?;
                if item.t == "structure" {
                    let mut items = Vec::new();
                    for v in &values {
                        let text = String::from_utf8_lossy(&load(&name, v)?).into_owned();
                        match shorthand::parse(&text).map_err(|e| invalid(&name, e.to_string()))? {
                            Value::Array(a) => items.extend(a),
                            other => items.push(other),
                        }
                    }
                    Value::Array(items)
                } else {
                    Value::Array(values.iter().cloned().map(Value::String).collect())
                }
            }
            "structure" => {
                let text = String::from_utf8_lossy(&load(&name, &one(&values)?)?).into_owned();
                shorthand::parse(&text).map_err(|e| invalid(&name, e.to_string()))?
            }
            "blob" => Value::String(base64(&load(&name, &one(&values)?)?)),
            _ => {
                let raw = load(&name, &one(&values)?)?;
                // The aws CLI base64-encodes RunInstances' user data itself.
                if operation == "RunInstances" && member.name == "UserData" {
                    Value::String(base64(&raw))
                } else {
                    Value::String(String::from_utf8_lossy(&raw).into_owned())
                }
            }
        };
        serialize(model, &value, shape, &wire, &mut params).map_err(|e| invalid(&name, e))?;
    }
    if !unknown.is_empty() {
        return Err(ArgsError::Unknown(unknown.join(", ")));
    }
    Ok((params, global))
}

/// botocore's EC2 rule: queryName, else capitalised locationName, else
/// the member name.
fn wire_name(member: &str, location: &str, query: &str) -> String {
    if !query.is_empty() {
        return query.to_string();
    }
    if !location.is_empty() {
        let mut c = location.chars();
        return match c.next() {
            Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
            None => member.to_string(),
        };
    }
    member.to_string()
}

fn serialize(
    model: &Model,
    value: &Value,
    shape: &Shape,
    prefix: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    match (shape.t.as_str(), value) {
        ("structure", Value::Object(map)) => {
            for (key, v) in map {
                let member = shape.members().find(|m| m.name == key).ok_or_else(|| {
                    let names: Vec<&str> = shape.members().map(|m| m.name).collect();
                    format!("unknown key {key:?}; valid keys: {}", names.join(", "))
                })?;
                let sub = model
                    .shape(member.shape)
                    .ok_or_else(|| format!("{key}: not in the model"))?;
                let name = format!(
                    "{prefix}.{}",
                    wire_name(member.name, member.location, member.query)
                );
                serialize(model, v, sub, &name, out)?;
            }
            Ok(())
        }
        ("list", _) => {
            let item = model
                .shape(&shape.i)
                .ok_or_else(|| "list item not in the model".to_string())?;
            let items = match value {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for (i, v) in items.iter().enumerate() {
                serialize(model, v, item, &format!("{prefix}.{}", i + 1), out)?;
            }
            Ok(())
        }
        ("structure", _) => Err(format!("{prefix}: expected a structure")),
        (_, Value::String(s)) => {
            let text = match shape.t.as_str() {
                "boolean" => match s.to_ascii_lowercase().as_str() {
                    "true" | "false" => s.to_ascii_lowercase(),
                    _ => return Err(format!("{prefix}: expected true or false")),
                },
                "integer" | "long" => {
                    s.parse::<i64>()
                        .map_err(|_| format!("{prefix}: expected an integer"))?;
                    s.clone()
                }
                _ => s.clone(),
            };
            out.push((prefix.to_string(), text));
            Ok(())
        }
        (_, Value::Bool(b)) => {
            out.push((prefix.to_string(), b.to_string()));
            Ok(())
        }
        (_, Value::Number(n)) => {
            out.push((prefix.to_string(), n.to_string()));
            Ok(())
        }
        (_, other) => Err(format!("{prefix}: unexpected value {other}")),
    }
}
