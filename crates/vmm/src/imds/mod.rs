//! The instance metadata service (IMDSv1 + IMDSv2) served on
//! 169.254.169.254:80 from inside the VMM's virtio-net datapath.
//!
//! This module is the pure logic: bytes of one TCP connection go into an
//! [`HttpConnection`], the [`Request`]s it yields go to [`Imds::handle`], and
//! the [`Response`]s come back as bytes. The datapath (smoltcp) owns sockets
//! and must:
//! - write `response.to_bytes()` to the connection, sending those bytes with
//!   IP TTL `response.ip_ttl` when it is `Some` (token PUT answers carry the
//!   instance's HttpPutResponseHopLimit, default 1, so that a token cannot be
//!   fetched from beyond the instance, e.g. from a container behind a NAT);
//! - close the connection after a response with `close` set, and after
//!   answering a parse error with `http::error_response(&err)`.

pub mod http;
pub mod tokens;
pub mod tree;

#[cfg(test)]
mod tests;

use std::time::Instant;

use thiserror::Error;

// What it serves is the contract's: the metadata document of the VM
// config and the updates of the per-VM socket.
use flint_contract::metadata::{HttpTokens, MetadataConfig, MetadataError, MetadataUpdate, Toggle};

// The datapath and the control socket are wired to these names; until they
// land, nothing in the crate imports them.
pub use http::{HttpConnection, HttpError, Request, Response};

use http::TEXT_PLAIN;
use tokens::TokenStore;
use tree::{Lookup, Node, PathError};

pub const TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
pub const TOKEN_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// How EC2 spells the TTL header in its answer to a token PUT.
const TOKEN_TTL_RESPONSE_HEADER: &str = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds";
const TOKEN_PATH: [&str; 3] = ["latest", "api", "token"];

#[derive(Debug, Error)]
pub enum ImdsError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Tokens(#[from] tokens::TokenError),
}

pub struct Imds {
    config: MetadataConfig,
    /// The tree under each version root, rebuilt when the config changes.
    tree: Node,
    tokens: TokenStore,
}

impl Imds {
    /// Validates `config` and opens the token randomness source.
    pub fn new(config: MetadataConfig) -> Result<Self, ImdsError> {
        config.validate()?;
        Ok(Imds {
            tree: tree::build_version_tree(&config),
            config,
            tokens: TokenStore::new()?,
        })
    }

    pub fn config(&self) -> &MetadataConfig {
        &self.config
    }

    /// Applies a runtime update from the control socket. All or nothing:
    /// an invalid update leaves the service as it was. Issued tokens stay
    /// valid across updates, as EC2's do across ModifyInstanceMetadataOptions.
    pub fn apply(&mut self, update: &MetadataUpdate) -> Result<(), MetadataError> {
        let next = self.config.updated(update)?;
        self.tree = tree::build_version_tree(&next);
        self.config = next;
        Ok(())
    }

    /// Answers one request. `now` drives token expiry.
    pub fn handle(&mut self, request: &Request, now: Instant) -> Response {
        let mut response = self.route(request, now);
        response.head_only = request.method == "HEAD";
        response.close |= !request.keep_alive;
        response
    }

    fn route(&mut self, request: &Request, now: Instant) -> Response {
        let options = self.config.metadata_options;
        // HttpEndpoint=disabled: EC2 documents 403 ("the request is not
        // allowed or the IMDS is turned off") and cloud-init reads a 403 to
        // the token PUT as "IMDS disabled", so every request gets 403,
        // whatever its method or path, before anything else is looked at.
        if options.http_endpoint == Toggle::Disabled {
            return Response::error(403);
        }
        let segments = tree::split_path(&request.target);
        if segments
            .as_ref()
            .is_ok_and(|s| s.iter().eq(TOKEN_PATH.iter()))
        {
            return if request.method == "PUT" {
                let mut response = self.issue_token(request, now);
                response.ip_ttl = Some(options.http_put_response_hop_limit);
                response
            } else {
                Response::error(405).with_header("Allow", "PUT")
            };
        }
        if request.method != "GET" && request.method != "HEAD" {
            return Response::error(405).with_header("Allow", "GET, HEAD");
        }
        // A token, once sent, must be valid even where IMDSv1 would do:
        // EC2 answers 401 to an expired token, and clients (cloud-init,
        // botocore) rely on that 401 to fetch a fresh one.
        let mut tokens = request.header_values(TOKEN_HEADER);
        match (tokens.next(), tokens.next()) {
            (Some(token), None) if self.tokens.is_valid(token, now) => {}
            (None, _) if options.http_tokens == HttpTokens::Optional => {}
            _ => return Response::error(401),
        }
        let segments = match segments {
            Ok(segments) => segments,
            Err(PathError::NotAbsolute | PathError::BadEncoding) => return Response::error(400),
            Err(PathError::DotSegment) => return Response::error(404),
        };
        match tree::lookup(&self.tree, &segments) {
            Lookup::Listing(body) => Response::new(200, TEXT_PLAIN, body),
            Lookup::Leaf(leaf) => Response::new(200, leaf.content_type, leaf.body.clone()),
            Lookup::NotFound => Response::error(404),
        }
    }

    fn issue_token(&mut self, request: &Request, now: Instant) -> Response {
        // A PUT relayed by a proxy (which adds X-Forwarded-For) is refused:
        // this is what keeps an SSRF through a reverse proxy from minting
        // tokens.
        if request.has_header("X-Forwarded-For") {
            return Response::error(403);
        }
        let Some(ttl) = request
            .header(TOKEN_TTL_HEADER)
            .and_then(|v| tokens::parse_ttl(v).ok())
        else {
            return Response::error(400);
        };
        match self.tokens.issue(ttl, now) {
            Ok(token) => Response::new(200, TEXT_PLAIN, token)
                .with_header(TOKEN_TTL_RESPONSE_HEADER, ttl.to_string()),
            Err(_) => Response::error(500),
        }
    }
}
