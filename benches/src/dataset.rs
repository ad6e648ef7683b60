//! A deterministic node-exporter-like dataset and its remote_write encoding.
//!
//! Every host exposes the same kind of series a real `node_exporter` does (CPU, memory,
//! filesystems, disks, network interfaces, interrupts), scraped every 15 s with a few ms of
//! jitter. The same seed always gives the same labels and values, so two runs (and two
//! servers within a run) see byte-identical requests.

use std::collections::HashSet;

use hearth_ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Scrape interval of the simulated Prometheus, in milliseconds.
pub const SCRAPE_INTERVAL_MS: i64 = 15_000;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSpec {
    pub hosts: usize,
    pub series_per_host: usize,
    pub scrapes: usize,
    /// No timestamp is later than this (Unix milliseconds); the first scrape is
    /// `scrapes × 15 s` before it.
    pub end_ms: i64,
    pub seed: u64,
}

/// One scraped target.
#[derive(Debug, Clone)]
pub struct Host {
    /// `host-NNN:9100`.
    pub instance: String,
    /// Scrape timestamps in Unix milliseconds, strictly increasing; one per scrape.
    pub timestamps: Vec<i64>,
    /// Exactly `series_per_host` series; label sets unique within the host.
    pub series: Vec<Series>,
}

/// One series of a host with a value for every scrape.
#[derive(Debug, Clone)]
pub struct Series {
    /// Sorted by name, names unique, `__name__` first.
    pub labels: Vec<Label>,
    /// One value per scrape (same length as [`Host::timestamps`]).
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Monotonic, grows by about `rate` per second with float increments.
    Counter { rate: f64 },
    /// Random walk around its start value; `step` is the largest move per scrape.
    Gauge { step: f64, integral: bool },
    /// The same value at every scrape (`node_boot_time_seconds`, `*_info`, sizes).
    Constant,
}

/// A series before values are drawn: its metric name, its labels besides
/// `__name__`/`instance`/`job`, its kind and its first value.
struct Def {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    kind: Kind,
    start: f64,
}

fn def(name: &'static str, labels: Vec<(&'static str, String)>, kind: Kind, start: f64) -> Def {
    Def {
        name,
        labels,
        kind,
        start,
    }
}

const MEMORY_GAUGES: &[&str] = &[
    "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_SwapCached_bytes",
    "node_memory_Active_bytes",
    "node_memory_Inactive_bytes",
    "node_memory_Active_anon_bytes",
    "node_memory_Inactive_anon_bytes",
    "node_memory_Active_file_bytes",
    "node_memory_Inactive_file_bytes",
    "node_memory_Unevictable_bytes",
    "node_memory_Mlocked_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_SwapFree_bytes",
    "node_memory_Dirty_bytes",
    "node_memory_Writeback_bytes",
    "node_memory_AnonPages_bytes",
    "node_memory_Mapped_bytes",
    "node_memory_Shmem_bytes",
    "node_memory_KReclaimable_bytes",
    "node_memory_Slab_bytes",
    "node_memory_SReclaimable_bytes",
    "node_memory_SUnreclaim_bytes",
    "node_memory_KernelStack_bytes",
    "node_memory_PageTables_bytes",
    "node_memory_CommitLimit_bytes",
    "node_memory_Committed_AS_bytes",
    "node_memory_VmallocTotal_bytes",
    "node_memory_VmallocUsed_bytes",
    "node_memory_HugePages_Total",
    "node_memory_Hugepagesize_bytes",
];

const HOST_COUNTERS: &[(&str, f64)] = &[
    ("node_context_switches_total", 5_000.0),
    ("node_intr_total", 3_000.0),
    ("node_forks_total", 20.0),
    ("node_vmstat_pgfault", 10_000.0),
    ("node_vmstat_pgmajfault", 2.0),
    ("node_vmstat_pgpgin", 400.0),
    ("node_vmstat_pgpgout", 900.0),
    ("node_vmstat_pswpin", 0.1),
    ("node_vmstat_pswpout", 0.1),
    ("node_netstat_Tcp_ActiveOpens", 15.0),
    ("node_netstat_Tcp_PassiveOpens", 12.0),
    ("node_netstat_Tcp_RetransSegs", 1.5),
    ("node_netstat_Udp_InDatagrams", 60.0),
    ("node_netstat_Udp_OutDatagrams", 55.0),
];

const HOST_GAUGES: &[(&str, f64, f64)] = &[
    // (name, start, largest step per scrape)
    ("node_load1", 1.2, 0.3),
    ("node_load5", 1.1, 0.1),
    ("node_load15", 1.0, 0.05),
    ("node_procs_running", 3.0, 2.0),
    ("node_procs_blocked", 0.0, 1.0),
    ("node_entropy_available_bits", 3_500.0, 50.0),
    ("node_filefd_allocated", 9_000.0, 40.0),
    ("node_sockstat_sockets_used", 700.0, 10.0),
    ("node_sockstat_TCP_inuse", 60.0, 5.0),
    ("node_netstat_Tcp_CurrEstab", 45.0, 3.0),
    ("node_nf_conntrack_entries", 1_200.0, 30.0),
];

const CPU_MODES: &[(&str, f64)] = &[
    ("idle", 0.80),
    ("iowait", 0.01),
    ("irq", 0.001),
    ("nice", 0.002),
    ("softirq", 0.005),
    ("steal", 0.003),
    ("system", 0.05),
    ("user", 0.12),
];

const DISK_COUNTERS: &[(&str, f64)] = &[
    ("node_disk_reads_completed_total", 30.0),
    ("node_disk_writes_completed_total", 80.0),
    ("node_disk_read_bytes_total", 1.5e6),
    ("node_disk_written_bytes_total", 4.0e6),
    ("node_disk_io_time_seconds_total", 0.05),
    ("node_disk_read_time_seconds_total", 0.02),
    ("node_disk_write_time_seconds_total", 0.09),
    ("node_disk_reads_merged_total", 3.0),
    ("node_disk_writes_merged_total", 20.0),
];

const NET_COUNTERS: &[(&str, f64)] = &[
    ("node_network_receive_bytes_total", 2.0e5),
    ("node_network_transmit_bytes_total", 1.5e5),
    ("node_network_receive_packets_total", 400.0),
    ("node_network_transmit_packets_total", 350.0),
    ("node_network_receive_errs_total", 0.001),
    ("node_network_transmit_errs_total", 0.001),
    ("node_network_receive_drop_total", 0.01),
    ("node_network_transmit_drop_total", 0.002),
    ("node_network_receive_multicast_total", 0.5),
];

const IRQ_DEVICES: &[&str] = &[
    "timer",
    "i8042",
    "rtc0",
    "acpi",
    "ahci",
    "xhci_hcd",
    "virtio0",
    "virtio1",
    "nvme0q0",
    "eth0-rx-0",
    "eth0-tx-0",
];
const IRQ_NAMED: &[&str] = &[
    "NMI", "LOC", "SPU", "PMI", "IWI", "RTR", "RES", "CAL", "TLB", "TRM", "THR", "DFR", "MCE",
    "MCP", "ERR", "MIS", "PIN", "NPI", "PIW",
];

/// Every series a host could expose, in a fixed order; the host keeps the first
/// `series_per_host`. Ends with an unbounded tail of interrupt counters (as on real
/// machines with many IRQ lines) so any requested size can be met.
fn host_defs(rng: &mut StdRng, host: usize, want: usize) -> Vec<Def> {
    let mut d = Vec::with_capacity(want);
    let mem_total = f64::from(rng.random_range(4u32..=256)) * 1_073_741_824.0;
    let ncpu = [4usize, 8, 16, 32][rng.random_range(0..4)];

    d.push(def(
        "node_boot_time_seconds",
        vec![],
        Kind::Constant,
        1.7e9 + f64::from(rng.random_range(0u32..10_000_000)),
    ));
    d.push(def(
        "node_uname_info",
        vec![
            ("domainname", "(none)".into()),
            ("machine", "x86_64".into()),
            ("nodename", format!("host-{host:03}")),
            ("release", "6.1.0-18-amd64".into()),
            ("sysname", "Linux".into()),
            ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1".into()),
        ],
        Kind::Constant,
        1.0,
    ));
    for &(name, rate) in HOST_COUNTERS {
        let start = rng.random_range(1e3..1e9);
        d.push(def(name, vec![], Kind::Counter { rate }, start));
    }
    for &(name, start, step) in HOST_GAUGES {
        let integral = !name.starts_with("node_load");
        d.push(def(name, vec![], Kind::Gauge { step, integral }, start));
    }
    for &name in MEMORY_GAUGES {
        let frac = rng.random_range(0.01..0.6);
        let (kind, start) = if name.contains("Total") || name.contains("Limit") {
            (Kind::Constant, mem_total)
        } else {
            let step = mem_total * 0.001;
            let integral = true;
            (
                Kind::Gauge { step, integral },
                (mem_total * frac / 4096.0).round() * 4096.0,
            )
        };
        d.push(def(name, vec![], kind, start));
    }

    let filesystems = [
        ("/dev/vda1", "ext4", "/"),
        ("/dev/vda15", "vfat", "/boot/efi"),
        ("tmpfs", "tmpfs", "/run"),
        ("/dev/vdb1", "xfs", "/var/lib/data"),
    ];
    for &(device, fstype, mountpoint) in &filesystems[..rng.random_range(2..=4)] {
        let labels = || {
            vec![
                ("device", device.to_string()),
                ("fstype", fstype.to_string()),
                ("mountpoint", mountpoint.to_string()),
            ]
        };
        let size = f64::from(rng.random_range(1u32..2_000)) * 1_073_741_824.0;
        let files = f64::from(rng.random_range(100_000u32..50_000_000));
        let g = Kind::Gauge {
            step: size * 1e-5,
            integral: true,
        };
        d.push(def(
            "node_filesystem_size_bytes",
            labels(),
            Kind::Constant,
            size,
        ));
        d.push(def("node_filesystem_avail_bytes", labels(), g, size * 0.4));
        d.push(def("node_filesystem_free_bytes", labels(), g, size * 0.45));
        d.push(def(
            "node_filesystem_files",
            labels(),
            Kind::Constant,
            files,
        ));
        let g = Kind::Gauge {
            step: 20.0,
            integral: true,
        };
        d.push(def("node_filesystem_files_free", labels(), g, files * 0.8));
        d.push(def(
            "node_filesystem_readonly",
            labels(),
            Kind::Constant,
            0.0,
        ));
        d.push(def(
            "node_filesystem_device_error",
            labels(),
            Kind::Constant,
            0.0,
        ));
    }

    let disks = ["vda", "vdb", "nvme0n1", "nvme1n1"];
    for &disk in &disks[..rng.random_range(1..=4)] {
        for &(name, rate) in DISK_COUNTERS {
            let start = rng.random_range(1e3..1e12);
            let labels = vec![("device", disk.to_string())];
            d.push(def(name, labels, Kind::Counter { rate }, start));
        }
        let g = Kind::Gauge {
            step: 2.0,
            integral: true,
        };
        d.push(def(
            "node_disk_io_now",
            vec![("device", disk.into())],
            g,
            0.0,
        ));
    }

    let nics = ["lo", "eth0", "eth1", "docker0", "veth1a2b3c"];
    for &nic in &nics[..rng.random_range(2..=5)] {
        for &(name, rate) in NET_COUNTERS {
            let start = rng.random_range(1e3..1e12);
            let labels = vec![("device", nic.to_string())];
            d.push(def(name, labels, Kind::Counter { rate }, start));
        }
        let labels = || vec![("device", nic.to_string())];
        d.push(def("node_network_up", labels(), Kind::Constant, 1.0));
        d.push(def(
            "node_network_mtu_bytes",
            labels(),
            Kind::Constant,
            1500.0,
        ));
        d.push(def(
            "node_network_speed_bytes",
            labels(),
            Kind::Constant,
            1.25e9,
        ));
    }

    for cpu in 0..ncpu {
        for &(mode, share) in CPU_MODES {
            let labels = vec![("cpu", cpu.to_string()), ("mode", mode.to_string())];
            let start = rng.random_range(1e3..1e7) * share;
            let rate = share * rng.random_range(0.5..1.5);
            d.push(def(
                "node_cpu_seconds_total",
                labels,
                Kind::Counter { rate },
                start,
            ));
        }
        let g = Kind::Gauge {
            step: 2e8,
            integral: true,
        };
        let labels = vec![("cpu", cpu.to_string())];
        d.push(def("node_cpu_scaling_frequency_hertz", labels, g, 2.4e9));
    }

    // The unbounded tail: one `node_interrupts_total` per (IRQ line, CPU).
    let mut irq = 0usize;
    while d.len() < want {
        let (typ, devices, info) = match IRQ_NAMED.get(irq) {
            Some(&named) => (
                named.to_string(),
                String::new(),
                "Local timer interrupts".into(),
            ),
            None => {
                let n = irq - IRQ_NAMED.len();
                let dev = IRQ_DEVICES[n % IRQ_DEVICES.len()];
                (n.to_string(), dev.to_string(), "IO-APIC".to_string())
            }
        };
        for cpu in 0..ncpu {
            let mut labels = vec![("cpu", cpu.to_string())];
            // An empty value is an absent label in Prometheus's data model.
            if !devices.is_empty() {
                labels.push(("devices", devices.clone()));
            }
            labels.push(("info", info.clone()));
            labels.push(("type", typ.clone()));
            let rate = rng.random_range(0.0..50.0);
            let start = rng.random_range(0.0..1e8);
            d.push(def(
                "node_interrupts_total",
                labels,
                Kind::Counter { rate },
                start,
            ));
        }
        irq += 1;
    }
    d.truncate(want);
    d
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
    }
}

/// Generates the dataset; the same spec always gives the same dataset.
pub fn generate(spec: &DatasetSpec) -> Vec<Host> {
    let scrape0 = spec.end_ms - spec.scrapes as i64 * SCRAPE_INTERVAL_MS;
    (0..spec.hosts)
        .map(|h| {
            let mut rng = StdRng::seed_from_u64(spec.seed ^ (h as u64).wrapping_mul(0x9E37_79B9));
            let instance = format!("host-{h:03}:9100");
            // Prometheus spreads targets over the interval; each scrape starts a few ms late.
            let offset = rng.random_range(0..SCRAPE_INTERVAL_MS - 1_000);
            let timestamps = (0..spec.scrapes as i64)
                .map(|k| scrape0 + k * SCRAPE_INTERVAL_MS + offset + rng.random_range(0..5))
                .collect();
            let series = host_defs(&mut rng, h, spec.series_per_host)
                .into_iter()
                .map(|d| {
                    let mut labels = vec![
                        label("__name__", d.name),
                        label("instance", &instance),
                        label("job", "node"),
                    ];
                    labels.extend(d.labels.iter().map(|(n, v)| label(n, v)));
                    labels.sort_by(|a, b| a.name.cmp(&b.name));
                    let values = values(&mut rng, d.kind, d.start, spec.scrapes);
                    Series { labels, values }
                })
                .collect();
            Host {
                instance,
                timestamps,
                series,
            }
        })
        .collect()
}

fn values(rng: &mut StdRng, kind: Kind, start: f64, n: usize) -> Vec<f64> {
    let mut v = start;
    (0..n)
        .map(|_| {
            let out = v;
            match kind {
                Kind::Counter { rate } => {
                    v += rate * 15.0 * rng.random_range(0.5..1.5);
                }
                Kind::Gauge { step, integral } => {
                    v = (v + rng.random_range(-step..=step)).max(0.0);
                    if integral {
                        v = v.round();
                    }
                }
                Kind::Constant => {}
            }
            out
        })
        .collect()
}

/// Pre-encoded remote_write 1.0 requests, one list per sender.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// `per_sender[s]` is what sender `s` sends, in order. Each body is a snappy
    /// (block format) `prometheus.WriteRequest`.
    pub per_sender: Vec<Vec<Vec<u8>>>,
    pub samples: u64,
    pub series: u64,
    pub requests: u64,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
}

/// Encodes `hosts` into requests of at most `samples_per_request` samples, split among
/// `senders`.
///
/// Hosts are dealt round-robin to senders (host `h` to sender `h % senders`), the way
/// Prometheus shards its queue by series: each series then goes through exactly one sender,
/// which sends scrape `k` of its hosts before scrape `k + 1`, so every series arrives in time
/// order however the senders interleave. With `hosts` a multiple of `senders` every sender
/// has the same work. Each sample is its own `TimeSeries`, as Prometheus sends them.
pub fn encode_requests(hosts: &[Host], senders: usize, samples_per_request: usize) -> Encoded {
    assert!(
        senders > 0 && samples_per_request > 0,
        "BUG: zero senders or batch size"
    );
    let mut out = Encoded {
        per_sender: vec![Vec::new(); senders],
        ..Encoded::default()
    };
    let scrapes = hosts.first().map_or(0, |h| h.timestamps.len());
    let mut raw = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for (s, bodies) in out.per_sender.iter_mut().enumerate() {
        let mine: Vec<&Host> = hosts.iter().skip(s).step_by(senders).collect();
        let mut req = WriteRequest::default();
        let mut flush = |req: &mut WriteRequest, bodies: &mut Vec<Vec<u8>>| {
            if req.timeseries.is_empty() {
                return;
            }
            raw.clear();
            req.encode(&mut raw)
                .expect("BUG: Vec<u8> has unlimited capacity");
            let body = encoder
                .compress_vec(&raw)
                .expect("BUG: snappy input too large");
            out.raw_bytes += raw.len() as u64;
            out.compressed_bytes += body.len() as u64;
            out.requests += 1;
            bodies.push(body);
            req.timeseries.clear();
        };
        for k in 0..scrapes {
            for host in &mine {
                for series in &host.series {
                    req.timeseries.push(TimeSeries {
                        labels: series.labels.clone(),
                        samples: vec![Sample {
                            value: series.values[k],
                            timestamp: host.timestamps[k],
                        }],
                        ..TimeSeries::default()
                    });
                    if req.timeseries.len() == samples_per_request {
                        flush(&mut req, bodies);
                    }
                }
            }
        }
        flush(&mut req, bodies);
        out.series += mine.iter().map(|h| h.series.len() as u64).sum::<u64>();
        out.samples += mine
            .iter()
            .map(|h| (h.series.len() * h.timestamps.len()) as u64)
            .sum::<u64>();
    }
    out
}

/// The unit `node_exporter` reports series `name` in: it reads kernel counters in jiffies
/// (USER_HZ = 100: `node_cpu_seconds_total`, `/proc/loadavg`), milliseconds (disk times),
/// 512-byte sectors (disk bytes), kB (`/proc/meminfo`), file-system blocks, kHz (CPU
/// frequency) or whole events (everything else here). `None` for a series not from this
/// generator's catalogue.
pub fn exporter_resolution(name: &str) -> Option<f64> {
    Some(match name {
        "node_cpu_seconds_total" | "node_load1" | "node_load5" | "node_load15" => 0.01,
        n if n.starts_with("node_disk_") && n.ends_with("_seconds_total") => 0.001,
        "node_disk_read_bytes_total" | "node_disk_written_bytes_total" => 512.0,
        n if n.starts_with("node_memory_") && n.ends_with("_bytes") => 1024.0,
        n if n.starts_with("node_filesystem_") && n.ends_with("_bytes") => 4096.0,
        "node_cpu_scaling_frequency_hertz" => 1000.0,
        n if n.starts_with("node_") => 1.0,
        _ => return None,
    })
}

/// Rounds every value to the unit `node_exporter` reports that series in
/// ([`exporter_resolution`]), as the kernel hands it out: `node_cpu_seconds_total` moves in
/// steps of 0.01, disk bytes in sectors, packet counts in whole packets. [`generate`] draws
/// full-precision floats, which no real exporter sends and which cost every TSDB more bytes
/// per sample; a storage comparison wants the real shape. Rounding is monotonic, so counters
/// stay counters. Fractions are rounded as the exporter divides (`ticks / 100.0`), so values
/// are the same floats it would send.
pub fn round_like_node_exporter(hosts: &mut [Host]) {
    for host in hosts {
        for series in &mut host.series {
            let Some(res) = exporter_resolution(&String::from_utf8_lossy(&series.labels[0].value))
            else {
                continue;
            };
            if res < 1.0 {
                let per_unit = (1.0 / res).round();
                for v in &mut series.values {
                    *v = (*v * per_unit).round() / per_unit;
                }
            } else {
                for v in &mut series.values {
                    *v = (*v / res).round() * res;
                }
            }
        }
    }
}

/// Removes the per-scrape jitter [`generate`] draws: each host's scrapes exactly
/// [`SCRAPE_INTERVAL_MS`] apart from its first. Prometheus aligns its scrape
/// timestamps this way when they are within `--scrape.timestamp-tolerance` (2 ms) of the
/// schedule, which lets delta-of-delta timestamp encodings store one bit per sample.
pub fn align_timestamps(hosts: &mut [Host]) {
    for host in hosts {
        let Some(&first) = host.timestamps.first() else {
            continue;
        };
        for (k, t) in host.timestamps.iter_mut().enumerate() {
            *t = first + k as i64 * SCRAPE_INTERVAL_MS;
        }
    }
}

/// Remote_write bodies in time order for backfilling a whole span, split among senders
/// that keep pace with each other.
#[derive(Debug, Clone, Default)]
pub struct TimeOrdered {
    /// `per_sender[s][g]` are the bodies sender `s` posts for time slice `g` (every sender
    /// has the same number of slices). A sender starts slice `g + 1` only when every sender
    /// finished slice `g`, so all series advance together, as a receiver without an
    /// out-of-order window (Prometheus) needs. Each body is a snappy (block format)
    /// `prometheus.WriteRequest`.
    pub per_sender: Vec<Vec<Vec<Vec<u8>>>>,
    pub samples: u64,
    pub series: u64,
    pub requests: u64,
    pub raw_bytes: u64,
    pub compressed_bytes: u64,
}

/// Encodes `hosts` for backfilling in time order: time slices of `scrapes_per_series`
/// scrapes, each `TimeSeries` carrying one series' samples of one slice (one sample per
/// `TimeSeries`, as a live Prometheus sends, would make every server re-read the labels
/// per sample and backfilling days take many times longer). Hosts are dealt round-robin
/// to `senders` as in [`encode_requests`]; bodies hold at least `samples_per_request`
/// samples except the last of a slice, and never span slices. Senders are encoded in
/// parallel.
pub fn encode_time_ordered(
    hosts: &[Host],
    senders: usize,
    scrapes_per_series: usize,
    samples_per_request: usize,
) -> TimeOrdered {
    assert!(
        senders > 0 && scrapes_per_series > 0 && samples_per_request > 0,
        "BUG: zero senders, slice or batch size"
    );
    let scrapes = hosts.first().map_or(0, |h| h.timestamps.len());
    let encoded: Vec<TimeOrdered> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..senders)
            .map(|s| {
                let mine: Vec<&Host> = hosts.iter().skip(s).step_by(senders).collect();
                sc.spawn(move || {
                    encode_sender(&mine, scrapes, scrapes_per_series, samples_per_request)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("encoder thread panicked"))
            .collect()
    });
    let mut out = TimeOrdered::default();
    for e in encoded {
        out.samples += e.samples;
        out.series += e.series;
        out.requests += e.requests;
        out.raw_bytes += e.raw_bytes;
        out.compressed_bytes += e.compressed_bytes;
        out.per_sender.extend(e.per_sender);
    }
    out
}

/// One sender's share of [`encode_time_ordered`] (`per_sender` has one entry).
fn encode_sender(
    hosts: &[&Host],
    scrapes: usize,
    scrapes_per_series: usize,
    samples_per_request: usize,
) -> TimeOrdered {
    let mut out = TimeOrdered::default();
    let mut slices = Vec::new();
    let mut raw = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    let mut req = WriteRequest::default();
    for g0 in (0..scrapes).step_by(scrapes_per_series) {
        let ks = g0..(g0 + scrapes_per_series).min(scrapes);
        let mut bodies = Vec::new();
        let mut in_req = 0;
        for host in hosts {
            for series in &host.series {
                req.timeseries.push(TimeSeries {
                    labels: series.labels.clone(),
                    samples: ks
                        .clone()
                        .map(|k| Sample {
                            value: series.values[k],
                            timestamp: host.timestamps[k],
                        })
                        .collect(),
                    ..TimeSeries::default()
                });
                in_req += ks.len();
                if in_req >= samples_per_request {
                    in_req = 0;
                    bodies.push(encode_body(&mut req, &mut raw, &mut encoder, &mut out));
                }
            }
        }
        if !req.timeseries.is_empty() {
            bodies.push(encode_body(&mut req, &mut raw, &mut encoder, &mut out));
        }
        out.samples += (hosts.iter().map(|h| h.series.len()).sum::<usize>() * ks.len()) as u64;
        slices.push(bodies);
    }
    out.series = hosts.iter().map(|h| h.series.len() as u64).sum();
    out.per_sender = vec![slices];
    out
}

/// Encodes and clears `req`, counting it in `out`.
fn encode_body(
    req: &mut WriteRequest,
    raw: &mut Vec<u8>,
    encoder: &mut snap::raw::Encoder,
    out: &mut TimeOrdered,
) -> Vec<u8> {
    raw.clear();
    req.encode(raw)
        .expect("BUG: Vec<u8> has unlimited capacity");
    let body = encoder
        .compress_vec(raw)
        .expect("BUG: snappy input too large");
    out.raw_bytes += raw.len() as u64;
    out.compressed_bytes += body.len() as u64;
    out.requests += 1;
    req.timeseries.clear();
    body
}

/// Decodes one body made by [`encode_requests`].
pub fn decode_request(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// Checks what the generator promises: per host, label sets sorted by name with unique
/// names, and unique across the host's series; `values` and `timestamps` as long as the
/// scrape count; timestamps strictly increasing. Returns the first violation.
pub fn check_dataset(hosts: &[Host], spec: &DatasetSpec) -> Result<(), String> {
    if hosts.len() != spec.hosts {
        return Err(format!("{} hosts, want {}", hosts.len(), spec.hosts));
    }
    for host in hosts {
        let h = &host.instance;
        if host.series.len() != spec.series_per_host {
            return Err(format!("{h}: {} series", host.series.len()));
        }
        if host.timestamps.len() != spec.scrapes {
            return Err(format!("{h}: {} timestamps", host.timestamps.len()));
        }
        if host.timestamps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("{h}: timestamps not increasing"));
        }
        let mut seen = HashSet::new();
        for s in &host.series {
            check_labels(&s.labels).map_err(|e| format!("{h}: {e}"))?;
            if !seen.insert(show(&s.labels)) {
                return Err(format!("{h}: duplicate series {}", show(&s.labels)));
            }
            if s.values.len() != spec.scrapes {
                return Err(format!(
                    "{h}: {} has {} values",
                    show(&s.labels),
                    s.values.len()
                ));
            }
        }
    }
    Ok(())
}

/// Label names strictly increasing (so sorted and unique), `__name__` first.
pub fn check_labels(labels: &[Label]) -> Result<(), String> {
    if labels
        .first()
        .is_none_or(|l| l.name.as_ref() != b"__name__")
    {
        return Err(format!("{} does not start with __name__", show(labels)));
    }
    if labels.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err(format!("{} not sorted/unique by name", show(labels)));
    }
    Ok(())
}

/// `{a="b", ...}` for error messages.
pub fn show(labels: &[Label]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|l| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(&l.name),
                String::from_utf8_lossy(&l.value)
            )
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}
