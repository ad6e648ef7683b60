//! Service discovery: turns `static_configs`, `file_sd_configs` and `consul_sd_configs` into
//! target groups, as Prometheus's discovery manager does.

use std::collections::BTreeMap;

/// A label set before relabeling: `__address__`, `__meta_*`, and group labels.
pub type LabelSet = BTreeMap<String, String>;

/// A group of targets sharing labels, identified by `source` within one provider (a new
/// group with the same source replaces the old one; an empty `targets` list removes it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetGroup {
    pub source: String,
    /// One label set per target; each has `__address__`.
    pub targets: Vec<LabelSet>,
    /// Labels common to all targets of the group (targets' own labels win).
    pub labels: LabelSet,
}

pub mod consul;
pub mod file;

/// `static_configs` entries as target groups (source = index, as Prometheus numbers them).
pub fn static_groups(configs: &[(Vec<String>, LabelSet)]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, (targets, labels))| TargetGroup {
            source: i.to_string(),
            targets: targets
                .iter()
                .map(|t| LabelSet::from([("__address__".to_string(), t.clone())]))
                .collect(),
            labels: labels.clone(),
        })
        .collect()
}
