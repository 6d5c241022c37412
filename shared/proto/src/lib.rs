//! The generated `wxpush.v1` API: messages, server traits and clients.
//!
//! Every service and the `wxpush` CLI depend on this one crate so the wire
//! contract is defined exactly once, in `proto/`.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Package `wxpush.v1`.
pub mod v1 {
    tonic::include_proto!("wxpush.v1");
}

/// Encoded `FileDescriptorSet` of every wxpush proto (with imports), served by
/// gRPC reflection so grpcurl works without local proto files.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wxpush_descriptor.bin"));

pub use prost_types::Timestamp;

/// Converts a wall-clock time to a protobuf timestamp.
pub fn timestamp(t: std::time::SystemTime) -> Timestamp {
    Timestamp::from(t)
}
