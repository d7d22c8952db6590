//! The daemon's non-EC2 paths: `GET /metrics` (Prometheus text) and
//! `GET /metrics/volumes` (JSON), answered from api/volumes/metrics.rs.
//! With `--credentials` they need a SigV4 signature like the API.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::Shared;
use super::reply::Reply;
use ec2_wire::error::Ec2Error;
use ec2_wire::form;

/// The Prometheus text exposition format of `GET /metrics`.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether `target` is one of the metrics paths (any query).
pub fn is_metrics(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    matches!(path, "/metrics" | "/metrics/volumes")
}

/// `GET /metrics` (Prometheus text) and `GET /metrics/volumes` (JSON),
/// outside the EC2 protocol (api/volumes/metrics.rs); None for any other
/// target.
pub fn reply(shared: &Shared, target: &str, request_id: &str, close: bool) -> Option<Reply> {
    use crate::api::volumes::metrics;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let made = match path {
        "/metrics" => catch_unwind(AssertUnwindSafe(|| metrics::prometheus(&shared.ctx)))
            .map(|r| r.map(|text| (text, PROMETHEUS))),
        "/metrics/volumes" => {
            let wanted: Vec<String> = form::decode_pairs(query.as_bytes())
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k == "VolumeId")
                .map(|(_, v)| v)
                .collect();
            catch_unwind(AssertUnwindSafe(|| metrics::json(&shared.ctx, &wanted)))
                .map(|r| r.map(|text| (text, "application/json")))
        }
        _ => return None,
    };
    let request_id = request_id.to_string();
    Some(match made {
        Ok(Ok((text, content_type))) => Reply {
            status: 200,
            body: text.into_bytes(),
            content_type,
            request_id,
            close,
        },
        Ok(Err(e)) => Reply::error(&e, request_id, close),
        Err(_) => Reply::error(
            &Ec2Error::internal_error("the metrics handler failed"),
            request_id,
            close,
        ),
    })
}
