use quick_xml::Reader;
use quick_xml::events::Event;

use super::super::response::*;

fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// The text of every leaf element, in document order, as a reader sees
/// it (entity and character references resolved).
fn texts(xml: &str) -> Vec<(String, String)> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => stack.push((e.name().as_ref().to_string(), String::new())),
            Event::End(_) => out.push(stack.pop().unwrap()),
            Event::Text(t) => {
                if let Some((_, text)) = stack.last_mut() {
                    text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => match r.into_inner().as_ref() {
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "amp" => "&".to_string(),
                        "apos" => "'".to_string(),
                        "quot" => "\"".to_string(),
                        other => panic!("unknown entity {other}"),
                    },
                };
                stack.last_mut().unwrap().1.push_str(&text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unbalanced: {stack:?}");
    out
}

#[test]
fn document_shape() {
    let xml = utf8(
        ec2_response(
            "TerminateInstances",
            "59dbff89-35bd-4eac-99ed-be587EXAMPLE",
            |x| {
                x.list("instancesSet", ["i-1234567890abcdef0"], |x, id| {
                    x.text("instanceId", id);
                    x.element("currentState", |x| {
                        x.int("code", 32).text("name", "shutting-down");
                    });
                });
            },
        )
        .unwrap(),
    );
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <TerminateInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>\
         <instancesSet><item><instanceId>i-1234567890abcdef0</instanceId>\
         <currentState><code>32</code><name>shutting-down</name></currentState>\
         </item></instancesSet></TerminateInstancesResponse>"
    );
}

#[test]
fn scalars_booleans_timestamps_and_absent_values() {
    let xml = utf8(
        ec2_response("X", "r", |x| {
            x.bool("t", true)
                .bool("f", false)
                .int("n", -5)
                .int("big", u64::MAX)
                .timestamp_ms("launchTime", 1_700_000_000_123)
                .opt_text("keyName", None)
                .opt_text("present", Some(""));
        })
        .unwrap(),
    );
    assert!(xml.contains("<t>true</t><f>false</f><n>-5</n><big>18446744073709551615</big>"));
    assert!(xml.contains("<launchTime>2023-11-14T22:13:20.123Z</launchTime>"));
    assert!(!xml.contains("keyName"));
    assert!(xml.contains("<present></present>"));
}

#[test]
fn lists_empty_nested_and_of_text() {
    let xml = utf8(
        ec2_response("X", "r", |x| {
            x.list("groupSet", Vec::<&str>::new(), |_, _| {});
            x.text_list("valueSet", "value", ["a", "b"]);
            x.list("reservationSet", [["i-1", "i-2"]], |x, ids| {
                x.list("instancesSet", ids, |x, id| {
                    x.text("instanceId", id);
                });
            });
        })
        .unwrap(),
    );
    assert!(xml.contains("<groupSet/>"));
    assert!(xml.contains(
        "<valueSet><item><value>a</value></item><item><value>b</value></item></valueSet>"
    ));
    assert!(xml.contains(
        "<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId></item>\
         <item><instanceId>i-2</instanceId></item></instancesSet></item></reservationSet>"
    ));
}

#[test]
fn text_is_escaped_and_round_trips() {
    let hostile = "<tag> & \"quotes\" 'apos' ]]> \r\n\ttab ünï 🙂";
    let xml = utf8(
        ec2_response("X", "r", |x| {
            x.text("value", hostile);
        })
        .unwrap(),
    );
    assert!(!xml.contains("<tag>"));
    assert!(xml.contains("&#13;"));
    assert_eq!(
        texts(&xml).iter().find(|(n, _)| n == "value").unwrap().1,
        hostile
    );
}

#[test]
fn characters_xml_cannot_carry_become_replacement_characters() {
    assert_eq!(
        escape_text("a\u{0}b\u{1b}c\u{fffe}"),
        "a\u{fffd}b\u{fffd}c\u{fffd}"
    );
    let xml = utf8(
        ec2_response("X", "r", |x| {
            x.text("v", "\u{7}bell");
        })
        .unwrap(),
    );
    assert_eq!(
        texts(&xml).iter().find(|(n, _)| n == "v").unwrap().1,
        "\u{fffd}bell"
    );
}

#[test]
fn invalid_element_names_are_errors_not_broken_documents() {
    for name in ["", "1abc", "a b", "a<b", "ns:x", "é"] {
        let result = ec2_response("X", "r", |x| {
            x.text("fine", "1").text(name, "v").text("after", "2");
        });
        assert!(
            matches!(result, Err(ResponseError::InvalidElementName(_))),
            "{name:?}: {result:?}"
        );
    }
    assert!(matches!(
        ec2_response("Bad Action", "r", |_| {}),
        Err(ResponseError::InvalidElementName(_))
    ));
}

#[test]
fn writer_builds_standalone_documents() {
    let mut x = XmlWriter::new();
    x.element("Response", |x| {
        x.text("a", "1");
    });
    assert_eq!(
        utf8(x.finish().unwrap()),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><a>1</a></Response>"
    );
}
