//! The process-wide tracing subscriber: human-readable lines, or JSON lines
//! when `WXPUSH_LOG_FORMAT=json` (for log shippers); level from `RUST_LOG`
//! (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once; a second call is a no-op (tests).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("WXPUSH_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .fmt_fields(wxpush_telemetry::text_fields())
            .try_init()
    };
}
