//! A reply of the daemon's HTTP server (the EC2 API and the metrics paths
//! alike): status, body, content type, request id.

use ec2_wire::error::Ec2Error;

/// A reply: status, body, whether to close after it.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub request_id: String,
    pub close: bool,
}

impl Reply {
    pub fn error(e: &Ec2Error, request_id: String, close: bool) -> Reply {
        Reply {
            status: e.status,
            body: e.to_xml(&request_id),
            content_type: XML,
            request_id,
            close,
        }
    }
}

pub const XML: &str = "text/xml;charset=UTF-8";
