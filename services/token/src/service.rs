//! The `wxpush.v1.TokenService` gRPC API over [`TokenCache`].

use crate::cache::{TokenCache, TokenStatusView};
use crate::clock::to_system_time;
use crate::config::AppKindConfig;
use crate::store::StoredToken;
use tonic::{Request, Response, Status};
use wxpush_proto::timestamp;
use wxpush_proto::v1::token_service_server::{TokenService, TokenServiceServer};
use wxpush_proto::v1::*;

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
        let t = self.cache.get(&request.into_inner().app_id).await?;
        Ok(Response::new(token_response(t)))
    }

    async fn invalidate_access_token(
        &self,
        request: Request<InvalidateAccessTokenRequest>,
    ) -> Result<Response<GetAccessTokenResponse>, Status> {
        let req = request.into_inner();
        let t = self.cache.invalidate(&req.app_id, &req.bad_token).await?;
        Ok(Response::new(token_response(t)))
    }

    async fn get_token_status(
        &self,
        request: Request<GetTokenStatusRequest>,
    ) -> Result<Response<TokenStatus>, Status> {
        let v = self.cache.status(&request.into_inner().app_id).await?;
        Ok(Response::new(status_message(v)))
    }

    async fn list_apps(
        &self,
        _request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let mut apps = Vec::new();
        for id in self.cache.app_ids() {
            apps.push(status_message(self.cache.status(&id).await?));
        }
        Ok(Response::new(ListAppsResponse { apps }))
    }
}
