//! The RPC-layer ceiling for `GetAccessToken`: a bare tonic server (no
//! wxpush layers, no cache) answering every call with a fixed token of the
//! same size as WeChat's. `bench/bench.py token` runs it beside the real
//! token service. Usage: `token_echo 127.0.0.1:PORT`.

use tonic::{Request, Response, Status};
use wxpush_proto::v1::token_service_server::{TokenService, TokenServiceServer};
use wxpush_proto::v1::*;

struct Echo(GetAccessTokenResponse);

#[tonic::async_trait]
impl TokenService for Echo {
    async fn get_access_token(
        &self,
        _: Request<GetAccessTokenRequest>,
    ) -> Result<Response<GetAccessTokenResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }

    async fn invalidate_access_token(
        &self,
        _: Request<InvalidateAccessTokenRequest>,
    ) -> Result<Response<InvalidateAccessTokenResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }

    async fn get_token_status(
        &self,
        _: Request<GetTokenStatusRequest>,
    ) -> Result<Response<GetTokenStatusResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }

    async fn list_apps(
        &self,
        _: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        Err(Status::unimplemented("echo"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50099".into())
        .parse()?;
    let answer = GetAccessTokenResponse {
        // WeChat's tokens are 136-157 characters.
        access_token: "T".repeat(150),
        expires_at: Some(wxpush_proto::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        }),
    };
    tonic::transport::Server::builder()
        .add_service(TokenServiceServer::new(Echo(answer)))
        .serve(addr)
        .await?;
    Ok(())
}
