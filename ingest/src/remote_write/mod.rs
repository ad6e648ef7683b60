//! Prometheus remote_write receiver: `POST /api/v1/write`, protocol 1.0 and 2.0 (spec
//! 2.0-rc.4), snappy block format.
//!
//! Negotiation follows the specs: the `Content-Type` names the message
//! (`application/x-protobuf` alone or with `;proto=prometheus.WriteRequest` is 1.0,
//! `;proto=io.prometheus.write.v2.Request` is 2.0, anything else is 415);
//! `Content-Encoding` must be `snappy` (or absent, which 1.0 senders may do). Status codes:
//! 204 when everything was written; 400 when any sample was invalid (the valid ones are still
//! written, the body names the first few bad series); 413 for bodies over the limits; 429
//! with `Retry-After` when a series limit refused samples; 503 while the storage is not
//! ready or shutting down, 500 for storage failures — both worth retrying. Retried requests
//! are idempotent: exact duplicates are accepted.

pub mod proto;

use prost::bytes::Bytes;
use prost::Message;

use crate::writer::SeriesInput;
use crate::IngestError;

/// Which message a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

/// Protocol from the `Content-Type` header (None: unsupported → 415).
pub fn negotiate(content_type: Option<&str>) -> Option<Protocol> {
    let Some(ct) = content_type else {
        return Some(Protocol::V1);
    };
    let mut parts = ct.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return None;
    }
    let mut proto = Protocol::V1;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("proto") {
                proto = match v.trim().trim_matches('"') {
                    "prometheus.WriteRequest" => Protocol::V1,
                    "io.prometheus.write.v2.Request" => Protocol::V2,
                    _ => return None,
                };
            }
        }
    }
    Some(proto)
}

/// The snappy stream ("framed") format starts with this chunk; senders must use the block
/// format.
const SNAPPY_FRAMED_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decompresses a snappy block-format body, refusing before allocating anything if the
/// declared length is over `max`.
pub fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    if body.starts_with(SNAPPY_FRAMED_MAGIC) {
        return Err(IngestError::BadRequest(
            "snappy framed (stream) format is not supported; remote write uses the block format"
                .into(),
        ));
    }
    let len = snap::raw::decompress_len(body)
        .map_err(|e| IngestError::BadRequest(format!("invalid snappy body: {e}")))?;
    if max > 0 && len > max {
        return Err(IngestError::TooLarge(format!(
            "decompressed body of {len} bytes exceeds the limit of {max} bytes"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| IngestError::BadRequest(format!("invalid snappy body: {e}")))
}

/// Metadata carried by a request: (family, type number, help, unit).
pub type MetadataEntry = (String, i32, String, String);

/// A decoded request, in protocol-independent form.
#[derive(Debug, Default)]
pub struct Decoded {
    pub series: Vec<SeriesInput>,
    pub metadata: Vec<MetadataEntry>,
    pub exemplars: usize,
}

/// Decodes a 1.0 `WriteRequest`. Label strings stay `Bytes` slices of `buf` (UTF-8 is
/// checked per series by the writer, so one bad series does not sink the request).
pub fn decode_v1(buf: Bytes, max_series: usize) -> Result<Decoded, IngestError> {
    let req = proto::WriteRequest::decode(buf)
        .map_err(|e| IngestError::BadRequest(format!("invalid protobuf WriteRequest: {e}")))?;
    if max_series > 0 && req.timeseries.len() > max_series {
        return Err(IngestError::BadRequest(format!(
            "request has {} series, limit is {max_series}",
            req.timeseries.len()
        )));
    }
    let mut out = Decoded {
        series: Vec::with_capacity(req.timeseries.len()),
        ..Decoded::default()
    };
    for ts in req.timeseries {
        out.exemplars += ts.exemplars.len();
        out.series.push(SeriesInput {
            labels: ts.labels,
            samples: ts.samples,
            histograms: ts.histograms.len(),
        });
    }
    for m in req.metadata {
        if let (Ok(f), Ok(h), Ok(u)) = (
            String::from_utf8(m.metric_family_name),
            String::from_utf8(m.help),
            String::from_utf8(m.unit),
        ) {
            out.metadata.push((f, m.r#type, h, u));
        }
    }
    Ok(out)
}

/// Decodes a 2.0 `Request` (symbol table + references); symbols stay `Bytes` slices of `buf`.
pub fn decode_v2(buf: Bytes, max_series: usize) -> Result<Decoded, IngestError> {
    let req = proto::v2::Request::decode(buf)
        .map_err(|e| IngestError::BadRequest(format!("invalid protobuf v2 Request: {e}")))?;
    if max_series > 0 && req.timeseries.len() > max_series {
        return Err(IngestError::BadRequest(format!(
            "request has {} series, limit is {max_series}",
            req.timeseries.len()
        )));
    }
    let symbols = req.symbols;
    let sym = |r: u32| -> Result<Bytes, IngestError> {
        symbols.get(r as usize).cloned().ok_or_else(|| {
            IngestError::BadRequest(format!(
                "symbol reference {r} out of range (symbols table has {} entries)",
                symbols.len()
            ))
        })
    };
    let sym_str = |r: u32| -> Result<String, IngestError> {
        let b = sym(r)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| IngestError::BadRequest(format!("symbol {r} is not valid UTF-8")))
    };
    let mut out = Decoded {
        series: Vec::with_capacity(req.timeseries.len()),
        ..Decoded::default()
    };
    for ts in req.timeseries {
        if ts.labels_refs.len() % 2 != 0 {
            return Err(IngestError::BadRequest(format!(
                "labels_refs has odd length {}",
                ts.labels_refs.len()
            )));
        }
        let mut labels = Vec::with_capacity(ts.labels_refs.len() / 2);
        for p in ts.labels_refs.chunks_exact(2) {
            labels.push(proto::Label {
                name: sym(p[0])?,
                value: sym(p[1])?,
            });
        }
        out.exemplars += ts.exemplars.len();
        if let Some(m) = ts.metadata {
            if m.r#type != 0 || m.help_ref != 0 || m.unit_ref != 0 {
                let name = labels
                    .iter()
                    .find(|l| l.name.as_ref() == b"__name__")
                    .and_then(|l| std::str::from_utf8(&l.value).ok())
                    .map(|v| family_name(v, m.r#type).to_string())
                    .unwrap_or_default();
                out.metadata
                    .push((name, m.r#type, sym_str(m.help_ref)?, sym_str(m.unit_ref)?));
            }
        }
        out.series.push(SeriesInput {
            labels,
            samples: ts.samples,
            histograms: ts.histograms.len(),
        });
    }
    Ok(out)
}

/// The family a series belongs to: histogram and summary series carry `_bucket`, `_sum`,
/// `_count` suffixes that metadata is not keyed by.
fn family_name(metric: &str, kind: i32) -> &str {
    if matches!(kind, 3..=5) {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(f) = metric.strip_suffix(suffix) {
                return f;
            }
        }
    }
    metric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Some(Protocol::V1));
        assert_eq!(
            negotiate(Some("application/x-protobuf")),
            Some(Protocol::V1)
        );
        assert_eq!(
            negotiate(Some("application/x-protobuf;proto=prometheus.WriteRequest")),
            Some(Protocol::V1)
        );
        assert_eq!(
            negotiate(Some(
                "application/x-protobuf; proto=io.prometheus.write.v2.Request"
            )),
            Some(Protocol::V2)
        );
        assert_eq!(negotiate(Some("application/json")), None);
        assert_eq!(
            negotiate(Some(
                "application/x-protobuf;proto=io.prometheus.write.v3.Request"
            )),
            None
        );
    }

    #[test]
    fn snappy_limits_and_framed_format() {
        let raw = vec![0u8; 1 << 20];
        let c = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert!(c.len() < 100_000);
        assert_eq!(decompress(&c, 2 << 20).unwrap(), raw);
        assert!(matches!(
            decompress(&c, 1000),
            Err(IngestError::TooLarge(_))
        ));
        assert!(matches!(
            decompress(b"\xff\x06\x00\x00sNaPpYxxxx", 1000),
            Err(IngestError::BadRequest(_))
        ));
        assert!(matches!(
            decompress(b"\xff\xff\xff\xff\xff", 1000),
            Err(IngestError::BadRequest(_)) | Err(IngestError::TooLarge(_))
        ));
    }

    #[test]
    fn v2_symbols_resolve_and_bad_refs_fail() {
        let req = proto::v2::Request {
            symbols: ["", "__name__", "up", "job", "node", "help text", "seconds"]
                .map(Bytes::from)
                .to_vec(),
            timeseries: vec![proto::v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![proto::Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                metadata: Some(proto::v2::Metadata {
                    r#type: 2,
                    help_ref: 5,
                    unit_ref: 6,
                }),
                ..Default::default()
            }],
        };
        let d = decode_v2(req.encode_to_vec().into(), 0).unwrap();
        let labels: Vec<(&[u8], &[u8])> = d.series[0]
            .labels
            .iter()
            .map(|l| (l.name.as_ref(), l.value.as_ref()))
            .collect();
        assert_eq!(
            labels,
            vec![(&b"__name__"[..], &b"up"[..]), (&b"job"[..], &b"node"[..])]
        );
        assert_eq!(
            d.series[0].samples,
            vec![proto::Sample {
                value: 1.0,
                timestamp: 1000
            }]
        );
        assert_eq!(
            d.metadata,
            vec![("up".into(), 2, "help text".into(), "seconds".into())]
        );
        let mut bad = req.clone();
        bad.timeseries[0].labels_refs = vec![1, 99];
        assert!(decode_v2(bad.encode_to_vec().into(), 0).is_err());
        let mut odd = req;
        odd.timeseries[0].labels_refs = vec![1];
        assert!(decode_v2(odd.encode_to_vec().into(), 0).is_err());
    }

    #[test]
    fn v1_labels_pass_through_as_bytes() {
        let req = proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                labels: vec![proto::Label {
                    name: Bytes::from("__name__"),
                    value: Bytes::from_static(&[0xff, 0xfe]),
                }],
                samples: vec![proto::Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let d = decode_v1(req.encode_to_vec().into(), 0).unwrap();
        assert_eq!(d.series[0].labels[0].value.as_ref(), &[0xff, 0xfe]);
        assert!(decode_v1(req.encode_to_vec().into(), 0).is_ok());
        let many = proto::WriteRequest {
            timeseries: vec![proto::TimeSeries::default(); 3],
            metadata: vec![],
        };
        assert!(decode_v1(many.encode_to_vec().into(), 2).is_err());
    }

    #[test]
    fn family_names() {
        assert_eq!(
            family_name("http_duration_seconds_bucket", 3),
            "http_duration_seconds"
        );
        assert_eq!(family_name("rpc_count", 5), "rpc");
        assert_eq!(family_name("requests_total", 1), "requests_total");
        assert_eq!(family_name("x_count", 2), "x_count");
    }
}
