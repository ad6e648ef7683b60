//! Runs scrape jobs: discovery providers per job feed target groups into a per-job sync
//! task, which relabels them into targets and starts, keeps or stops scrape loops. Applying
//! a new configuration replaces every job: loops for targets that still exist under an
//! unchanged job keep running; the rest are stopped (removed targets get stale markers).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hearth_ingest::Ingest;
use hearth_tsdb::http::DbSlot;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::discovery::{LabelSet, TargetGroup};
use crate::relabel::Relabeler;
use crate::scrape_loop::{LoopOptions, ScrapeLoop, Stop, TargetState};
use crate::target::{populate, Populated, Target, TargetDefaults};

/// Everything needed to run one job. `fingerprint` changes whenever the job's config does.
#[derive(Clone)]
pub struct JobSpec {
    pub name: String,
    pub fingerprint: String,
    pub defaults: TargetDefaults,
    pub relabel: Arc<Relabeler>,
    pub opts: LoopOptions,
    pub client: reqwest::Client,
    /// One receiver per discovery provider; each carries that provider's full group list.
    pub providers: Vec<watch::Receiver<Vec<TargetGroup>>>,
    /// Stops the providers' tasks when the job is replaced.
    pub provider_stop: Option<watch::Sender<bool>>,
    pub target_limit: usize,
}

/// One active target as the API shows it.
#[derive(Clone)]
pub struct ActiveTarget {
    pub job: String,
    pub target: Target,
    pub state: Arc<Mutex<TargetState>>,
}

/// A target dropped by relabeling.
#[derive(Clone)]
pub struct DroppedTarget {
    pub job: String,
    pub discovered: LabelSet,
}

struct RunningLoop {
    stop: watch::Sender<Stop>,
    state: Arc<Mutex<TargetState>>,
    target: Target,
}

struct RunningJob {
    fingerprint: String,
    stop_sync: watch::Sender<bool>,
    provider_stop: Option<watch::Sender<bool>>,
}

/// Shared view of all jobs for the API.
#[derive(Default)]
pub struct TargetsView {
    pub active: BTreeMap<String, Vec<ActiveTarget>>,
    pub dropped: BTreeMap<String, Vec<DroppedTarget>>,
    /// Per job: the last sync error (e.g. target_limit exceeded).
    pub errors: BTreeMap<String, String>,
}

pub struct ScrapeManager {
    db: DbSlot,
    ingest: Arc<Ingest>,
    jobs: Mutex<HashMap<String, RunningJob>>,
    /// Loops by job then target key; shared with the sync tasks.
    loops: Arc<Mutex<HashMap<String, HashMap<String, RunningLoop>>>>,
    pub view: Arc<RwLock<TargetsView>>,
}

impl ScrapeManager {
    /// Loops start once the storage in `db` is open (apply jobs after that).
    pub fn new(db: DbSlot, ingest: Arc<Ingest>) -> Arc<Self> {
        Arc::new(ScrapeManager {
            db,
            ingest,
            jobs: Mutex::new(HashMap::new()),
            loops: Arc::new(Mutex::new(HashMap::new())),
            view: Arc::new(RwLock::new(TargetsView::default())),
        })
    }

    /// Replaces the running jobs with `jobs`.
    pub fn apply(self: &Arc<Self>, jobs: Vec<JobSpec>) {
        let mut running = self.jobs.lock();
        let names: std::collections::HashSet<String> =
            jobs.iter().map(|j| j.name.clone()).collect();
        // Jobs that are gone: stop their loops with staleness.
        let gone: Vec<String> = running
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(j) = running.remove(&name) {
                let _ = j.stop_sync.send(true);
                if let Some(p) = j.provider_stop {
                    let _ = p.send(true);
                }
            }
            if let Some(loops) = self.loops.lock().remove(&name) {
                for l in loops.into_values() {
                    let _ = l.stop.send(Stop::Removed);
                }
            }
            let mut v = self.view.write();
            v.active.remove(&name);
            v.dropped.remove(&name);
            v.errors.remove(&name);
        }
        for mut job in jobs {
            if let Some(old) = running.remove(&job.name) {
                let _ = old.stop_sync.send(true);
                if let Some(p) = old.provider_stop {
                    let _ = p.send(true);
                }
                if old.fingerprint != job.fingerprint {
                    // Changed config: restart the loops (the new ones continue the series).
                    if let Some(loops) = self.loops.lock().remove(&job.name) {
                        for l in loops.into_values() {
                            let _ = l.stop.send(Stop::Replaced);
                        }
                    }
                }
            }
            let (stop_sync, stop_rx) = watch::channel(false);
            running.insert(
                job.name.clone(),
                RunningJob {
                    fingerprint: job.fingerprint.clone(),
                    stop_sync,
                    provider_stop: job.provider_stop.take(),
                },
            );
            let this = self.clone();
            tokio::spawn(async move { this.sync_job(job, stop_rx).await });
        }
    }

    /// Stops everything (shutdown): loops end without staleness, as Prometheus does on exit.
    pub fn stop_all(&self) {
        for (_, j) in self.jobs.lock().drain() {
            let _ = j.stop_sync.send(true);
            if let Some(p) = j.provider_stop {
                let _ = p.send(true);
            }
        }
        for (_, loops) in self.loops.lock().drain() {
            for l in loops.into_values() {
                let _ = l.stop.send(Stop::Replaced);
            }
        }
    }

    async fn sync_job(self: Arc<Self>, job: JobSpec, mut stop: watch::Receiver<bool>) {
        let mut providers = job.providers.clone();
        loop {
            let groups: Vec<TargetGroup> = providers
                .iter_mut()
                .flat_map(|p| p.borrow_and_update().clone())
                .collect();
            self.sync_targets(&job, &groups);
            let changed = futures_any(&mut providers);
            tokio::select! {
                _ = changed => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    fn sync_targets(&self, job: &JobSpec, groups: &[TargetGroup]) {
        let mut active: Vec<Target> = Vec::new();
        let mut dropped: Vec<DroppedTarget> = Vec::new();
        let mut error = None;
        for g in groups {
            for t in &g.targets {
                match populate(g, t, &job.defaults, &job.relabel) {
                    Ok(Populated::Active(t)) => active.push(t),
                    Ok(Populated::Dropped(d)) => dropped.push(DroppedTarget {
                        job: job.name.clone(),
                        discovered: d,
                    }),
                    Err(e) => {
                        tracing::warn!(job = %job.name, error = %e, "target dropped");
                        error = Some(e);
                    }
                }
            }
        }
        // Duplicates (the same target from two groups) scrape once.
        let mut seen = std::collections::HashSet::new();
        active.retain(|t| seen.insert(t.key()));
        if job.target_limit > 0 && active.len() > job.target_limit {
            let msg = format!(
                "target_limit exceeded (number of targets: {}, limit: {})",
                active.len(),
                job.target_limit
            );
            tracing::warn!(job = %job.name, "{msg}");
            error = Some(msg);
            active.clear();
        }
        let Some(db) = self.db.get().cloned() else {
            tracing::warn!(job = %job.name, "storage not open yet; targets not started");
            return;
        };
        let mut loops = self.loops.lock();
        let job_loops = loops.entry(job.name.clone()).or_default();
        let wanted: HashMap<String, Target> = active.into_iter().map(|t| (t.key(), t)).collect();
        job_loops.retain(|k, l| {
            if wanted.contains_key(k) {
                true
            } else {
                let _ = l.stop.send(Stop::Removed);
                false
            }
        });
        for (k, t) in &wanted {
            if job_loops.contains_key(k) {
                continue;
            }
            let (tx, rx) = watch::channel(Stop::Running);
            let state = Arc::new(Mutex::new(TargetState::default()));
            let l = ScrapeLoop {
                target: t.clone(),
                opts: job.opts.clone(),
                client: job.client.clone(),
                db: db.clone(),
                ingest: self.ingest.clone(),
                state: state.clone(),
            };
            tokio::spawn(l.run(rx));
            job_loops.insert(
                k.clone(),
                RunningLoop {
                    stop: tx,
                    state,
                    target: t.clone(),
                },
            );
        }
        let mut list: Vec<ActiveTarget> = job_loops
            .values()
            .map(|l| ActiveTarget {
                job: job.name.clone(),
                target: l.target.clone(),
                state: l.state.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.target.url.cmp(&b.target.url));
        let mut v = self.view.write();
        v.active.insert(job.name.clone(), list);
        v.dropped.insert(job.name.clone(), dropped);
        match error {
            Some(e) => v.errors.insert(job.name.clone(), e),
            None => v.errors.remove(&job.name),
        };
    }
}

/// Resolves when any provider's group list changes (never, if there are none).
async fn futures_any(providers: &mut [watch::Receiver<Vec<TargetGroup>>]) {
    if providers.is_empty() {
        return std::future::pending().await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for p in providers.iter() {
        let mut p = p.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            if p.changed().await.is_ok() {
                let _ = tx.send(()).await;
            } else {
                std::future::pending::<()>().await;
            }
        }));
    }
    drop(tx);
    let _ = rx.recv().await;
    for t in tasks {
        t.abort();
    }
    for p in providers.iter_mut() {
        p.mark_unchanged();
    }
}
