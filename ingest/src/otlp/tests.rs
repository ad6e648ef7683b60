//! Expected names and series come from Prometheus's own otlptranslator tests
//! (`metric_namer_test.go`, `normalize_name_test.go`, `label_namer_test.go`,
//! `helper_test.go`) and from its translation code for the same inputs.

use super::*;
use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::metrics::v1::{
    summary_data_point::ValueAtQuantile, ExponentialHistogram, ExponentialHistogramDataPoint,
    Gauge, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;

const T0_NS: u64 = 1_700_000_000_123_456_789;
const T0_MS: i64 = 1_700_000_000_123;

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.to_owned())),
    }
}

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(v),
        ..Default::default()
    }
}

fn kvs(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs.iter().map(|(k, v)| kv(k, s(v))).collect()
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.to_owned(),
        description: format!("help for {name}"),
        unit: unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

fn number(attrs: &[(&str, &str)], t_ns: u64, v: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: kvs(attrs),
        time_unix_nano: t_ns,
        value: Some(v),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        unit,
        Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

fn sum(
    name: &str,
    unit: &str,
    monotonic: bool,
    temporality: i32,
    points: Vec<NumberDataPoint>,
) -> Metric {
    metric(
        name,
        unit,
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
    )
}

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn request(resource: &[(&str, &str)], metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: kvs(resource),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(
                    opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                        name: "my.library".to_owned(),
                        version: "1.2.3".to_owned(),
                        ..Default::default()
                    },
                ),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn run(req: &ExportMetricsServiceRequest) -> OtlpBatch {
    translate(&req.encode_to_vec()).expect("a valid request decodes")
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

fn find<'a>(batch: &'a OtlpBatch, want: &[(&str, &str)]) -> &'a OtlpSeries {
    let want = labels(want);
    batch
        .series
        .iter()
        .find(|s| s.labels == want)
        .unwrap_or_else(|| panic!("no series {want:?} in {:#?}", batch.series))
}

fn names(batch: &OtlpBatch) -> Vec<String> {
    let mut n: Vec<String> = batch
        .series
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .find(|(k, _)| k == "__name__")
                .map(|(_, v)| v.clone())
                .expect("every series has __name__")
        })
        .collect();
    n.sort();
    n.dedup();
    n
}

#[test]
fn metric_names_follow_prometheus_translator() {
    use NameKind::*;
    let cases: &[(&str, &str, NameKind, &str)] = &[
        (
            "http.server.duration",
            "ms",
            Histogram,
            "http_server_duration_milliseconds",
        ),
        ("requests", "1", MonotonicCounter, "requests_total"),
        ("requests", "", MonotonicCounter, "requests_total"),
        ("cpu_usage", "1", Gauge, "cpu_usage_ratio"),
        (
            "system.cpu.utilization",
            "1",
            Gauge,
            "system_cpu_utilization_ratio",
        ),
        (
            "hw.gpu.memory.utilization",
            "1",
            Gauge,
            "hw_gpu_memory_utilization_ratio",
        ),
        ("hw.fan.speed_ratio", "1", Gauge, "hw_fan_speed_ratio"),
        ("cpu_usage_ratio", "1", Gauge, "cpu_usage_ratio"),
        ("objects", "1", MonotonicCounter, "objects_total"),
        (
            "active_connections",
            "1",
            NonMonotonicCounter,
            "active_connections",
        ),
        ("response_time", "ms", Gauge, "response_time_milliseconds"),
        ("response_time_seconds", "s", Gauge, "response_time_seconds"),
        ("memory_usage", "By", Gauge, "memory_usage_bytes"),
        (
            "system.filesystem.usage",
            "By",
            Gauge,
            "system_filesystem_usage_bytes",
        ),
        (
            "\t system.filesystem.usage       ",
            "  By\t",
            Gauge,
            "system_filesystem_usage_bytes",
        ),
        ("system.io", "By", MonotonicCounter, "system_io_bytes_total"),
        (
            "network_transmitted_bytes_total",
            "By",
            MonotonicCounter,
            "network_transmitted_bytes_total",
        ),
        ("requests_total", "", MonotonicCounter, "requests_total"),
        (
            "mongodbatlas.process.journaling.data_files",
            "MiBy",
            Gauge,
            "mongodbatlas_process_journaling_data_files_mebibytes",
        ),
        ("heap", "KiBy", Gauge, "heap_kibibytes"),
        (
            "nsxt.node.memory.usage",
            "KBy",
            Gauge,
            "nsxt_node_memory_usage_kilobytes",
        ),
        (
            "redis.latest_fork",
            "us",
            Gauge,
            "redis_latest_fork_microseconds",
        ),
        (
            "hw.cpu.speed_limit",
            "Hz",
            Gauge,
            "hw_cpu_speed_limit_hertz",
        ),
        ("uptime", "d", Gauge, "uptime_days"),
        ("timeout", "min", Gauge, "timeout_minutes"),
        (
            "broken.metric.success_ratio",
            "%",
            Gauge,
            "broken_metric_success_ratio_percent",
        ),
        (
            "broken.metric.success_percent",
            "%",
            Gauge,
            "broken_metric_success_percent",
        ),
        (
            "system.network.dropped",
            "{packets}",
            Gauge,
            "system_network_dropped",
        ),
        (
            "system.network.dropped",
            "{packets}",
            MonotonicCounter,
            "system_network_dropped_total",
        ),
        (
            "system.network.dropped",
            "packets",
            Gauge,
            "system_network_dropped_packets",
        ),
        (
            "system.network.packets.dropped",
            "packets",
            Gauge,
            "system_network_packets_dropped",
        ),
        (
            "system.network.packets",
            "packets",
            MonotonicCounter,
            "system_network_packets_total",
        ),
        ("custom_metric", "{custom}", Gauge, "custom_metric"),
        ("custom_metric", "By/{custom}", Gauge, "custom_metric_bytes"),
        (
            "custom_metric",
            "custom_unit",
            Gauge,
            "custom_metric_custom_unit",
        ),
        (
            "custom_metric",
            "unit@with#special/chars",
            Gauge,
            "custom_metric_unit_with_special_per_chars",
        ),
        ("requests", "1/s", Gauge, "requests_per_second"),
        (
            "requests",
            "1/s",
            MonotonicCounter,
            "requests_per_second_total",
        ),
        ("throughput", "By/s", Gauge, "throughput_bytes_per_second"),
        (
            "broken.metric.speed",
            "km/h",
            Gauge,
            "broken_metric_speed_km_per_hour",
        ),
        (
            "astro.light.speed_limit",
            "m/s",
            Gauge,
            "astro_light_speed_limit_meters_per_second",
        ),
        (
            "active_directory.ds.replication.object.rate",
            "{objects}/s",
            Gauge,
            "active_directory_ds_replication_object_rate_per_second",
        ),
        (
            "mongodbatlas.process.oplog.rate",
            "GiBy/h",
            Gauge,
            "mongodbatlas_process_oplog_rate_gibibytes_per_hour",
        ),
        (
            "mongodbatlas.process.db.query_targeting.scanned_per_returned",
            "{scanned}/{returned}",
            Gauge,
            "mongodbatlas_process_db_query_targeting_scanned_per_returned",
        ),
        (
            "system.disk.operation_time",
            "s",
            MonotonicCounter,
            "system_disk_operation_time_seconds_total",
        ),
        (
            "system.cpu.load_average.15m",
            "1",
            Gauge,
            "system_cpu_load_average_15m_ratio",
        ),
        (
            "apache.workers",
            "connections",
            Gauge,
            "apache_workers_connections",
        ),
        ("nginx.requests", "requests", Gauge, "nginx_requests"),
        (
            "bigip.virtual_server.request.count",
            "{requests}",
            MonotonicCounter,
            "bigip_virtual_server_request_count_total",
        ),
        (
            "unsupported.metric.temperature",
            "°F",
            Gauge,
            "unsupported_metric_temperature_F",
        ),
        (
            "unsupported.metric.redundant",
            "__test $/°C",
            Gauge,
            "unsupported_metric_redundant_test_per_C",
        ),
        (
            "metric__with__multiple__underscores",
            "unit__multiple__underscores",
            Gauge,
            "metric_with_multiple_underscores_unit_multiple_underscores",
        ),
        (
            "envoy__rule_engine_zlib_buf_error",
            "",
            Gauge,
            "envoy_rule_engine_zlib_buf_error",
        ),
        ("3.14 digits", "", Gauge, "_3_14_digits"),
        ("123_requests", "", MonotonicCounter, "_123_requests_total"),
        (
            "metric@with#special$chars",
            "",
            Gauge,
            "metric_with_special_chars",
        ),
        (
            "request_size",
            "By",
            ExponentialHistogram,
            "request_size_bytes",
        ),
        ("response_time", "ms", Summary, "response_time_milliseconds"),
        ("test.metric.spaces", "   \t  ", Gauge, "test_metric_spaces"),
        ("a:b::c", "", Gauge, "a:b::c"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            metric_family_name(name, unit, *kind).as_deref(),
            Ok(*want),
            "{name:?} unit {unit:?} {kind:?}"
        );
    }
}

#[test]
fn metric_names_that_escape_to_nothing_are_errors() {
    for name in ["", "@#$%", "..."] {
        assert!(
            matches!(
                metric_family_name(name, "", NameKind::Gauge),
                Err(OtlpError::InvalidMetricName { .. })
            ),
            "{name:?}"
        );
    }
    // Written that way, only underscores is allowed (the name did not change).
    assert_eq!(metric_family_name("_", "", NameKind::Gauge).ok(), None);
}

#[test]
fn label_names_follow_prometheus_defaults() {
    let cases = [
        ("http.method", "http_method"),
        ("label:with:colons", "label_with_colons"),
        ("LabelWithCapitalLetters", "LabelWithCapitalLetters"),
        ("label!with&special$chars)", "label_with_special_chars_"),
        (
            "label_with_foreign_characters_字符",
            "label_with_foreign_characters___",
        ),
        ("label.with.dots", "label_with_dots"),
        ("123label", "key_123label"),
        (
            "_label_starting_with_underscore",
            "key_label_starting_with_underscore",
        ),
        (
            "__label_starting_with_2underscores",
            "__label_starting_with_2underscores",
        ),
        ("__reserved__", "__reserved__"),
        ("foo__bar", "foo__bar"),
        ("_", "key_"),
        (".", "key_"),
        ("ñ", "key_"),
        ("__", "__"),
    ];
    for (key, want) in cases {
        assert_eq!(normalize_label(key).as_deref(), Ok(want), "{key:?}");
    }
    assert_eq!(normalize_label(""), Err(String::new()));
    assert_eq!(normalize_label(".."), Err("__".to_owned()));
}

#[test]
fn gauge_gets_job_instance_labels_and_ms_timestamps() {
    let req = request(
        &[
            ("service.name", "checkout"),
            ("service.namespace", "shop"),
            ("service.instance.id", "pod-1"),
            ("host.name", "node-a"),
        ],
        vec![gauge(
            "system.cpu.utilization",
            "1",
            vec![
                number(
                    &[("cpu", "0"), ("state", "idle")],
                    T0_NS,
                    number_data_point::Value::AsDouble(0.25),
                ),
                number(
                    &[("cpu", "1"), ("state", "idle")],
                    T0_NS,
                    number_data_point::Value::AsInt(1),
                ),
            ],
        )],
    );
    let batch = run(&req);
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    let base = [
        ("__name__", "system_cpu_utilization_ratio"),
        ("job", "shop/checkout"),
        ("instance", "pod-1"),
        ("state", "idle"),
    ];
    let s0 = find(&batch, &[base.as_slice(), &[("cpu", "0")]].concat());
    assert_eq!(s0.samples, vec![(T0_MS, 0.25)]);
    let s1 = find(&batch, &[base.as_slice(), &[("cpu", "1")]].concat());
    assert_eq!(s1.samples, vec![(T0_MS, 1.0)]);
    // Resource attributes are not promoted and scope metadata is not added by default.
    for series in &batch.series {
        let is_info = series
            .labels
            .contains(&("__name__".into(), "target_info".into()));
        for (k, _) in &series.labels {
            assert!(!k.starts_with("otel_scope"), "{k}");
            assert!(is_info || k != "host_name", "{:?}", series.labels);
        }
    }
    assert_eq!(
        names(&batch),
        vec!["system_cpu_utilization_ratio", "target_info"]
    );
}

#[test]
fn job_without_namespace_and_resource_attributes_go_to_target_info() {
    let req = request(
        &[
            ("service.name", "api"),
            ("service.instance.id", "10.0.0.1:8080"),
            ("host.name", "node-a"),
            ("k8s.pod.name", "api-7f"),
            ("1st.attr", "x"),
        ],
        vec![gauge(
            "up",
            "",
            vec![number(&[], T0_NS, number_data_point::Value::AsInt(1))],
        )],
    );
    let batch = run(&req);
    let info = find(
        &batch,
        &[
            ("__name__", "target_info"),
            ("job", "api"),
            ("instance", "10.0.0.1:8080"),
            ("host_name", "node-a"),
            ("k8s_pod_name", "api-7f"),
            ("key_1st_attr", "x"),
        ],
    );
    assert_eq!(info.samples, vec![(T0_MS, 1.0)]);
    find(
        &batch,
        &[
            ("__name__", "up"),
            ("job", "api"),
            ("instance", "10.0.0.1:8080"),
        ],
    );
    assert!(batch.metadata.contains(&OtlpMetadata {
        family: "target_info".into(),
        kind: "gauge",
        help: "Target metadata".into(),
        unit: String::new(),
    }));
}

#[test]
fn target_info_needs_a_non_identifying_attribute_and_job_or_instance() {
    let point = || {
        vec![gauge(
            "up",
            "",
            vec![number(&[], T0_NS, number_data_point::Value::AsInt(1))],
        )]
    };
    let only_identifying = run(&request(
        &[
            ("service.name", "a"),
            ("service.instance.id", "b"),
            ("service.namespace", "c"),
        ],
        point(),
    ));
    assert_eq!(names(&only_identifying), vec!["up"]);
    let no_identity = run(&request(&[("host.name", "node-a")], point()));
    assert_eq!(names(&no_identity), vec!["up"]);
    // An instance alone is enough.
    let instance_only = run(&request(
        &[("service.instance.id", "i"), ("host.name", "h")],
        point(),
    ));
    find(
        &instance_only,
        &[
            ("__name__", "target_info"),
            ("instance", "i"),
            ("host_name", "h"),
        ],
    );
}

#[test]
fn target_info_is_repeated_every_half_lookback_across_the_resource_span() {
    let six_min = 6 * 60 * 1_000_000_000;
    let req = request(
        &[("service.name", "svc"), ("env", "prod")],
        vec![gauge(
            "g",
            "",
            vec![
                number(&[("a", "1")], T0_NS, number_data_point::Value::AsInt(1)),
                number(
                    &[("a", "2")],
                    T0_NS + six_min,
                    number_data_point::Value::AsInt(1),
                ),
            ],
        )],
    );
    let batch = run(&req);
    let info = find(
        &batch,
        &[("__name__", "target_info"), ("job", "svc"), ("env", "prod")],
    );
    let ts: Vec<i64> = info.samples.iter().map(|s| s.0).collect();
    assert_eq!(
        ts,
        vec![T0_MS, T0_MS + 150_000, T0_MS + 300_000, T0_MS + 360_000]
    );
    assert!(info.samples.iter().all(|s| s.1 == 1.0));
}

#[test]
fn target_info_span_is_capped() {
    let req = request(
        &[("service.name", "svc"), ("env", "prod")],
        vec![gauge(
            "g",
            "",
            vec![
                number(&[("a", "1")], 0, number_data_point::Value::AsInt(1)),
                number(&[("a", "2")], T0_NS, number_data_point::Value::AsInt(1)),
            ],
        )],
    );
    let batch = run(&req);
    let info = find(
        &batch,
        &[("__name__", "target_info"), ("job", "svc"), ("env", "prod")],
    );
    assert_eq!(info.samples.len(), 24 * 60 * 60 / 150 + 1);
    assert_eq!(info.samples.last(), Some(&(T0_MS, 1.0)));
    find(&batch, &[("__name__", "g"), ("job", "svc"), ("a", "1")]);
}

#[test]
fn counters_and_updown_counters() {
    let req = request(
        &[("service.name", "svc")],
        vec![
            sum(
                "requests",
                "1",
                true,
                CUMULATIVE,
                vec![number(
                    &[("code", "200")],
                    T0_NS,
                    number_data_point::Value::AsInt(42),
                )],
            ),
            sum(
                "queue.size",
                "1",
                false,
                CUMULATIVE,
                vec![number(&[], T0_NS, number_data_point::Value::AsDouble(-3.5))],
            ),
        ],
    );
    let batch = run(&req);
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    let c = find(
        &batch,
        &[
            ("__name__", "requests_total"),
            ("job", "svc"),
            ("code", "200"),
        ],
    );
    assert_eq!(c.samples, vec![(T0_MS, 42.0)]);
    let g = find(&batch, &[("__name__", "queue_size"), ("job", "svc")]);
    assert_eq!(g.samples, vec![(T0_MS, -3.5)]);
    assert_eq!(
        batch.metadata,
        vec![
            OtlpMetadata {
                family: "requests_total".into(),
                kind: "counter",
                help: "help for requests".into(),
                unit: "1".into(),
            },
            OtlpMetadata {
                family: "queue_size".into(),
                kind: "gauge",
                help: "help for queue.size".into(),
                unit: "1".into(),
            },
        ]
    );
}

fn histogram_point(attrs: &[(&str, &str)], sum: Option<f64>, flags: u32) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: kvs(attrs),
        time_unix_nano: T0_NS,
        count: 6,
        sum,
        bucket_counts: vec![1, 2, 3],
        explicit_bounds: vec![5.0, 10.5],
        flags,
        ..Default::default()
    }
}

fn histogram(name: &str, unit: &str, temporality: i32, points: Vec<HistogramDataPoint>) -> Metric {
    metric(
        name,
        unit,
        Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: temporality,
        }),
    )
}

#[test]
fn histogram_becomes_classic_buckets_sum_and_count() {
    let req = request(
        &[("service.name", "svc")],
        vec![histogram(
            "http.server.duration",
            "ms",
            CUMULATIVE,
            vec![histogram_point(&[("http.route", "/")], Some(100.0), 0)],
        )],
    );
    let batch = run(&req);
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    let base = [("job", "svc"), ("http_route", "/")];
    let one = |name: &str, extra: &[(&str, &str)]| {
        let mut l = vec![("__name__", name)];
        l.extend_from_slice(&base);
        l.extend_from_slice(extra);
        find(&batch, &l).samples.clone()
    };
    let b = "http_server_duration_milliseconds_bucket";
    assert_eq!(one(b, &[("le", "5")]), vec![(T0_MS, 1.0)]);
    assert_eq!(one(b, &[("le", "10.5")]), vec![(T0_MS, 3.0)]);
    assert_eq!(one(b, &[("le", "+Inf")]), vec![(T0_MS, 6.0)]);
    assert_eq!(
        one("http_server_duration_milliseconds_sum", &[]),
        vec![(T0_MS, 100.0)]
    );
    assert_eq!(
        one("http_server_duration_milliseconds_count", &[]),
        vec![(T0_MS, 6.0)]
    );
    // No target_info: the resource has only identifying attributes.
    assert_eq!(batch.series.len(), 5);
    assert_eq!(
        batch.metadata,
        vec![OtlpMetadata {
            family: "http_server_duration_milliseconds".into(),
            kind: "histogram",
            help: "help for http.server.duration".into(),
            unit: "ms".into(),
        }]
    );
}

#[test]
fn histogram_without_sum_has_no_sum_series() {
    let req = request(
        &[],
        vec![histogram(
            "lat",
            "s",
            CUMULATIVE,
            vec![histogram_point(&[], None, 0)],
        )],
    );
    let batch = run(&req);
    assert_eq!(
        names(&batch),
        vec!["lat_seconds_bucket", "lat_seconds_count"]
    );
}

#[test]
fn summary_becomes_quantiles_sum_and_count() {
    let req = request(
        &[("service.name", "svc")],
        vec![metric(
            "rpc.latency",
            "s",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: T0_NS,
                    count: 10,
                    sum: 4.5,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 0.3,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 1.2,
                        },
                    ],
                    ..Default::default()
                }],
            }),
        )],
    );
    let batch = run(&req);
    let q = |q: &str| {
        find(
            &batch,
            &[
                ("__name__", "rpc_latency_seconds"),
                ("job", "svc"),
                ("quantile", q),
            ],
        )
        .samples
        .clone()
    };
    assert_eq!(q("0.5"), vec![(T0_MS, 0.3)]);
    assert_eq!(q("0.99"), vec![(T0_MS, 1.2)]);
    assert_eq!(
        find(
            &batch,
            &[("__name__", "rpc_latency_seconds_sum"), ("job", "svc")]
        )
        .samples,
        vec![(T0_MS, 4.5)]
    );
    assert_eq!(
        find(
            &batch,
            &[("__name__", "rpc_latency_seconds_count"), ("job", "svc")]
        )
        .samples,
        vec![(T0_MS, 10.0)]
    );
    assert_eq!(batch.metadata[0].kind, "summary");
}

#[test]
fn delta_is_rejected_per_metric_and_the_rest_is_kept() {
    let req = request(
        &[("service.name", "svc")],
        vec![
            sum(
                "delta.requests",
                "1",
                true,
                DELTA,
                vec![number(&[], T0_NS, number_data_point::Value::AsInt(1))],
            ),
            histogram(
                "delta.latency",
                "s",
                DELTA,
                vec![histogram_point(&[], Some(1.0), 0)],
            ),
            sum(
                "unspecified",
                "1",
                true,
                0,
                vec![number(&[], T0_NS, number_data_point::Value::AsInt(1))],
            ),
            sum(
                "good",
                "1",
                true,
                CUMULATIVE,
                vec![number(&[], T0_NS, number_data_point::Value::AsInt(7))],
            ),
        ],
    );
    let batch = run(&req);
    assert_eq!(names(&batch), vec!["good_total"]);
    assert_eq!(batch.metadata.len(), 1);
    assert_eq!(
        batch.errors[0],
        OtlpError::Unsupported {
            metric: "delta.requests".into(),
            what: "delta temporality not supported",
        }
    );
    assert_eq!(
        batch.errors[0].to_string(),
        "metric \"delta.requests\": delta temporality not supported"
    );
    assert!(
        matches!(&batch.errors[1], OtlpError::Unsupported { metric, .. } if metric == "delta.latency")
    );
    assert!(
        matches!(&batch.errors[2], OtlpError::Unsupported { metric, .. } if metric == "unspecified")
    );
    assert_eq!(batch.errors.len(), 3);
}

#[test]
fn exponential_histograms_are_rejected_per_metric() {
    let exp = metric(
        "rpc.duration",
        "s",
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: T0_NS,
                count: 1,
                ..Default::default()
            }],
            aggregation_temporality: CUMULATIVE,
        }),
    );
    let req = request(
        &[("service.name", "svc")],
        vec![
            exp,
            gauge(
                "g",
                "",
                vec![number(&[], T0_NS, number_data_point::Value::AsInt(1))],
            ),
        ],
    );
    let batch = run(&req);
    assert_eq!(
        batch.errors,
        vec![OtlpError::Unsupported {
            metric: "rpc.duration".into(),
            what: "native histograms are not supported yet",
        }]
    );
    assert_eq!(names(&batch), vec!["g"]);
}

#[test]
fn no_recorded_value_becomes_the_stale_marker() {
    let flag = DataPointFlags::NoRecordedValueMask as u32;
    let mut p = number(&[], T0_NS, number_data_point::Value::AsDouble(5.0));
    p.flags = flag;
    let req = request(
        &[],
        vec![
            gauge("g", "", vec![p]),
            histogram(
                "h",
                "",
                CUMULATIVE,
                vec![histogram_point(&[], Some(1.0), flag)],
            ),
        ],
    );
    let batch = run(&req);
    // gauge + two buckets, +Inf, _sum, _count
    assert_eq!(batch.series.len(), 1 + 5);
    for series in &batch.series {
        for (_, v) in &series.samples {
            assert_eq!(v.to_bits(), 0x7ff0_0000_0000_0002, "{:?}", series.labels);
        }
    }
}

#[test]
fn colliding_labels_are_joined_in_original_key_order() {
    // '.' sorts before '_', so "http.method" comes first.
    let req = request(
        &[],
        vec![gauge(
            "g",
            "",
            vec![number(
                &[("http_method", "b"), ("http.method", "a")],
                T0_NS,
                number_data_point::Value::AsInt(1),
            )],
        )],
    );
    let batch = run(&req);
    find(&batch, &[("__name__", "g"), ("http_method", "a;b")]);
}

#[test]
fn service_name_overrides_job_attribute_and_empty_values_are_dropped() {
    let req = request(
        &[("service.name", "svc")],
        vec![gauge(
            "g",
            "",
            vec![number(
                &[("job", "mine"), ("empty", ""), ("__name__", "evil")],
                T0_NS,
                number_data_point::Value::AsInt(1),
            )],
        )],
    );
    let batch = run(&req);
    find(&batch, &[("__name__", "g"), ("job", "svc")]);
}

#[test]
fn bad_attribute_key_fails_that_metric_only() {
    let req = request(
        &[],
        vec![
            gauge(
                "bad",
                "",
                vec![number(
                    &[("..", "x")],
                    T0_NS,
                    number_data_point::Value::AsInt(1),
                )],
            ),
            gauge(
                "good",
                "",
                vec![number(&[], T0_NS, number_data_point::Value::AsInt(1))],
            ),
        ],
    );
    let batch = run(&req);
    assert_eq!(names(&batch), vec!["good"]);
    assert_eq!(
        batch.errors,
        vec![OtlpError::InvalidLabelName {
            metric: "bad".into(),
            attribute: "..".into(),
            normalized: "__".into(),
        }]
    );
}

#[test]
fn empty_and_dataless_metrics_are_reported() {
    let mut no_data = gauge("nodata", "", vec![]);
    no_data.data = None;
    let req = request(&[], vec![gauge("empty", "", vec![]), no_data]);
    let batch = run(&req);
    assert!(batch.series.is_empty());
    assert!(batch.metadata.is_empty());
    assert_eq!(
        batch.errors[0],
        OtlpError::EmptyDataPoints {
            metric: "empty".into()
        }
    );
    assert!(
        matches!(&batch.errors[1], OtlpError::Unsupported { metric, .. } if metric == "nodata")
    );
}

#[test]
fn attribute_values_are_stringified_like_pdata() {
    let arr = AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                s("a<b"),
                AnyValue {
                    value: Some(any_value::Value::IntValue(2)),
                },
                AnyValue { value: None },
            ],
        })),
    };
    let map = AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList {
            values: vec![
                kv(
                    "z",
                    AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    },
                ),
                kv(
                    "a",
                    AnyValue {
                        value: Some(any_value::Value::DoubleValue(1.5)),
                    },
                ),
            ],
        })),
    };
    let bad_map = AnyValue {
        value: Some(any_value::Value::KvlistValue(KeyValueList {
            values: vec![kv(
                "nan",
                AnyValue {
                    value: Some(any_value::Value::DoubleValue(f64::NAN)),
                },
            )],
        })),
    };
    let cases: Vec<(AnyValue, &str)> = vec![
        (s("plain"), "plain"),
        (
            AnyValue {
                value: Some(any_value::Value::BoolValue(false)),
            },
            "false",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::IntValue(-17)),
            },
            "-17",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::DoubleValue(0.1)),
            },
            "0.1",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::DoubleValue(1e21)),
            },
            "1e+21",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::DoubleValue(1e20)),
            },
            "100000000000000000000",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::DoubleValue(1.5e-7)),
            },
            "1.5e-7",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::DoubleValue(f64::INFINITY)),
            },
            "json: unsupported value: +Inf",
        ),
        (
            AnyValue {
                value: Some(any_value::Value::BytesValue(b"hello".to_vec())),
            },
            "aGVsbG8=",
        ),
        (arr, r#"["a\u003cb",2,null]"#),
        (map, r#"{"a":1.5,"z":true}"#),
        (bad_map, ""),
    ];
    for (v, want) in cases {
        assert_eq!(any_value_string(Some(&v)), want, "{v:?}");
    }
}

#[test]
fn body_that_is_not_protobuf_is_a_decode_error() {
    let err = translate(b"{\"resourceMetrics\": []}").expect_err("JSON is not protobuf");
    assert!(matches!(err, OtlpError::Decode { .. }), "{err:?}");
    // An empty body is a valid, empty request.
    assert!(translate(b"").expect("empty decodes").series.is_empty());
}

fn prometheus_label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn prometheus_metric_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = translate(&body);
    }

    #[test]
    fn arbitrary_names_give_valid_prometheus_names(
        name in "\\PC{0,24}",
        unit in "\\PC{0,12}",
        key in "\\PC{0,12}",
        value in "\\PC{0,12}",
        monotonic in any::<bool>(),
        t in any::<u64>(),
    ) {
        let req = request(
            &[("service.name", "svc"), (key.as_str(), value.as_str())],
            vec![
                gauge(&name, &unit, vec![number(&[(key.as_str(), value.as_str())], t, number_data_point::Value::AsInt(1))]),
                sum(&name, &unit, monotonic, CUMULATIVE, vec![number(&[], t, number_data_point::Value::AsInt(1))]),
            ],
        );
        let batch = run(&req);
        for series in &batch.series {
            let mut seen_name = false;
            for (k, v) in &series.labels {
                prop_assert!(!v.is_empty());
                if k == "__name__" {
                    seen_name = true;
                    prop_assert!(prometheus_metric_name_ok(v), "{v:?}");
                } else {
                    prop_assert!(prometheus_label_name_ok(k), "{k:?}");
                }
            }
            prop_assert!(seen_name);
            prop_assert!(!series.samples.is_empty());
        }
    }
}
