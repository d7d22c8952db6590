//! EC2 API errors: a code from EC2's catalogue, a message, an HTTP status,
//! rendered as EC2 renders them:
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>
//! <Message>…</Message></Error></Errors><RequestID>…</RequestID></Response>
//! ```
//!
//! (`RequestID` here, unlike `requestId` in success replies: botocore's
//! EC2 parser expects exactly that.) Deterministic failures are 4xx;
//! only `RequestLimitExceeded` (transient, 503 as on EC2 so that botocore's
//! legacy retry mode backs off on it) and `InternalError` are 5xx.

use thiserror::Error;

use super::ids::ResourceKind;
use super::response::XmlWriter;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{code} ({status}): {message}")]
pub struct Ec2Error {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

/// Ids and names echoed into messages come from the request; keep them
/// short so an error reply stays small.
fn echo(value: &str) -> String {
    const MAX: usize = 256;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let mut cut: String = value.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

fn echo_list(values: &[&str]) -> String {
    echo(&values.join(", "))
}

impl Ec2Error {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Ec2Error {
            code,
            message: message.into(),
            status,
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, 400, message)
    }

    /// The full error document for this error.
    pub fn to_xml(&self, request_id: &str) -> Vec<u8> {
        let mut x = XmlWriter::new();
        x.element("Response", |x| {
            x.element("Errors", |x| {
                x.element("Error", |x| {
                    x.text("Code", self.code).text("Message", &self.message);
                });
            });
            x.text("RequestID", request_id);
        });
        // Every name above is a constant, so writing cannot fail; were it
        // ever to, the client still gets a parseable error.
        x.finish().unwrap_or_else(|_| {
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
              <Code>InternalError</Code><Message>cannot render error</Message>\
              </Error></Errors><RequestID></RequestID></Response>"
                .to_vec()
        })
    }

    // ---- the request itself ----

    pub fn missing_action() -> Self {
        Self::bad_request(
            "MissingAction",
            "The request must contain the parameter Action",
        )
    }

    pub fn invalid_action(action: &str) -> Self {
        Self::bad_request(
            "InvalidAction",
            format!(
                "The action {} is not valid for this web service.",
                echo(action)
            ),
        )
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::bad_request(
            "MissingParameter",
            format!("The request must contain the parameter {}", echo(name)),
        )
    }

    pub fn unknown_parameter(name: &str) -> Self {
        Self::bad_request(
            "UnknownParameter",
            format!("The parameter {} is not recognized", echo(name)),
        )
    }

    pub fn invalid_parameter_value(name: &str, value: &str, reason: &str) -> Self {
        let mut message = format!(
            "Value ({}) for parameter {} is invalid.",
            echo(value),
            echo(name)
        );
        if !reason.is_empty() {
            message.push(' ');
            message.push_str(reason);
        }
        Self::bad_request("InvalidParameterValue", message)
    }

    pub fn invalid_parameter_combination(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidParameterCombination", message)
    }

    /// A parameter that is present but unusable as a whole (a list with a
    /// gap, an index out of range).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidParameter", message)
    }

    /// The body is not a well-formed form (bad `%` escape, not UTF-8,
    /// repeated key). EC2's catalogue gives this code status 404; 400 says
    /// what it is to any HTTP client.
    pub fn malformed_query_string(message: impl Into<String>) -> Self {
        Self::bad_request("MalformedQueryString", message)
    }

    pub fn invalid_query_parameter(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidQueryParameter", message)
    }

    pub fn request_entity_too_large(limit: usize) -> Self {
        Self::new(
            "RequestEntityTooLarge",
            413,
            format!("The request body is larger than {limit} bytes"),
        )
    }

    pub fn invalid_filter(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidFilter", message)
    }

    pub fn invalid_pagination_token(token: &str) -> Self {
        Self::bad_request(
            "InvalidPaginationToken",
            format!("Invalid pagination token: {}", echo(token)),
        )
    }

    pub fn dry_run_operation() -> Self {
        Self::new(
            "DryRunOperation",
            412,
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    pub fn idempotent_parameter_mismatch(client_token: &str) -> Self {
        Self::bad_request(
            "IdempotentParameterMismatch",
            format!(
                "The client token {} was used by a previous request with different arguments",
                echo(client_token)
            ),
        )
    }

    pub fn request_limit_exceeded() -> Self {
        Self::new("RequestLimitExceeded", 503, "Request limit exceeded.")
    }

    pub fn internal_error(message: impl Into<String>) -> Self {
        Self::new("InternalError", 500, message)
    }

    // ---- authentication ----

    pub fn auth_failure(message: impl Into<String>) -> Self {
        Self::new("AuthFailure", 401, message)
    }

    pub fn unknown_access_key() -> Self {
        Self::auth_failure("AWS was not able to validate the provided access credentials")
    }

    pub fn signature_does_not_match() -> Self {
        Self::new(
            "SignatureDoesNotMatch",
            403,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. \
             Consult the service documentation for details.",
        )
    }

    pub fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::bad_request("IncompleteSignature", message)
    }

    pub fn missing_authentication_token() -> Self {
        Self::new(
            "MissingAuthenticationToken",
            403,
            "The request must contain either a valid (registered) AWS access key ID \
             or X.509 certificate.",
        )
    }

    pub fn request_expired(message: impl Into<String>) -> Self {
        Self::bad_request("RequestExpired", message)
    }

    pub fn unauthorized_operation() -> Self {
        Self::new(
            "UnauthorizedOperation",
            403,
            "You are not authorized to perform this operation.",
        )
    }

    // ---- ids and resources ----

    /// `InvalidInstanceID.Malformed` and its siblings for other kinds.
    pub fn malformed_id(kind: ResourceKind, id: &str) -> Self {
        let code = match kind {
            ResourceKind::Instance => "InvalidInstanceID.Malformed",
            ResourceKind::Image => "InvalidAMIID.Malformed",
            ResourceKind::Volume => "InvalidVolumeID.Malformed",
            ResourceKind::Snapshot => "InvalidSnapshotID.Malformed",
            ResourceKind::Reservation => "InvalidReservationID.Malformed",
            ResourceKind::NetworkInterface => "InvalidNetworkInterfaceID.Malformed",
            ResourceKind::KeyPair => "InvalidKeyPair.Malformed",
            ResourceKind::Subnet => "InvalidSubnetID.Malformed",
            ResourceKind::Vpc => "InvalidVpcID.Malformed",
            ResourceKind::SecurityGroup => "InvalidGroupId.Malformed",
        };
        Self::bad_request(
            code,
            format!(
                "Invalid id: \"{}\" (expecting \"{}...\")",
                echo(id),
                kind.prefix()
            ),
        )
    }

    /// `InvalidInstanceID.NotFound` and its siblings, naming every missing
    /// id as EC2 does ("The instance IDs 'i-1, i-2' do not exist").
    pub fn not_found(kind: ResourceKind, ids: &[&str]) -> Self {
        let code = match kind {
            ResourceKind::Instance => "InvalidInstanceID.NotFound",
            ResourceKind::Image => "InvalidAMIID.NotFound",
            ResourceKind::Volume => "InvalidVolume.NotFound",
            ResourceKind::Snapshot => "InvalidSnapshot.NotFound",
            ResourceKind::Reservation => "InvalidReservationID.NotFound",
            ResourceKind::NetworkInterface => "InvalidNetworkInterfaceID.NotFound",
            ResourceKind::KeyPair => "InvalidKeyPair.NotFound",
            ResourceKind::Subnet => "InvalidSubnetID.NotFound",
            ResourceKind::Vpc => "InvalidVpcID.NotFound",
            ResourceKind::SecurityGroup => "InvalidGroup.NotFound",
        };
        let (label, verb) = if ids.len() == 1 {
            ("ID", "does")
        } else {
            ("IDs", "do")
        };
        Self::bad_request(
            code,
            format!(
                "The {} {label} '{}' {verb} not exist",
                kind.noun(),
                echo_list(ids)
            ),
        )
    }

    pub fn instance_not_found(ids: &[&str]) -> Self {
        Self::not_found(ResourceKind::Instance, ids)
    }

    pub fn instance_id_malformed(id: &str) -> Self {
        Self::malformed_id(ResourceKind::Instance, id)
    }

    pub fn ami_not_found(ids: &[&str]) -> Self {
        Self::bad_request(
            "InvalidAMIID.NotFound",
            format!("The image id '[{}]' does not exist", echo_list(ids)),
        )
    }

    pub fn ami_id_malformed(id: &str) -> Self {
        Self::malformed_id(ResourceKind::Image, id)
    }

    pub fn volume_not_found(ids: &[&str]) -> Self {
        Self::not_found(ResourceKind::Volume, ids)
    }

    /// Key pairs are named by the user, so this takes names, not `key-` ids.
    pub fn key_pair_not_found(name: &str) -> Self {
        Self::bad_request(
            "InvalidKeyPair.NotFound",
            format!("The key pair '{}' does not exist", echo(name)),
        )
    }

    pub fn key_pair_duplicate(name: &str) -> Self {
        Self::bad_request(
            "InvalidKeyPair.Duplicate",
            format!("The keypair '{}' already exists.", echo(name)),
        )
    }

    pub fn key_pair_format(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidKeyPair.Format", message)
    }

    pub fn ami_name_duplicate(name: &str) -> Self {
        Self::bad_request(
            "InvalidAMIName.Duplicate",
            format!("AMI name {} is already in use by AMI", echo(name)),
        )
    }

    /// An id of no known kind given where any kind is allowed (CreateTags).
    pub fn invalid_id(id: &str) -> Self {
        Self::bad_request("InvalidID", format!("The ID '{}' is not valid", echo(id)))
    }

    pub fn incorrect_instance_state(id: &str, state: &str, wanted: &str) -> Self {
        Self::bad_request(
            "IncorrectInstanceState",
            format!(
                "The instance '{}' is not in a state from which it can be {wanted} (it is {state}).",
                echo(id)
            ),
        )
    }

    pub fn incorrect_state(message: impl Into<String>) -> Self {
        Self::bad_request("IncorrectState", message)
    }

    pub fn volume_in_use(id: &str) -> Self {
        Self::bad_request(
            "VolumeInUse",
            format!("Volume {} is attached to an instance", echo(id)),
        )
    }

    pub fn invalid_user_data(reason: &str) -> Self {
        Self::bad_request(
            "InvalidUserData.Malformed",
            format!("Invalid BASE64 encoding of user data: {reason}"),
        )
    }

    pub fn tag_limit_exceeded(resource: &str, limit: usize) -> Self {
        Self::bad_request(
            "TagLimitExceeded",
            format!(
                "The resource {} would have more than {limit} tags",
                echo(resource)
            ),
        )
    }

    pub fn insufficient_free_addresses(subnet: &str) -> Self {
        Self::bad_request(
            "InsufficientFreeAddressesInSubnet",
            format!("The subnet {} has no free addresses left", echo(subnet)),
        )
    }

    /// The host has no room for the instances (a server error in EC2:
    /// retrying later may succeed).
    pub fn insufficient_instance_capacity(message: impl Into<String>) -> Self {
        Self::new("InsufficientInstanceCapacity", 500, message)
    }

    /// No room for a volume on the host's disk.
    pub fn insufficient_volume_capacity(message: impl Into<String>) -> Self {
        Self::new("InsufficientVolumeCapacity", 500, message)
    }

    /// No room for anything else the host stores (snapshots, images).
    pub fn insufficient_capacity(message: impl Into<String>) -> Self {
        Self::new("InsufficientCapacity", 500, message)
    }

    pub fn instance_limit_exceeded(limit: usize) -> Self {
        Self::bad_request(
            "InstanceLimitExceeded",
            format!("You have requested more instances than this host allows ({limit})."),
        )
    }

    pub fn unsupported_operation(message: impl Into<String>) -> Self {
        Self::bad_request("UnsupportedOperation", message)
    }
}
