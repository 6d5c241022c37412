//! The `wxpush.v1.DeliveryService` gRPC API over [`Intake`].

use crate::breaker::State;
use crate::error::DeliveryError;
use crate::intake::Intake;
use tonic::{Request, Response, Status};
use wxpush_proto::timestamp;
use wxpush_proto::v1::delivery_service_server::{DeliveryService, DeliveryServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::deadline::grpc_timeout;
use wxpush_server::status::{max_chars, require};
use wxpush_server::trace_context::TraceContext;

/// Longest app id or openid `GetConsent` takes (WeChat's are under 64).
const MAX_ID_CHARS: usize = 128;

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct DeliveryGrpc {
    intake: Intake,
}

impl DeliveryGrpc {
    pub fn new(intake: Intake) -> Self {
        Self { intake }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> DeliveryServiceServer<Self> {
        DeliveryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl DeliveryService for DeliveryGrpc {
    async fn send(&self, request: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        let trace = TraceContext::from_metadata_or_new(request.metadata());
        let timeout = grpc_timeout(request.metadata());
        let result = self
            .intake
            .send(request.into_inner(), trace, timeout)
            .await?;
        Ok(Response::new(SendResponse {
            result: Some(result),
        }))
    }

    async fn send_async(
        &self,
        request: Request<SendAsyncRequest>,
    ) -> Result<Response<SendAsyncResponse>, Status> {
        let trace = TraceContext::from_metadata_or_new(request.metadata());
        let timeout = grpc_timeout(request.metadata());
        Ok(Response::new(
            self.intake
                .send_async(request.into_inner(), trace, timeout)
                .await?,
        ))
    }

    async fn send_batch(
        &self,
        request: Request<SendBatchRequest>,
    ) -> Result<Response<SendBatchResponse>, Status> {
        let trace = TraceContext::from_metadata_or_new(request.metadata());
        let timeout = grpc_timeout(request.metadata());
        Ok(Response::new(
            self.intake
                .send_batch(request.into_inner(), trace, timeout)
                .await?,
        ))
    }

    async fn get_message(
        &self,
        request: Request<GetMessageRequest>,
    ) -> Result<Response<GetMessageResponse>, Status> {
        let id = request.into_inner().message_id;
        match self.intake.get_message(&id).await? {
            Some(r) => Ok(Response::new(GetMessageResponse { result: Some(r) })),
            None => Err(DeliveryError::NotFound(id).into()),
        }
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        Ok(Response::new(
            self.intake.list_dead_letters(request.into_inner()).await?,
        ))
    }

    async fn replay_dead_letters(
        &self,
        request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<ReplayDeadLettersResponse>, Status> {
        Ok(Response::new(
            self.intake
                .replay_dead_letters(request.into_inner())
                .await?,
        ))
    }

    async fn get_breaker_state(
        &self,
        request: Request<GetBreakerStateRequest>,
    ) -> Result<Response<GetBreakerStateResponse>, Status> {
        let app_id = request.into_inner().app_id;
        let filter = (!app_id.is_empty()).then_some(app_id.as_str());
        let apps = self
            .intake
            .sender()
            .breakers()
            .views(filter)
            .into_iter()
            .map(|v| AppBreaker {
                app_id: v.app_id,
                state: match v.state {
                    State::Closed => BreakerState::Closed,
                    State::Open => BreakerState::Open,
                    State::HalfOpen => BreakerState::HalfOpen,
                }
                .into(),
                recent_failures: v.consecutive_failures,
                recent_successes: 0,
                next_probe_at: v.next_probe_at.map(timestamp),
            })
            .collect();
        Ok(Response::new(GetBreakerStateResponse { apps }))
    }

    async fn get_consent(
        &self,
        request: Request<GetConsentRequest>,
    ) -> Result<Response<GetConsentResponse>, Status> {
        let r = request.into_inner();
        let mut v = Vec::new();
        require(&mut v, "app_id", &r.app_id);
        require(&mut v, "openid", &r.openid);
        max_chars(&mut v, "app_id", &r.app_id, MAX_ID_CHARS);
        max_chars(&mut v, "openid", &r.openid, MAX_ID_CHARS);
        if !v.is_empty() {
            return Err(DeliveryError::InvalidArgument(v).into());
        }
        wxpush_server::caller::Caller::current()
            .check(wxpush_auth::Operation::Send, &r.app_id, None)
            .map_err(DeliveryError::Denied)?;
        let consents = self
            .intake
            .sender()
            .consent()
            .read(&r.app_id, &r.openid)
            .await
            .map_err(DeliveryError::from)?;
        Ok(Response::new(GetConsentResponse { consents }))
    }
}
