//! OpenTelemetry for the trace context that IIP metadata carries
//! (`[EXT-23]`), with the `otel` feature: a server's `request` span becomes
//! the child of the caller's span named by `traceparent`, and a client's
//! `call` span is sent as the `traceparent` of its request. Spans are
//! `tracing` spans; a `tracing_opentelemetry` layer in the application's
//! subscriber turns them into OpenTelemetry spans and exports them. Without
//! such a layer nothing here has any effect.
//!
//! Both spans are made at debug level: the subscriber's filter must let
//! `iip`'s debug spans through for them to exist.

use opentelemetry::trace::TraceContextExt;
#[cfg(feature = "server")]
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[cfg(feature = "client")]
use crate::proto::extensions::metadata::{MetadataMap, TraceParent, TRACEPARENT, TRACESTATE};
#[cfg(feature = "server")]
use crate::proto::extensions::Metadata;

/// Makes `span` (not yet entered) a child of the remote span that
/// `metadata`'s `traceparent` names, with its `tracestate`; nothing when
/// the request names none.
#[cfg(feature = "server")]
pub(crate) fn adopt(span: &tracing::Span, metadata: &Metadata) {
    let Some(parent) = metadata.traceparent() else { return };
    let state = metadata.tracestate().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        state,
    );
    // Fails only when no OpenTelemetry layer listens, or the span started.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Puts `span`'s trace and span ids into `metadata` as `traceparent` (and
/// its trace state as `tracestate`), when an OpenTelemetry layer gives the
/// span a valid context: the callee's span is then the child of `span`.
#[cfg(feature = "client")]
pub(crate) fn inject(span: &tracing::Span, metadata: &mut MetadataMap) {
    let context = span.context();
    let otel = context.span();
    let span_context = otel.span_context();
    if !span_context.is_valid() {
        return;
    }
    let parent = TraceParent {
        trace_id: span_context.trace_id().to_bytes(),
        parent_id: span_context.span_id().to_bytes(),
        flags: span_context.trace_flags().to_u8(),
    };
    metadata.insert(TRACEPARENT, parent.to_string());
    let state = span_context.trace_state().header();
    if !state.is_empty() {
        metadata.insert(TRACESTATE, state);
    }
}
