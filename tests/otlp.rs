//! `POST /api/v1/otlp/v1/metrics` on the real binary: OTLP/HTTP protobuf (plain and gzip)
//! translated with Prometheus's naming rules, partial success for unsupported metrics.

mod common;

use std::io::Write as _;

use common::{http_raw, Hearth};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::Value;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn point(t_ms: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t_ms * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn request() -> ExportMetricsServiceRequest {
    let metrics = vec![
        Metric {
            name: "system.memory.usage".into(),
            unit: "By".into(),
            description: "Memory in use.".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![point(1_000, 1024.0, vec![kv("state", "used")])],
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.requests".into(),
            unit: "1".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(1_000, 7.0, vec![kv("http.method", "GET")])],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.duration".into(),
            unit: "ms".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 1_000_000_000,
                    count: 3,
                    sum: Some(12.0),
                    bucket_counts: vec![1, 2, 0],
                    explicit_bounds: vec![5.0, 10.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
        Metric {
            name: "delta.counter".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![point(1_000, 1.0, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.instance.id", "pod-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn export(h: &Hearth, m: &str) -> Vec<Value> {
    let (st, body) = h.get(&format!("/api/v1/tsdb/test/export?match={m}"));
    assert_eq!(st, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn otlp_metrics_are_translated_like_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &[]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&request().encode_to_vec()).unwrap();
    let body = gz.finish().unwrap();
    let (st, _, resp) = http_raw(
        &h.addr,
        "POST",
        "/api/v1/otlp/v1/metrics",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(st, 200, "{resp}");
    let r = ExportMetricsServiceResponse::decode(resp.as_bytes()).unwrap();
    let partial = r.partial_success.expect("delta sum must be reported");
    assert!(partial.error_message.contains("delta"), "{partial:?}");

    let mem = export(&h, "__name__=system_memory_usage_bytes");
    assert_eq!(mem.len(), 1, "{mem:?}");
    assert_eq!(mem[0]["labels"]["job"], "checkout");
    assert_eq!(mem[0]["labels"]["instance"], "pod-1");
    assert_eq!(mem[0]["labels"]["state"], "used");
    assert_eq!(mem[0]["samples"][0][0], 1000);
    assert_eq!(
        export(&h, "__name__=http_server_requests_total")[0]["labels"]["http_method"],
        "GET"
    );
    let buckets = export(&h, "__name__=http_server_duration_milliseconds_bucket");
    let les: Vec<&str> = buckets
        .iter()
        .map(|s| s["labels"]["le"].as_str().unwrap())
        .collect();
    assert_eq!(les.len(), 3, "{les:?}");
    assert!(les.contains(&"+Inf"));
    assert_eq!(
        export(&h, "__name__=http_server_duration_milliseconds_count").len(),
        1
    );
    assert!(export(&h, "__name__=~delta.*").is_empty());

    let (_, body) = h.get("/api/v1/metadata?metric=system_memory_usage_bytes");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["system_memory_usage_bytes"][0]["type"], "gauge",
        "{v}"
    );

    // JSON encoding is refused clearly; garbage is a 400.
    let (st, _, _) = http_raw(
        &h.addr,
        "POST",
        "/api/v1/otlp/v1/metrics",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .unwrap();
    assert_eq!(st, 415);
    let (st, _, _) = http_raw(
        &h.addr,
        "POST",
        "/api/v1/otlp/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        b"\xff\xff\xff",
    )
    .unwrap();
    assert_eq!(st, 400);
}
