//! Plugin phase spans: the child of the request's server span that each
//! plugin phase call runs in (see the pipeline's `call!` macro). With the
//! trace not recorded, the child carries ids only: no name, no attributes,
//! and making and ending it is inlined into the call (a span id, two copies
//! of 40 bytes, two checks); the recorded span's name and attributes are
//! made out of line.

use covet_telemetry::{AttrValue, Span, SpanKind};

use crate::{exchange::Exchange, registry::Instance, runtime::Fault};

/// The span of one phase call, a child of the server span, put in `ex.span`.
/// Its name and attributes are only made when the trace is recorded.
#[inline(always)]
pub fn begin(server: &Span, instance: &Instance, phase: &'static str, ex: &mut Exchange) -> Span {
    let span = if server.is_recording() { recorded(server, instance, phase) } else { server.child("", SpanKind::Internal) };
    ex.span = Some(span.clone());
    span
}

#[cold]
#[inline(never)]
fn recorded(server: &Span, instance: &Instance, phase: &'static str) -> Span {
    let info = instance.executor.info();
    let span = server.child(super::server_span::join(&info.name, phase), SpanKind::Internal);
    span.add_attributes([
        ("covet.plugin.name", AttrValue::Str(&info.name)),
        ("covet.plugin.kind", AttrValue::Str(info.kind)),
        ("covet.plugin.phase", AttrValue::Str(phase)),
        ("covet.plugin.version", AttrValue::Str(&info.version)),
    ]);
    span
}

/// Ends a phase call's span (status Error with the fault's text on a fault)
/// and takes it out of `ex.span`.
#[inline(always)]
pub fn end(span: &Span, fault: Option<&Fault>, ex: &mut Exchange) {
    if let Some(fault) = fault.filter(|_| span.is_recording()) {
        span.set_error(fault.message().to_owned());
    }
    span.end();
    ex.span = None;
}
