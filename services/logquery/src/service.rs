//! The `wxpush.v1.LogQueryService` gRPC API over [`MemoryLogStore`].

use crate::filter::check_query;
use crate::store::MemoryLogStore;
use tonic::{Request, Response, Status};
use wxpush_proto::v1::log_query_service_server::{LogQueryService, LogQueryServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::status::{Violation, invalid_argument};

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct LogQueryGrpc {
    store: MemoryLogStore,
}

impl LogQueryGrpc {
    pub fn new(store: MemoryLogStore) -> Self {
        Self { store }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> LogQueryServiceServer<Self> {
        LogQueryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl LogQueryService for LogQueryGrpc {
    async fn query_logs(
        &self,
        request: Request<QueryLogsRequest>,
    ) -> Result<Response<QueryLogsResponse>, Status> {
        let query = check_query(request.into_inner()).map_err(|v| invalid_argument(&v))?;
        let page = self.store.query(&query).await;
        Ok(Response::new(QueryLogsResponse {
            records: page.records,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_message_history(
        &self,
        request: Request<GetMessageHistoryRequest>,
    ) -> Result<Response<GetMessageHistoryResponse>, Status> {
        let id = request.into_inner().message_id;
        if id.trim().is_empty() {
            return Err(invalid_argument(&[Violation::new(
                "message_id",
                "is required",
            )]));
        }
        let record = self
            .store
            .get(&id)
            .await
            .ok_or_else(|| Status::not_found(format!("message {id:?} not found")))?;
        Ok(Response::new(GetMessageHistoryResponse {
            attempts: record.history.clone(),
            record: Some(record),
        }))
    }

    async fn get_stats(
        &self,
        _request: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        Err(Status::unimplemented("GetStats is not implemented yet"))
    }

    type TailLogsStream = tonic::codegen::BoxStream<LogRecord>;

    async fn tail_logs(
        &self,
        _request: Request<TailLogsRequest>,
    ) -> Result<Response<Self::TailLogsStream>, Status> {
        Err(Status::unimplemented("TailLogs is not implemented yet"))
    }
}
