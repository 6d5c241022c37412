//! The `wxpush.v1.LogQueryService` gRPC API over a [`LogStore`], each
//! answer as its caller may see it ([`crate::access`]). Errors become
//! `Status` in one place: `From<LogQueryError> for Status`.

use crate::access::{Masker, View};
use crate::error::LogQueryError;
use crate::filter::{Query, check_filter, check_query, matches, micros};
use crate::stats::{StatsCounter, StatsQuery, check_stats};
use crate::store::{LogStore, Page};
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
    masks: Masker,
}

impl LogQueryGrpc {
    /// Handlers over `store`; `tail` is the one ingestion publishes to.
    /// Content is masked with a random key ([`Self::masked_with`]).
    pub fn new(store: Arc<dyn LogStore>, tail: Tail) -> Self {
        Self {
            store,
            tail,
            masks: Masker::random(),
        }
    }

    /// Masks content with `masks` (a configured key: every replica alike).
    pub fn masked_with(mut self, masks: Masker) -> Self {
        self.masks = masks;
        self
    }

    /// A page of the records `view` may see: one query, or one per app it
    /// may see, merged in the store's order (newest first).
    async fn page(&self, view: &View, query: Query) -> Result<Page, LogQueryError> {
        let filters = view.narrow(&query.filter)?;
        let mut records = Vec::new();
        let mut more = false;
        let single = filters.len() == 1;
        for filter in filters {
            let page = self
                .store
                .query(&Query {
                    filter,
                    ..query.clone()
                })
                .await?;
            if single {
                return Ok(page);
            }
            more |= !page.next_page_token.is_empty();
            records.extend(page.records);
        }
        records.sort_by(|a, b| {
            (micros(b.accepted_at.as_ref()), &b.message_id)
                .cmp(&(micros(a.accepted_at.as_ref()), &a.message_id))
        });
        more |= records.len() > query.page_size;
        records.truncate(query.page_size);
        Ok(Page::new(records, more))
    }

    /// Counts over the records `view` may see (per app, summed).
    async fn stats(
        &self,
        view: &View,
        query: StatsQuery,
    ) -> Result<Vec<StatsSeries>, LogQueryError> {
        let filters = view.narrow(&query.filter)?;
        if filters.len() == 1 {
            let filter = filters.into_iter().next().expect("one filter");
            return Ok(self.store.stats(&StatsQuery { filter, ..query }).await?);
        }
        let mut counter = StatsCounter::default();
        for filter in filters {
            let series = self
                .store
                .stats(&StatsQuery {
                    filter,
                    ..query.clone()
                })
                .await?;
            for s in series {
                for p in s.points {
                    counter.add(s.group.clone(), micros(p.bucket_start.as_ref()), p.count);
                }
            }
        }
        Ok(counter.into_series())
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
        // Another app's message is as unknown as a missing one.
        let view = View::current();
        let record = match self.store.get(&id).await? {
            Some(r) if view.sees(&r) => view.show(r, &self.masks),
            _ => return Err(LogQueryError::NotFound(id)),
        };
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
        let view = View::current();
        let page = self.page(&view, query).await?;
        Ok(Response::new(QueryLogsResponse {
            records: page
                .records
                .into_iter()
                .map(|r| view.show(r, &self.masks))
                .collect(),
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
        let series = self.stats(&View::current(), query).await?;
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
        let view = View::current();
        // A filter naming another app is refused here as in QueryLogs.
        view.narrow(&filter)?;
        let (sees, masks) = (view.clone(), self.masks.clone());
        let records = self
            .tail
            .stream(move |r| matches(&filter, r) && sees.sees(r))
            .ok_or(LogQueryError::TooManyTails(crate::tail::MAX_STREAMS))?;
        Ok(Response::new(Box::pin(records.map(move |mut event| {
            if let Some(tail_logs_response::Event::Record(r)) = event.event.take() {
                event.event = Some(tail_logs_response::Event::Record(view.show(r, &masks)));
            }
            Ok(event)
        }))))
    }
}
