//! Debug-mode smoke test of the remote_write benchmark's data path: a tiny dataset is
//! generated, encoded into requests as the harness sends them, and decoded back. Starts no
//! servers (the benchmark itself runs from `benches/remote_write.sh`).

use std::collections::{HashMap, HashSet};

use hearth_benches::dataset::{
    self, check_labels, decode_request, encode_requests, generate, DatasetSpec,
};

const SPEC: DatasetSpec = DatasetSpec {
    hosts: 2,
    series_per_host: 10,
    scrapes: 3,
    end_ms: 1_700_000_000_000,
    seed: 42,
};

#[test]
fn tiny_dataset_round_trips_through_remote_write_encoding() {
    let hosts = generate(&SPEC);
    dataset::check_dataset(&hosts, &SPEC).unwrap();
    assert!(hosts
        .iter()
        .flat_map(|h| &h.timestamps)
        .all(|&t| t <= SPEC.end_ms && t > SPEC.end_ms - 3 * 15_000));

    for senders in [1, 2] {
        for per_request in [1, 7, 2000] {
            let enc = encode_requests(&hosts, senders, per_request);
            let want = (SPEC.hosts * SPEC.series_per_host * SPEC.scrapes) as u64;
            assert_eq!(enc.samples, want);
            assert_eq!(enc.per_sender.len(), senders);

            // Last timestamp per series, across all senders; each series must go through
            // one sender only, in time order.
            let mut last: HashMap<String, (usize, i64)> = HashMap::new();
            let mut per_host: HashMap<String, HashSet<String>> = HashMap::new();
            let mut samples = 0u64;
            for (s, bodies) in enc.per_sender.iter().enumerate() {
                for body in bodies {
                    let req = decode_request(body).unwrap();
                    assert!(!req.timeseries.is_empty());
                    assert!(req.timeseries.len() <= per_request);
                    for ts in &req.timeseries {
                        check_labels(&ts.labels).unwrap();
                        let key = dataset::show(&ts.labels);
                        let instance = ts
                            .labels
                            .iter()
                            .find(|l| l.name.as_ref() == b"instance")
                            .map(|l| String::from_utf8(l.value.to_vec()).unwrap())
                            .expect("every series has an instance label");
                        per_host.entry(instance).or_default().insert(key.clone());
                        for sample in &ts.samples {
                            samples += 1;
                            if let Some(&(sender, prev)) = last.get(&key) {
                                assert_eq!(sender, s, "{key} split across senders");
                                assert!(sample.timestamp > prev, "{key}: time goes back");
                            }
                            last.insert(key.clone(), (s, sample.timestamp));
                        }
                    }
                }
            }
            assert_eq!(samples, want);
            assert_eq!(per_host.len(), SPEC.hosts);
            // Unique label sets per host: as many distinct sets as series.
            assert!(per_host
                .values()
                .all(|set| set.len() == SPEC.series_per_host));
        }
    }
}

#[test]
fn generation_is_deterministic_and_default_size_has_unique_series() {
    let a = generate(&SPEC);
    let b = generate(&SPEC);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.timestamps, y.timestamps);
        for (s, t) in x.series.iter().zip(&y.series) {
            assert_eq!(s.labels, t.labels);
            assert_eq!(s.values, t.values);
        }
    }
    // The default per-host size, on a few hosts, still has unique label sets.
    let spec = DatasetSpec {
        hosts: 3,
        series_per_host: 500,
        scrapes: 2,
        ..SPEC
    };
    dataset::check_dataset(&generate(&spec), &spec).unwrap();
}
