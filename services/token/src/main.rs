//! `wxpush-token`: the token service as its own process.

/// Owns every app's WeChat access_token.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-token", "WXPUSH_TOKEN", wxpush_token::build).await
}
