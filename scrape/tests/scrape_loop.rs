//! Scrape-loop semantics against a target whose body the test controls: staleness when a
//! series disappears, label conflicts (`exported_` vs `honor_labels`), `honor_timestamps`,
//! the synthetic series, and limits failing the scrape with `up=0` and the reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use hearth_ingest::{Ingest, IngestConfig};
use hearth_scrape::discovery::static_groups;
use hearth_scrape::manager::ScrapeManager;
use hearth_scrape::scrape_loop::Auth;
use hearth_scrape::setup::{build_job, JobParams, TlsParams};
use hearth_tsdb::http::DbSlot;
use hearth_tsdb::{Db, MatchOp, Matcher, StorageConfig, STALE_NAN_BITS};

const INTERVAL: Duration = Duration::from_millis(400);

struct Target {
    addr: String,
    body: Arc<Mutex<String>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn target(body: &str) -> Target {
    let body = Arc::new(Mutex::new(body.to_string()));
    let b = body.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let b = b.clone();
            async move { b.lock().unwrap().clone() }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Target {
        addr,
        body,
        _task: task,
    }
}

fn params(name: &str, addr: &str) -> JobParams {
    JobParams {
        name: name.into(),
        scheme: "http".into(),
        metrics_path: "/metrics".into(),
        interval: INTERVAL,
        timeout: INTERVAL,
        params: BTreeMap::new(),
        honor_labels: false,
        honor_timestamps: true,
        relabel: vec![],
        metric_relabel: vec![],
        sample_limit: 0,
        label_limit: 0,
        label_name_length_limit: 0,
        label_value_length_limit: 0,
        target_limit: 0,
        body_size_limit: 0,
        auth: Auth::None,
        tls: TlsParams::default(),
        proxy_url: None,
        follow_redirects: true,
        static_groups: static_groups(&[(vec![addr.to_string()], BTreeMap::new())]),
        file_sd: vec![],
        consul: vec![],
    }
}

fn setup() -> (tempfile::TempDir, Arc<Db>, Arc<ScrapeManager>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::open(&StorageConfig {
            path: dir.path().to_path_buf(),
            ..StorageConfig::default()
        })
        .unwrap(),
    );
    let slot: DbSlot = Arc::new(OnceLock::new());
    let _ = slot.set(db.clone());
    let ingest = Ingest::new(slot.clone(), IngestConfig::default());
    (dir, db, ScrapeManager::new(slot, ingest))
}

/// (labels as "k=v,..." sorted, samples) of series with `__name__` = `name`.
fn series(db: &Db, name: &str) -> Vec<(String, Vec<(i64, u64)>)> {
    let m = Matcher::new(MatchOp::Equal, "__name__", name).unwrap();
    db.querier(i64::MIN, i64::MAX)
        .select(&[m])
        .unwrap()
        .iter()
        .map(|s| {
            let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let samples = s
                .samples()
                .unwrap()
                .into_iter()
                .map(|(t, v)| (t, v.to_bits()))
                .collect();
            (l.join(","), samples)
        })
        .collect()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_label_conflicts_timestamps_and_report_series() {
    let (_dir, db, mgr) = setup();
    let t = target("# TYPE a counter\na_total{job=\"theirs\",x=\"1\"} 1\nb 2\nc 3 1234\n").await;
    mgr.apply(vec![build_job(params("j", &t.addr)).unwrap()]);
    wait_for("first scrape", || !series(&db, "b").is_empty()).await;
    // honor_labels=false: the scraped job label becomes exported_job, the target's wins.
    let a = series(&db, "a_total");
    assert_eq!(
        a[0].0,
        format!(
            "__name__=a_total,exported_job=theirs,instance={},job=j,x=1",
            t.addr
        )
    );
    // honor_timestamps: c keeps its own timestamp.
    assert_eq!(series(&db, "c")[0].1[0].0, 1234);
    let up = series(&db, "up");
    assert_eq!(up[0].1.last().unwrap().1, 1f64.to_bits());
    assert_eq!(
        series(&db, "scrape_samples_scraped")[0].1[0].1,
        3f64.to_bits()
    );
    assert_eq!(series(&db, "scrape_series_added")[0].1[0].1, 3f64.to_bits());

    // b disappears from the body: its series ends with a stale marker; a continues.
    *t.body.lock().unwrap() = "# TYPE a counter\na_total{job=\"theirs\",x=\"1\"} 2\n".into();
    wait_for("b stale", || {
        series(&db, "b")[0].1.last().unwrap().1 == STALE_NAN_BITS
    })
    .await;
    let a = series(&db, "a_total");
    assert_eq!(a[0].1.last().unwrap().1, 2f64.to_bits());
    // The target is removed: everything it wrote, report series included, goes stale.
    mgr.apply(vec![]);
    wait_for("a and up stale after removal", || {
        series(&db, "a_total")[0].1.last().unwrap().1 == STALE_NAN_BITS
            && series(&db, "up")[0].1.last().unwrap().1 == STALE_NAN_BITS
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_and_limits_fail_the_scrape() {
    let (_dir, db, mgr) = setup();
    let t = target("m{job=\"theirs\"} 1\nn 2\no 3\n").await;
    let mut honor = params("honor", &t.addr);
    honor.honor_labels = true;
    let mut limited = params("limited", &t.addr);
    limited.sample_limit = 2;
    let mut labels = params("labels", &t.addr);
    labels.label_limit = 2;
    // Distinct targets per job: the same address under three jobs.
    mgr.apply(vec![
        build_job(honor).unwrap(),
        build_job(limited).unwrap(),
        build_job(labels).unwrap(),
    ]);
    wait_for("all jobs scraped", || series(&db, "up").len() == 3).await;
    let m = series(&db, "m");
    assert!(
        m.iter()
            .any(|(l, _)| l.contains("job=theirs") && !l.contains("exported_job")),
        "{m:?}"
    );
    let up: BTreeMap<String, u64> = series(&db, "up")
        .into_iter()
        .map(|(l, s)| (l, s.last().unwrap().1))
        .collect();
    for (l, v) in &up {
        let want = if l.contains("job=honor") { 1.0f64 } else { 0.0 };
        assert_eq!(*v, want.to_bits(), "{l}");
    }
    let view = mgr.view.read();
    let err = |job: &str| view.active[job][0].state.lock().unwrap_or_clone_err();
    assert!(
        err("limited").contains("sample limit exceeded"),
        "{}",
        err("limited")
    );
    assert!(
        err("labels").contains("label_limit exceeded"),
        "{}",
        err("labels")
    );
    // Nothing of a failed scrape is stored.
    assert!(series(&db, "o")
        .iter()
        .all(|(l, _)| l.contains("job=honor")));
}

trait LastError {
    fn unwrap_or_clone_err(&self) -> String;
}

impl LastError for hearth_scrape::scrape_loop::TargetState {
    fn unwrap_or_clone_err(&self) -> String {
        self.last_error.clone()
    }
}
