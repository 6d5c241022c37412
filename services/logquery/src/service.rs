//! The `wxpush.v1.LogQueryService` gRPC API over a [`LogStore`]. Errors
//! become `Status` in one place: `From<LogQueryError> for Status`.

use crate::error::LogQueryError;
use crate::filter::{check_filter, check_query, matches};
use crate::stats::check_stats;
use crate::store::LogStore;
use crate::tail::Tail;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use wxpush_proto::v1::log_query_service_server::{LogQueryService, LogQueryServiceServer};
use wxpush_proto::v1::*;

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct LogQueryGrpc {
    store: Arc<dyn LogStore>,
    tail: Tail,
}

impl LogQueryGrpc {
    /// Handlers over `store`; `tail` is the one ingestion publishes to.
    pub fn new(store: Arc<dyn LogStore>, tail: Tail) -> Self {
        Self { store, tail }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> LogQueryServiceServer<Self> {
        LogQueryServiceServer::new(self)
    }

    async fn history(
        &self,
        req: GetMessageHistoryRequest,
    ) -> Result<GetMessageHistoryResponse, LogQueryError> {
        let id = req.message_id;
        let mut v = Vec::new();
        wxpush_server::status::require(&mut v, "message_id", &id);
        wxpush_server::status::no_control(&mut v, "message_id", &id);
        if !v.is_empty() {
            return Err(v.into());
        }
        let record = self
            .store
            .get(&id)
            .await?
            .ok_or(LogQueryError::NotFound(id))?;
        Ok(GetMessageHistoryResponse {
            attempts: record.history.clone(),
            record: Some(record),
        })
    }
}

#[tonic::async_trait]
impl LogQueryService for LogQueryGrpc {
    async fn query_logs(
        &self,
        request: Request<QueryLogsRequest>,
    ) -> Result<Response<QueryLogsResponse>, Status> {
        let query = check_query(request.into_inner()).map_err(LogQueryError::from)?;
        let page = self
            .store
            .query(&query)
            .await
            .map_err(LogQueryError::from)?;
        Ok(Response::new(QueryLogsResponse {
            records: page.records,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_message_history(
        &self,
        request: Request<GetMessageHistoryRequest>,
    ) -> Result<Response<GetMessageHistoryResponse>, Status> {
        Ok(Response::new(self.history(request.into_inner()).await?))
    }

    async fn get_stats(
        &self,
        request: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        let query = check_stats(request.into_inner()).map_err(LogQueryError::from)?;
        let series = self
            .store
            .stats(&query)
            .await
            .map_err(LogQueryError::from)?;
        Ok(Response::new(GetStatsResponse { series }))
    }

    type TailLogsStream = tonic::codegen::BoxStream<TailLogsResponse>;

    async fn tail_logs(
        &self,
        request: Request<TailLogsRequest>,
    ) -> Result<Response<Self::TailLogsStream>, Status> {
        let filter = request.into_inner().filter.unwrap_or_default();
        let mut v = Vec::new();
        check_filter(&filter, "filter.", &mut v);
        if !v.is_empty() {
            return Err(LogQueryError::from(v).into());
        }
        let records = self
            .tail
            .stream(move |r| matches(&filter, r))
            .ok_or(LogQueryError::TooManyTails(crate::tail::MAX_STREAMS))?;
        Ok(Response::new(Box::pin(records.map(Ok))))
    }
}
