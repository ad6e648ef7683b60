//! `POST /api/v1/write` on the real binary: 1.0 and 2.0 messages, status codes and headers
//! as the specs say, partial acceptance, limits, and metadata served back.

mod common;

use common::{http_raw, Hearth};
use hearth_ingest::remote_write::proto::{self, v2};
use prost::Message;
use serde_json::Value;

const V1: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn label(n: &str, v: &str) -> proto::Label {
    proto::Label {
        name: n.as_bytes().to_vec().into(),
        value: v.as_bytes().to_vec().into(),
    }
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
    proto::TimeSeries {
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| proto::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

fn post(h: &Hearth, ct: &str, body: &[u8]) -> (u16, Vec<(String, String)>, String) {
    http_raw(
        &h.addr,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", ct),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        body,
    )
    .unwrap()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn export(h: &Hearth, matcher: &str) -> Vec<(Value, Vec<(i64, u64)>)> {
    let (st, body) = h.get(&format!("/api/v1/tsdb/test/export?match={matcher}"));
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let samples = s["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x[0].as_i64().unwrap(),
                        u64::from_str_radix(&x[1].as_str().unwrap()[2..], 16).unwrap(),
                    )
                })
                .collect();
            (s["labels"].clone(), samples)
        })
        .collect()
}

#[test]
fn v1_write_partial_acceptance_and_idempotent_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &[]);
    let req = proto::WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "rw_a"), ("job", "x")],
                &[(1000, 1.0), (2000, f64::from_bits(0x7ff0000000000002))],
            ),
            series(&[("__name__", "rw_b")], &[(1000, 2.5)]),
        ],
        metadata: vec![proto::MetricMetadata {
            r#type: 1,
            metric_family_name: b"rw_a".to_vec(),
            help: b"A counter.".to_vec(),
            unit: b"".to_vec(),
        }],
    };
    let body = snappy(&req.encode_to_vec());
    let (st, hdrs, resp) = post(&h, V1, &body);
    assert_eq!(st, 204, "{resp}");
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-samples-written"),
        Some("3")
    );
    // A retry of the same request is accepted (exact duplicates).
    let (st, _, resp) = post(&h, V1, &body);
    assert_eq!(st, 204, "{resp}");
    let a = export(&h, "__name__=rw_a");
    assert_eq!(
        a[0].1,
        vec![(1000, 1f64.to_bits()), (2000, 0x7ff0000000000002)]
    );

    // Bad series next to good ones: 400 naming them, the good ones stored.
    let req = proto::WriteRequest {
        timeseries: vec![
            series(&[("__name__", "rw_good")], &[(5000, 5.0)]),
            series(&[("__name__", "rw_bad"), ("0bad", "x")], &[(5000, 1.0)]),
            series(
                &[("__name__", "rw_unsorted"), ("z", "1"), ("a", "2")],
                &[(5000, 1.0)],
            ),
            series(
                &[("__name__", "rw_dup"), ("a", "1"), ("a", "2")],
                &[(5000, 1.0)],
            ),
            series(&[("__name__", "rw_a"), ("job", "x")], &[(1000, 7.0)]),
            proto::TimeSeries {
                labels: vec![
                    label("__name__", "rw_latin1"),
                    proto::Label {
                        name: b"city".to_vec().into(),
                        value: vec![b'M', 0xfc, b'n'].into(),
                    },
                ],
                samples: vec![proto::Sample {
                    value: 1.0,
                    timestamp: 5000,
                }],
                ..Default::default()
            },
        ],
        metadata: vec![],
    };
    let (st, hdrs, resp) = post(&h, V1, &snappy(&req.encode_to_vec()));
    assert_eq!(st, 400, "{resp}");
    assert!(
        resp.contains("rw_bad") && resp.contains("invalid label name \"0bad\""),
        "{resp}"
    );
    assert!(
        resp.contains("rw_unsorted") && resp.contains("not sorted"),
        "{resp}"
    );
    assert!(
        resp.contains("rw_dup") && resp.contains("duplicate label name"),
        "{resp}"
    );
    assert!(
        resp.contains("rw_a") && resp.contains("duplicate_conflict"),
        "{resp}"
    );
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-samples-written"),
        Some("1")
    );
    assert_eq!(
        export(&h, "__name__=rw_good")[0].1,
        vec![(5000, 5f64.to_bits())]
    );
    assert!(export(&h, "__name__=rw_bad").is_empty());

    // Native histograms: refused with a clear error, floats in the request still stored.
    let mut hist = series(&[("__name__", "rw_hist")], &[]);
    hist.histograms = vec![vec![0x08, 0x01]];
    let req = proto::WriteRequest {
        timeseries: vec![hist, series(&[("__name__", "rw_float")], &[(1, 1.0)])],
        metadata: vec![],
    };
    let (st, _, resp) = post(&h, V1, &snappy(&req.encode_to_vec()));
    assert_eq!(st, 400);
    assert!(
        resp.contains("native histograms are not supported"),
        "{resp}"
    );
    assert_eq!(export(&h, "__name__=rw_float").len(), 1);

    let (st, body) = h.get("/api/v1/metadata?metric=rw_a");
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["rw_a"][0]["type"], "counter");
    assert_eq!(v["data"]["rw_a"][0]["help"], "A counter.");
    assert!(
        h.metric("hearth_ingest_samples_rejected_total{reason=\"invalid_labels\"}")
            .unwrap()
            >= 3.0
    );
    assert!(
        h.metric("hearth_ingest_requests_total{endpoint=\"remote_write\",code=\"400\"}")
            .unwrap()
            >= 2.0
    );
}

#[test]
fn v2_write_with_symbols_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Hearth::start(&tmp.path().join("data"), &[]);
    let syms = [
        "",
        "__name__",
        "http_request_duration_seconds_count",
        "job",
        "api",
        "Request count.",
        "seconds",
    ];
    let req = v2::Request {
        symbols: syms.iter().map(|s| s.as_bytes().to_vec().into()).collect(),
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![
                proto::Sample {
                    value: 10.0,
                    timestamp: 1000,
                },
                proto::Sample {
                    value: 12.0,
                    timestamp: 2000,
                },
            ],
            metadata: Some(v2::Metadata {
                r#type: 3,
                help_ref: 5,
                unit_ref: 6,
            }),
            ..Default::default()
        }],
    };
    let (st, hdrs, resp) = post(&h, V2, &snappy(&req.encode_to_vec()));
    assert_eq!(st, 204, "{resp}");
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-samples-written"),
        Some("2")
    );
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-histograms-written"),
        Some("0")
    );
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-exemplars-written"),
        Some("0")
    );
    let got = export(&h, "job=api");
    assert_eq!(got[0].0["__name__"], "http_request_duration_seconds_count");
    assert_eq!(
        got[0].1,
        vec![(1000, 10f64.to_bits()), (2000, 12f64.to_bits())]
    );
    let (_, body) = h.get("/api/v1/metadata");
    let v: Value = serde_json::from_str(&body).unwrap();
    let m = &v["data"]["http_request_duration_seconds"][0];
    assert_eq!(
        (m["type"].as_str(), m["unit"].as_str()),
        (Some("histogram"), Some("seconds"))
    );

    // A reference past the symbol table is a bad request.
    let mut bad = req.clone();
    bad.timeseries[0].labels_refs = vec![1, 40];
    let (st, _, resp) = post(&h, V2, &snappy(&bad.encode_to_vec()));
    assert_eq!(st, 400);
    assert!(resp.contains("out of range"), "{resp}");
}

#[test]
fn protocol_errors_map_to_spec_status_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(
        &cfg,
        "ingest:\n  max_request_body_bytes: 100000\n  max_decompressed_body_bytes: 1000000\n  max_active_series: 3\n",
    )
    .unwrap();
    let h = Hearth::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let ok = snappy(&proto::WriteRequest::default().encode_to_vec());
    assert_eq!(post(&h, V1, &ok).0, 204);
    assert_eq!(post(&h, "application/json", &ok).0, 415);
    assert_eq!(
        post(
            &h,
            "application/x-protobuf;proto=io.prometheus.write.v9.Request",
            &ok
        )
        .0,
        415
    );
    let (st, _, _) = http_raw(
        &h.addr,
        "POST",
        "/api/v1/write",
        &[("Content-Type", V1), ("Content-Encoding", "gzip")],
        &ok,
    )
    .unwrap();
    assert_eq!(st, 415);
    let (st, _, resp) = post(&h, V1, b"\xff\x06\x00\x00sNaPpY\x00\x00\x00\x00");
    assert_eq!(st, 400);
    assert!(resp.contains("framed"), "{resp}");
    assert_eq!(post(&h, V1, b"not snappy at all").0, 400);
    assert_eq!(post(&h, V1, &snappy(b"\xff\xff\xff not protobuf")).0, 400);
    // A snappy bomb under the wire limit that expands past the decompressed limit, and a
    // forged header declaring 4 GB: both refused before anything is decompressed.
    let bomb = snappy(&vec![0u8; 1_500_000]);
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let (st, _, resp) = post(&h, V1, &bomb);
    assert_eq!(st, 413, "{resp}");
    let forged = [0x80, 0xd0, 0xac, 0xf3, 0x0e, 0x00, 0x00];
    let (st, _, resp) = post(&h, V1, &forged);
    assert_eq!(st, 413, "{resp}");
    // Over the wire limit.
    assert_eq!(post(&h, V1, &vec![0u8; 200_000]).0, 413);
    assert_eq!(h.get("/-/ready").0, 200);
    // The active-series limit: three series fit, the rest are refused with 429.
    let req = proto::WriteRequest {
        timeseries: (0..5)
            .map(|i| series(&[("__name__", "act"), ("i", &i.to_string())], &[(1, 1.0)]))
            .collect(),
        metadata: vec![],
    };
    let (st, hdrs, resp) = post(&h, V1, &snappy(&req.encode_to_vec()));
    assert_eq!(st, 429, "{resp}");
    assert!(resp.contains("3 active series"), "{resp}");
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-samples-written"),
        Some("3")
    );
}

#[test]
fn series_limits_answer_429_and_keep_existing_series_flowing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hearth.yml");
    std::fs::write(&cfg, "ingest:\n  max_new_series_per_minute: 5\n  max_active_series: 8\n  max_labels_per_series: 4\n  max_label_value_length: 20\n").unwrap();
    let h = Hearth::start(
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let batch = |n: usize, t: i64| proto::WriteRequest {
        timeseries: (0..n)
            .map(|i| {
                series(
                    &[("__name__", "card"), ("i", &i.to_string())],
                    &[(t, i as f64)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let (st, hdrs, resp) = post(&h, V1, &snappy(&batch(10, 1000).encode_to_vec()));
    assert_eq!(st, 429, "{resp}");
    assert_eq!(header(&hdrs, "retry-after"), Some("30"));
    assert!(resp.contains("new series per minute"), "{resp}");
    assert_eq!(export(&h, "__name__=card").len(), 5);
    // The 5 admitted series keep being written; the rest stay refused.
    let (st, hdrs, _) = post(&h, V1, &snappy(&batch(10, 2000).encode_to_vec()));
    assert_eq!(st, 429);
    assert_eq!(
        header(&hdrs, "x-prometheus-remote-write-samples-written"),
        Some("5")
    );
    let got = export(&h, "__name__=card");
    assert!(got.iter().all(|s| s.1.len() == 2));

    let too_many = proto::WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "wide"),
                    ("a", "1"),
                    ("b", "1"),
                    ("c", "1"),
                    ("d", "1"),
                ],
                &[(1, 1.0)],
            ),
            series(
                &[("__name__", "long"), ("a", "this value is much too long")],
                &[(1, 1.0)],
            ),
        ],
        metadata: vec![],
    };
    let (st, _, resp) = post(&h, V1, &snappy(&too_many.encode_to_vec()));
    assert_eq!(st, 400, "{resp}");
    assert!(
        resp.contains("too_many_labels") && resp.contains("label_value_too_long"),
        "{resp}"
    );
    assert!(
        h.metric("hearth_ingest_samples_rejected_total{reason=\"max_new_series_per_minute\"}")
            .unwrap()
            >= 5.0
    );
}
