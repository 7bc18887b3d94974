//! The hand-written encoding read back with opentelemetry-proto's prost
//! types: what a collector decodes is what was set.

use opentelemetry::{Array, KeyValue, StringValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue};
use prost::Message;

use super::*;

fn value(v: &Option<AnyValue>) -> Option<&Any> {
    v.as_ref().and_then(|v| v.value.as_ref())
}

#[test]
fn varints_and_their_lengths_agree_with_prost() {
    for v in [0u64, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
        let mut ours = Vec::new();
        varint(&mut ours, v);
        let mut theirs = Vec::new();
        prost::encoding::encode_varint(v, &mut theirs);
        assert_eq!(ours, theirs, "{v}");
        assert_eq!(varint_len(v), theirs.len(), "{v}");
    }
}

#[test]
fn a_batch_decodes_with_its_resource_scope_and_spans() {
    let batcher = Batcher::new(&[("service.name", "svc"), ("service.version", "1.2.3")], "covet", "1.2.3");
    let mut spans = Vec::new();
    for (i, name) in ["one", "two"].into_iter().enumerate() {
        let mut span = Vec::new();
        key_value(&mut span, span::ATTRIBUTES, "i", AttrValue::I64(i as i64 - 1));
        bytes(&mut span, span::NAME, name.as_bytes());
        bytes(&mut span, span::SPAN_ID, &[i as u8 + 1; 8]);
        fixed64(&mut span, span::START, 1_000);
        fixed32(&mut span, span::FLAGS, 0x301);
        spans.push(span);
    }
    let request = ExportTraceServiceRequest::decode(batcher.request(&spans).as_slice()).unwrap();
    let [rs] = request.resource_spans.as_slice() else { panic!("{request:?}") };
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(value(&resource.attributes[0].value), Some(&Any::StringValue("svc".into())));
    let [ss] = rs.scope_spans.as_slice() else { panic!("{rs:?}") };
    let scope = ss.scope.as_ref().unwrap();
    assert_eq!((scope.name.as_str(), scope.version.as_str()), ("covet", "1.2.3"));
    assert_eq!(ss.spans.len(), 2);
    assert_eq!(ss.spans[1].name, "two");
    assert_eq!(ss.spans[1].span_id, vec![2; 8]);
    assert_eq!((ss.spans[1].start_time_unix_nano, ss.spans[1].flags), (1_000, 0x301));
    assert_eq!(value(&ss.spans[0].attributes[0].value), Some(&Any::IntValue(-1)));
    assert!(Batcher::new(&[], "covet", "0").request(&[]).len() > 2, "an empty batch is still a request");
}

#[test]
fn every_kind_of_value_round_trips_long_ones_too() {
    let long = "x".repeat(300);
    let mut span = Vec::new();
    let attributes = [
        KeyValue::new("s", "text"),
        KeyValue::new("empty", ""),
        KeyValue::new("long", long.clone()),
        KeyValue::new("b", false),
        KeyValue::new("i", i64::MIN),
        KeyValue::new("f", 1.5),
        KeyValue::new("strings", Value::Array(Array::String(vec![StringValue::from("a"), StringValue::from("b")]))),
        KeyValue::new("ints", Value::Array(Array::I64(vec![1, 2, 3]))),
    ];
    attributes.iter().for_each(|kv| otel_key_value(&mut span, span::ATTRIBUTES, kv));
    let decoded = opentelemetry_proto::tonic::trace::v1::Span::decode(span.as_slice()).unwrap();
    let got: Vec<_> = decoded.attributes.iter().map(|kv| (kv.key.as_str(), value(&kv.value).cloned())).collect();
    assert_eq!(got[0], ("s", Some(Any::StringValue("text".into()))));
    assert_eq!(got[1], ("empty", Some(Any::StringValue(String::new()))));
    assert_eq!(got[2], ("long", Some(Any::StringValue(long))));
    assert_eq!(got[3], ("b", Some(Any::BoolValue(false))));
    assert_eq!(got[4], ("i", Some(Any::IntValue(i64::MIN))));
    assert_eq!(got[5], ("f", Some(Any::DoubleValue(1.5))));
    let Some(Any::ArrayValue(strings)) = &got[6].1 else { panic!("{:?}", got[6]) };
    let strings: Vec<_> = strings.values.iter().map(|v| value(&Some(v.clone())).cloned()).collect();
    assert_eq!(strings, [Some(Any::StringValue("a".into())), Some(Any::StringValue("b".into()))]);
    let Some(Any::ArrayValue(ints)) = &got[7].1 else { panic!("{:?}", got[7]) };
    assert_eq!(ints.values.len(), 3);
}

#[test]
fn find_key_finds_attributes_among_other_fields() {
    let mut fields = Vec::new();
    key_value(&mut fields, span::ATTRIBUTES, "a", AttrValue::Str("1"));
    nested(&mut fields, span::EVENTS, |buf| key_value(buf, event::ATTRIBUTES, "b", AttrValue::Bool(true)));
    let b_at = fields.len();
    key_value(&mut fields, span::ATTRIBUTES, "b", AttrValue::Str(&"y".repeat(200)));
    key_value(&mut fields, span::ATTRIBUTES, "c", AttrValue::F64(2.0));
    assert_eq!(find_key(&fields, span::ATTRIBUTES, "a").map(|r| r.start), Some(0));
    let b = find_key(&fields, span::ATTRIBUTES, "b").expect("b, not the event's b");
    assert_eq!(b.start, b_at);
    assert!(find_key(&fields, span::ATTRIBUTES, "c").is_some());
    assert_eq!(find_key(&fields, span::ATTRIBUTES, "d"), None);
    fields.drain(b);
    let decoded = opentelemetry_proto::tonic::trace::v1::Span::decode(fields.as_slice()).unwrap();
    let keys: Vec<_> = decoded.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["a", "c"]);
    assert_eq!(decoded.events[0].attributes[0].key, "b");
}
