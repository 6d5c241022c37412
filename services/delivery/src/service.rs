//! The `wxpush.v1.DeliveryService` gRPC API over [`Pipeline`].

use crate::error::DeliveryError;
use crate::pipeline::Pipeline;
use tonic::{Request, Response, Status};
use wxpush_proto::v1::delivery_service_server::{DeliveryService, DeliveryServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::trace_context::TraceContext;

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct DeliveryGrpc {
    pipeline: Pipeline,
}

impl DeliveryGrpc {
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> DeliveryServiceServer<Self> {
        DeliveryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl DeliveryService for DeliveryGrpc {
    async fn send(
        &self,
        request: Request<SendRequest>,
    ) -> Result<Response<DeliveryResult>, Status> {
        let trace = TraceContext::from_metadata_or_new(request.metadata());
        let result = self.pipeline.send(request.into_inner(), trace).await?;
        Ok(Response::new(result))
    }

    async fn send_async(
        &self,
        _request: Request<SendRequest>,
    ) -> Result<Response<SendAsyncResponse>, Status> {
        Err(DeliveryError::Unimplemented("SendAsync (the durable queue)").into())
    }

    async fn send_batch(
        &self,
        _request: Request<SendBatchRequest>,
    ) -> Result<Response<SendBatchResponse>, Status> {
        Err(DeliveryError::Unimplemented("SendBatch (the durable queue)").into())
    }

    async fn get_message(
        &self,
        _request: Request<GetMessageRequest>,
    ) -> Result<Response<DeliveryResult>, Status> {
        Err(DeliveryError::Unimplemented("GetMessage (use LogQueryService.QueryLogs)").into())
    }

    async fn list_dead_letters(
        &self,
        _request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        Err(DeliveryError::Unimplemented("ListDeadLetters").into())
    }

    async fn replay_dead_letters(
        &self,
        _request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        Err(DeliveryError::Unimplemented("ReplayDeadLetters").into())
    }

    async fn get_breaker_state(
        &self,
        _request: Request<GetBreakerStateRequest>,
    ) -> Result<Response<GetBreakerStateResponse>, Status> {
        Err(DeliveryError::Unimplemented("GetBreakerState (the circuit breaker)").into())
    }
}
