//! Telemetry for every wxpush process, set up in one call at start-up and
//! flushed at shutdown, so no binary wires tracing by hand.
//!
//! - Logs: `tracing` lines on stderr, human-readable or JSON
//!   (`WXPUSH_LOG_FORMAT=json`), level from `RUST_LOG` (default `info`).
//! - Traces: an OpenTelemetry tracer provider behind `tracing`
//!   (`tracing-opentelemetry`), so every `tracing` span at INFO or above is an
//!   OpenTelemetry span. The provider is installed even when nothing is
//!   exported: trace and span ids are then still OpenTelemetry's, which is
//!   what the delivery log records as `trace_id` and what `traceparent`
//!   carries to the next hop.
//! - Export: OTLP over gRPC when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and `OTEL_TRACES_EXPORTER` is not
//!   `none`); the standard `OTEL_EXPORTER_OTLP_*` variables (headers, timeout)
//!   and `OTEL_TRACES_SAMPLER` apply. Off when unset.
//! - Resource: `service.name`, `service.version`, `deployment.environment`
//!   (`WXPUSH_ENVIRONMENT`, default `dev`); `OTEL_SERVICE_NAME` and
//!   `OTEL_RESOURCE_ATTRIBUTES` win over both.
//! - Propagation: the W3C TraceContext propagator (`traceparent`,
//!   `tracestate`) is the process-wide one the gRPC layers in
//!   `wxpush-server` use.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What a process tells about itself, and where spans go.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` (unless `OTEL_SERVICE_NAME` is set).
    pub service_name: String,
    /// `service.version`.
    pub service_version: String,
    /// `deployment.environment` (unless `OTEL_RESOURCE_ATTRIBUTES` has it).
    pub environment: String,
    /// The OTLP/gRPC endpoint; `None` means no export.
    pub otlp_endpoint: Option<String>,
    /// JSON log lines instead of human-readable ones.
    pub json_logs: bool,
}

impl TelemetryConfig {
    /// The configuration the environment asks for (see the crate docs).
    pub fn from_env(service_name: &str, service_version: &str) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let exporter_off = var("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none");
        let otlp_endpoint = if exporter_off {
            None
        } else {
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        };
        Self {
            service_name: service_name.to_string(),
            service_version: service_version.to_string(),
            environment: var("WXPUSH_ENVIRONMENT").unwrap_or_else(|| "dev".into()),
            otlp_endpoint,
            json_logs: var("WXPUSH_LOG_FORMAT").is_some_and(|v| v == "json"),
        }
    }
}

/// The installed telemetry; call [`Telemetry::shutdown`] before exit so the
/// last spans are sent.
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

/// Installs logs and traces for this process from the environment. Must run
/// inside a Tokio runtime (the OTLP exporter's channel needs one).
pub fn init(service_name: &str, service_version: &str) -> Telemetry {
    init_with(TelemetryConfig::from_env(service_name, service_version))
}

/// Installs logs and traces with an explicit configuration (tests point
/// `otlp_endpoint` at their own collector). The global subscriber can only be
/// set once per process: a second call keeps the first subscriber.
pub fn init_with(config: TelemetryConfig) -> Telemetry {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(&config));
    let mut exporting = false;
    if let Some(endpoint) = &config.otlp_endpoint {
        // The protocol is set explicitly: the transport is always gRPC here,
        // whatever other OTLP features a build happens to turn on.
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_protocol(opentelemetry_otlp::Protocol::Grpc)
            .with_endpoint(endpoint.clone())
            .build()
        {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => eprintln!("OTLP trace export disabled: {e}"),
        }
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());

    let tracer = provider.tracer("wxpush");
    // Spans for OpenTelemetry are filtered on their own (INFO and above, or
    // `WXPUSH_TRACE_FILTER`): a quiet `RUST_LOG` must not break the trace.
    let trace_filter =
        EnvFilter::try_from_env("WXPUSH_TRACE_FILTER").unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(trace_filter);
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if config.json_logs {
        fmt.json().with_filter(log_filter).boxed()
    } else {
        fmt.fmt_fields(text_fields())
            .with_filter(log_filter)
            .boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(otel)
        .with(fmt)
        .try_init();
    if exporting {
        tracing::info!(endpoint = config.otlp_endpoint.as_deref().unwrap_or(""), service = %config.service_name, "exporting traces over OTLP/gRPC");
    }
    Telemetry {
        provider,
        exporting,
    }
}

fn resource(config: &TelemetryConfig) -> Resource {
    let env_attrs = std::env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let mut builder = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        builder = builder.with_service_name(config.service_name.clone());
    }
    // What OTEL_RESOURCE_ATTRIBUTES sets wins (the Helm chart sets
    // service.version to the image tag).
    let mut attrs = Vec::new();
    if !env_attrs.contains("service.version") {
        attrs.push(KeyValue::new(
            "service.version",
            config.service_version.clone(),
        ));
    }
    if !env_attrs.contains("deployment.environment") {
        attrs.push(KeyValue::new(
            "deployment.environment",
            config.environment.clone(),
        ));
    }
    builder.with_attributes(attrs).build()
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Sends every finished span now. Blocks: call from a multi-threaded
    /// runtime (the exporter needs the runtime's other threads).
    pub fn force_flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            eprintln!("flushing spans failed: {e}");
        }
    }

    /// Flushes and stops the exporter (on SIGTERM, before exit).
    pub async fn shutdown(self) {
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            eprintln!("stopping the span exporter failed: {e}");
        }
    }
}

/// How text log lines write their fields: as tracing-subscriber's default
/// does, except that control characters (CR, LF, ESC...) in any value are
/// escaped (`\n`, `\u{1b}`). A caller-supplied string (an app id, an
/// openid, an errmsg) can then neither forge log lines nor drive a terminal.
/// JSON lines escape them already.
pub fn text_fields()
-> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", Escaped(&text))
        } else {
            write!(w, "{field}={}", Escaped(&text))
        }
    })
    .delimited(" ")
}

/// Writes a string with its control characters escaped.
pub struct Escaped<'a>(pub &'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Issue 19, item 4: `\n` in an app id forged a second line in the text
    /// log, and ESC sequences reached whoever tails it.
    #[test]
    fn a_value_cannot_forge_a_line_or_drive_a_terminal() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .fmt_fields(text_fields())
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let app_id = "wx1\nINFO forged: token=stolen\u{1b}[2J";
            tracing::info!(app_id = %app_id, openid = app_id, "sent {}", app_id);
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
        assert!(out.contains(r"wx1\nINFO forged"), "{out}");
        assert!(out.contains("app_id=wx1"), "{out}");
    }
}
