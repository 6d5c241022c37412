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
/// `google.rpc.Status`, as a batch item's error carries it.
pub use tonic_types::pb::Status as RpcStatus;

/// A timestamp from µs since the Unix epoch (floored, also before 1970).
pub fn timestamp_from_micros(us: i64) -> Timestamp {
    Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// Converts a wall-clock time to a protobuf timestamp.
pub fn timestamp(t: std::time::SystemTime) -> Timestamp {
    Timestamp::from(t)
}

impl v1::SendAsyncRequest {
    /// The message it queues (the one type every send path uses) and when
    /// to send it.
    pub fn into_parts(self) -> (v1::SendRequest, Option<Timestamp>) {
        let v1::SendAsyncRequest {
            app_id,
            template_key,
            openid,
            variables,
            url,
            miniprogram,
            page,
            idempotency_key,
            send_at,
        } = self;
        let message = v1::SendRequest {
            app_id,
            template_key,
            openid,
            variables,
            url,
            miniprogram,
            page,
            idempotency_key,
        };
        (message, send_at)
    }
}

/// The same message, queued instead of sent now (no `send_at`).
impl From<v1::SendRequest> for v1::SendAsyncRequest {
    fn from(m: v1::SendRequest) -> Self {
        Self {
            app_id: m.app_id,
            template_key: m.template_key,
            openid: m.openid,
            variables: m.variables,
            url: m.url,
            miniprogram: m.miniprogram,
            page: m.page,
            idempotency_key: m.idempotency_key,
            send_at: None,
        }
    }
}
