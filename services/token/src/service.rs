//! The `wxpush.v1.TokenService` gRPC API over [`TokenCache`].

use crate::cache::{TokenCache, TokenStatusView};
use crate::clock::to_system_time;
use crate::config::AppKindConfig;
use crate::error::TokenError;
use crate::store::StoredToken;
use tonic::{Request, Response, Status};
use wxpush_auth::Operation;
use wxpush_proto::timestamp;
use wxpush_proto::v1::token_service_server::{TokenService, TokenServiceServer};
use wxpush_proto::v1::*;
use wxpush_server::caller::Caller;
use wxpush_server::paging;

/// Apps per `ListApps` page when the caller names no size.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The gRPC handlers; cheap to clone.
#[derive(Clone)]
pub struct TokenGrpc {
    cache: TokenCache,
}

impl TokenGrpc {
    pub fn new(cache: TokenCache) -> Self {
        Self { cache }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> TokenServiceServer<Self> {
        TokenServiceServer::new(self)
    }
}

fn token_response(t: StoredToken) -> GetAccessTokenResponse {
    GetAccessTokenResponse {
        expires_at: Some(timestamp(to_system_time(t.expires_at_ms))),
        access_token: t.access_token,
    }
}

fn status_message(v: TokenStatusView) -> TokenStatus {
    TokenStatus {
        app_id: v.app_id,
        kind: match v.kind {
            AppKindConfig::OfficialAccount => AppKind::OfficialAccount,
            AppKindConfig::MiniProgram => AppKind::MiniProgram,
        } as i32,
        has_token: v
            .expires_at
            .is_some_and(|t| t > std::time::SystemTime::now()),
        expires_at: v.expires_at.map(timestamp),
        last_refresh_at: v.last_refresh_at.map(timestamp),
        refreshes_today: v.refreshes_today,
        last_error: v.last_error,
        token_mode: v.token_mode.as_str().to_string(),
    }
}

#[tonic::async_trait]
impl TokenService for TokenGrpc {
    async fn get_access_token(
        &self,
        request: Request<GetAccessTokenRequest>,
    ) -> Result<Response<GetAccessTokenResponse>, Status> {
        let app_id = request.into_inner().app_id;
        Caller::current().check(Operation::Token, &app_id, None)?;
        let t = self.cache.get(&app_id).await?;
        Ok(Response::new(token_response(t)))
    }

    async fn invalidate_access_token(
        &self,
        request: Request<InvalidateAccessTokenRequest>,
    ) -> Result<Response<InvalidateAccessTokenResponse>, Status> {
        let req = request.into_inner();
        Caller::current().check(Operation::Token, &req.app_id, None)?;
        let t = self.cache.invalidate(&req.app_id, &req.bad_token).await?;
        let GetAccessTokenResponse {
            access_token,
            expires_at,
        } = token_response(t);
        Ok(Response::new(InvalidateAccessTokenResponse {
            access_token,
            expires_at,
        }))
    }

    async fn get_token_status(
        &self,
        request: Request<GetTokenStatusRequest>,
    ) -> Result<Response<GetTokenStatusResponse>, Status> {
        let v = self.cache.status(&request.into_inner().app_id).await?;
        Ok(Response::new(GetTokenStatusResponse {
            status: Some(status_message(v)),
        }))
    }

    async fn list_apps(
        &self,
        request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let req = request.into_inner();
        let size = paging::page_size(req.page_size, DEFAULT_PAGE_SIZE);
        let mut ids = self.cache.app_ids();
        ids.sort();
        let (ids, next_page_token) = paging::page(ids, |id| id.as_str(), size, &req.page_token)
            .map_err(|v| TokenError::InvalidArgument(vec![v]))?;
        let mut apps = Vec::with_capacity(ids.len());
        for id in ids {
            apps.push(status_message(self.cache.status(&id).await?));
        }
        Ok(Response::new(ListAppsResponse {
            apps,
            next_page_token,
        }))
    }
}
