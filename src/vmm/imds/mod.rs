//! The instance metadata service (IMDSv1 + IMDSv2) served on
//! 169.254.169.254:80 from inside the VMM's virtio-net datapath.
