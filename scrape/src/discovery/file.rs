//! `file_sd_configs`: target groups from JSON or YAML files (globs allowed in the last path
//! element), re-read when a file changes (checked every second by modification time and
//! size) and at least every `refresh_interval`, as Prometheus's file discovery does. Each
//! target gets `__meta_filepath`. A file that fails to parse keeps its last good groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tokio::sync::watch;

use super::{LabelSet, TargetGroup};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses one file's contents (JSON if the name ends in `.json`, else YAML).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let groups: Vec<FileGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    let file = path.display().to_string();
    Ok(groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let mut labels: LabelSet = g.labels;
            labels.insert("__meta_filepath".into(), file.clone());
            TargetGroup {
                source: format!("{file}:{i}"),
                targets: g
                    .targets
                    .into_iter()
                    .map(|t| LabelSet::from([("__address__".to_string(), t)]))
                    .collect(),
                labels,
            }
        })
        .collect())
}

/// Expands a pattern whose last element may contain `*` and `?`.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().is_some_and(|n| {
                        glob_match(name.as_bytes(), n.to_string_lossy().as_bytes())
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&p[1..], s) || (!s.is_empty() && glob_match(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// Watches `patterns` until `stop` flips to true, sending the full group list on changes.
pub async fn run(
    patterns: Vec<PathBuf>,
    refresh: Duration,
    tx: watch::Sender<Vec<TargetGroup>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_good: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
    let mut stamps: BTreeMap<PathBuf, Stamp> = BTreeMap::new();
    let mut last_full = Instant::now() - refresh;
    loop {
        let files: Vec<PathBuf> = patterns.iter().flat_map(|p| expand(p)).collect();
        let full = last_full.elapsed() >= refresh;
        let mut changed = full || files.len() != stamps.len();
        let mut new_stamps = BTreeMap::new();
        for f in &files {
            let s = stamp(f);
            if stamps.get(f) != Some(&s) {
                changed = true;
            }
            new_stamps.insert(f.clone(), s);
        }
        if changed {
            if full {
                last_full = Instant::now();
            }
            last_good.retain(|p, _| files.contains(p));
            for f in &files {
                match std::fs::read_to_string(f)
                    .map_err(|e| e.to_string())
                    .and_then(|t| parse_file(f, &t))
                {
                    Ok(g) => {
                        last_good.insert(f.clone(), g);
                    }
                    Err(e) => {
                        tracing::error!(file = %f.display(), error = %e, "file_sd: keeping the last good targets of this file");
                    }
                }
            }
            let all: Vec<TargetGroup> = last_good.values().flatten().cloned().collect();
            if *tx.borrow() != all {
                let _ = tx.send(all);
            }
        }
        stamps = new_stamps;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json_and_yaml_with_filepath() {
        let j = parse_file(
            Path::new("/etc/t/a.json"),
            r#"[{"targets":["h1:9100","h2:9100"],"labels":{"env":"lab"}}]"#,
        )
        .unwrap();
        assert_eq!(j[0].targets.len(), 2);
        assert_eq!(j[0].labels["env"], "lab");
        assert_eq!(j[0].labels["__meta_filepath"], "/etc/t/a.json");
        assert_eq!(j[0].source, "/etc/t/a.json:0");
        let y = parse_file(Path::new("b.yml"), "- targets: [\"x:1\"]\n").unwrap();
        assert_eq!(y[0].targets[0]["__address__"], "x:1");
        assert!(parse_file(Path::new("c.json"), "{").is_err());
        assert!(parse_file(Path::new("c.yml"), "- targetz: []\n").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*.json", b"nodes.json"));
        assert!(!glob_match(b"*.json", b"nodes.yml"));
        assert!(glob_match(b"n?des*", b"nodes.yml"));
    }
}

#[cfg(test)]
mod watch_tests {
    use super::*;

    #[tokio::test]
    async fn watcher_picks_up_changes_and_keeps_last_good_on_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nodes.json");
        std::fs::write(&f, r#"[{"targets":["a:1"]}]"#).unwrap();
        let (tx, mut rx) = watch::channel(Vec::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            vec![dir.path().join("*.json")],
            Duration::from_secs(300),
            tx,
            stop_rx,
        ));
        let addrs = |g: &Vec<TargetGroup>| -> Vec<String> {
            g.iter()
                .flat_map(|g| g.targets.iter().map(|t| t["__address__"].clone()))
                .collect()
        };
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|g| addrs(g) == ["a:1"]))
            .await
            .expect("initial read")
            .unwrap();
        // A changed file is re-read within about a second, not only at refresh_interval.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::write(&f, r#"[{"targets":["a:1","b:2"]}]"#).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|g| addrs(g).len() == 2))
            .await
            .expect("change seen")
            .unwrap();
        // A new file matching the glob is added; a broken file keeps its last good groups.
        std::fs::write(dir.path().join("more.json"), r#"[{"targets":["c:3"]}]"#).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|g| addrs(g).len() == 3))
            .await
            .expect("new file seen")
            .unwrap();
        std::fs::write(&f, "{ not json").unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(addrs(&rx.borrow()).len(), 3);
        let _ = stop_tx.send(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
