//! `wxpush-logquery`: the log query service as its own process.

/// Indexes delivery events and answers queries about them.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    wxpush_server::process::main("wxpush-logquery", "WXPUSH_LOGQUERY", wxpush_logquery::build).await
}
