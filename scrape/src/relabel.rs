//! `relabel_configs` / `metric_relabel_configs` with Prometheus's semantics
//! (`model/relabel/relabel.go`): the same defaults, the same validation, the same
//! fully-anchored RE2 regexes, the same `$1`/`${name}` template expansion as Go's
//! `Regexp.Expand`, and the same MD5-based `hashmod`, so a rule copied from a prometheus.yml
//! keeps or drops exactly the targets and series it did under Prometheus.
//!
//! Label names follow hearth's storage rules (Prometheus's "legacy" scheme,
//! `[a-zA-Z_][a-zA-Z0-9_]*`, see `hearth_tsdb::labels`): a `replace` whose expanded
//! `target_label` is not such a name is skipped, as Prometheus does under that scheme.
//!
//! Known differences from Go, all on non-ASCII input only:
//! * `\d`, `\w`, `\s`, `\b` are Unicode-aware in the `regex` crate and ASCII-only in Go.
//! * `lowercase`/`uppercase` use Rust's full case mapping (`ß` → `SS`); Go maps rune by rune
//!   with simple case folding (`ß` stays `ß`).

use std::fmt;
use std::sync::LazyLock;

use hearth_tsdb::labels::is_valid_label_name;
use md5::{Digest, Md5};
use regex::{Captures, Regex};
use serde::{Deserialize, Deserializer};

/// Why a relabel rule was refused. Messages match Prometheus's where it has one, so users
/// can search for them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelabelError {
    #[error("invalid regex {regex:?}: {source}")]
    InvalidRegex {
        regex: String,
        #[source]
        source: regex::Error,
    },
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ZeroModulus,
    #[error("relabel configuration for {action} action requires 'target_label' value")]
    MissingTargetLabel { action: Action },
    #[error("{target_label:?} is invalid 'target_label' for {action} action")]
    InvalidTargetLabel {
        action: Action,
        target_label: String,
    },
    #[error("'replacement' can not be set for {action} action")]
    ReplacementNotAllowed { action: Action },
    #[error("{replacement:?} is invalid 'replacement' for {action} action")]
    InvalidReplacement { action: Action, replacement: String },
    #[error(
        "{action} action requires only 'source_labels' and `target_label`, and no other fields"
    )]
    OnlySourceAndTarget { action: Action },
    #[error("{action} action requires only 'regex', and no other fields")]
    OnlyRegex { action: Action },
    #[error("{name:?} is not a valid label name in 'source_labels'")]
    InvalidSourceLabel { name: String },
    /// Wraps the error of one rule of a list with its position (0-based), so a config error
    /// can point at the rule.
    #[error("relabel rule #{index}: {source}")]
    Rule {
        index: usize,
        #[source]
        source: Box<RelabelError>,
    },
}

/// What a rule does. YAML spelling is the lowercase name; like Prometheus, any case is
/// accepted (`Replace`, `LABELMAP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Writes the expanded `replacement` to the expanded `target_label` if `regex` matches.
    #[default]
    Replace,
    /// Drops the target/series unless `regex` matches the joined source values.
    Keep,
    /// Drops the target/series if `regex` matches the joined source values.
    Drop,
    /// Drops the target/series unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the target/series if the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to MD5(joined source values) mod `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the lowercased joined source values.
    Lowercase,
    /// Sets `target_label` to the uppercased joined source values.
    Uppercase,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.to_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown relabel action {s:?}")))
    }
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}
fn default_regex() -> String {
    DEFAULT_REGEX.to_string()
}
fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_string()
}

/// A key written with no value (`regex:`) is YAML null; Go's YAML decoder turns null into the
/// zero value, so `regex:` means the empty regex (matching only ""), not the default `(.*)`.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One rule as written in YAML. Defaults are Prometheus's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator`; a missing label contributes "".
    #[serde(default, deserialize_with = "null_as_empty")]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator", deserialize_with = "null_as_empty")]
    pub separator: String,
    /// The regex as written, without the anchoring that [`Relabeler`] adds.
    #[serde(default = "default_regex", deserialize_with = "null_as_empty")]
    pub regex: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub modulus: u64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub target_label: String,
    #[serde(default = "default_replacement", deserialize_with = "null_as_empty")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: default_separator(),
            regex: default_regex(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
        }
    }
}

/// Prometheus's `relabelTargetLegacy`: a label name in which `$var`/`${var}` may stand for
/// characters. Go's `\w` is ASCII, hence the explicit classes.
static TEMPLATED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("BUG: static regex")
});

impl RelabelConfig {
    /// The checks Prometheus's `Config.Validate` does (run when it loads the YAML), plus
    /// that the regex compiles and the source label names are valid.
    pub fn validate(&self) -> Result<(), RelabelError> {
        self.validate_fields()?;
        compile(&self.regex)?;
        Ok(())
    }

    fn validate_fields(&self) -> Result<(), RelabelError> {
        use Action::*;
        let action = self.action;
        if let Some(name) = self.source_labels.iter().find(|n| !is_valid_label_name(n)) {
            return Err(RelabelError::InvalidSourceLabel { name: name.clone() });
        }
        if action == HashMod && self.modulus == 0 {
            return Err(RelabelError::ZeroModulus);
        }
        let needs_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(RelabelError::MissingTargetLabel { action });
        }
        let bad_target = || RelabelError::InvalidTargetLabel {
            action,
            target_label: self.target_label.clone(),
        };
        // Only `replace` expands `$1` in target_label.
        let target_ok = match action {
            Replace if self.target_label.contains('$') => {
                TEMPLATED_NAME.is_match(&self.target_label)
            }
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual => {
                is_valid_label_name(&self.target_label)
            }
            _ => true,
        };
        if !target_ok {
            return Err(bad_target());
        }
        let replacement_changed = self.replacement != DEFAULT_REPLACEMENT;
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual) && replacement_changed {
            return Err(RelabelError::ReplacementNotAllowed { action });
        }
        if action == LabelMap && !TEMPLATED_NAME.is_match(&self.replacement) {
            return Err(RelabelError::InvalidReplacement {
                action,
                replacement: self.replacement.clone(),
            });
        }
        // Prometheus compares the regex by pointer to the default one, so it also rejects an
        // explicitly written `regex: (.*)` here; we compare text and accept it.
        if matches!(action, KeepEqual | DropEqual)
            && (self.regex != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || replacement_changed)
        {
            return Err(RelabelError::OnlySourceAndTarget { action });
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || replacement_changed)
        {
            return Err(RelabelError::OnlyRegex { action });
        }
        Ok(())
    }
}

/// Anchors like Prometheus 3 (`^(?s:…)$`: `.` matches `\n`); the inner group keeps a
/// top-level `a|b` inside the anchors.
fn compile(regex: &str) -> Result<Regex, RelabelError> {
    Regex::new(&format!("^(?s:(?:{regex}))$")).map_err(|source| RelabelError::InvalidRegex {
        regex: regex.to_string(),
        source,
    })
}

/// One validated rule with its compiled regex. Fixed after construction.
#[derive(Debug, Clone)]
struct Rule {
    cfg: RelabelConfig,
    regex: Regex,
}

/// A compiled, validated list of rules, applied in order.
#[derive(Debug, Clone, Default)]
pub struct Relabeler {
    rules: Vec<Rule>,
}

impl Relabeler {
    /// Validates and compiles `cfgs`; an error names the failing rule's index.
    pub fn new(cfgs: &[RelabelConfig]) -> Result<Relabeler, RelabelError> {
        let rules = cfgs
            .iter()
            .enumerate()
            .map(|(index, cfg)| {
                cfg.validate_fields()
                    .and_then(|()| compile(&cfg.regex))
                    .map(|regex| Rule {
                        cfg: cfg.clone(),
                        regex,
                    })
                    .map_err(|e| RelabelError::Rule {
                        index,
                        source: Box::new(e),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Relabeler { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules in order. Returns false when a rule drops the target/series; the
    /// contents of `labels` are then unspecified. On true, `labels` is sorted by name, has
    /// unique names (for duplicate input names the last one wins) and no empty values
    /// (an empty value means "absent" in Prometheus).
    pub fn process(&self, labels: &mut Vec<(String, String)>) -> bool {
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        // `dedup_by` passes (later, kept); move the later value into the kept entry.
        labels.dedup_by(|later, kept| {
            let dup = later.0 == kept.0;
            if dup {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            dup
        });
        labels.retain(|(_, v)| !v.is_empty());
        self.rules.iter().all(|rule| rule.apply(labels))
    }
}

/// `labels` is sorted by name and unique; an absent label reads as "".
fn get<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) => &labels[i].1,
        Err(_) => "",
    }
}

/// Setting an empty value deletes, as `labels.Builder.Set` does.
fn set(labels: &mut Vec<(String, String)>, name: &str, value: String) {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].1 = value,
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.to_string(), value)),
    }
}

impl Rule {
    fn apply(&self, labels: &mut Vec<(String, String)>) -> bool {
        let cfg = &self.cfg;
        let val = match cfg.source_labels.as_slice() {
            [one] => get(labels, one).to_string(),
            many => many
                .iter()
                .map(|n| get(labels, n))
                .collect::<Vec<_>>()
                .join(&cfg.separator),
        };
        match cfg.action {
            Action::Drop => return !self.regex.is_match(&val),
            Action::Keep => return self.regex.is_match(&val),
            Action::DropEqual => return get(labels, &cfg.target_label) != val,
            Action::KeepEqual => return get(labels, &cfg.target_label) == val,
            Action::Replace => self.replace(labels, &val),
            Action::Lowercase => set(labels, &cfg.target_label, val.to_lowercase()),
            Action::Uppercase => set(labels, &cfg.target_label, val.to_uppercase()),
            Action::HashMod => {
                let sum = Md5::digest(val.as_bytes());
                // Prometheus uses the last 8 bytes, big-endian, so that targets shard the
                // same way across Prometheus versions; we must match to shard like it.
                let tail: [u8; 8] = sum[8..16].try_into().expect("BUG: md5 is 16 bytes");
                let m = u64::from_be_bytes(tail) % cfg.modulus;
                set(labels, &cfg.target_label, m.to_string());
            }
            Action::LabelMap => {
                // Prometheus iterates over a snapshot taken before this rule, so collect
                // first; applying in the same order keeps "last write wins".
                let adds: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(n, v)| {
                        let caps = self.regex.captures(n)?;
                        Some((expand(&self.regex, &caps, &cfg.replacement), v.clone()))
                    })
                    .collect();
                for (n, v) in adds {
                    set(labels, &n, v);
                }
            }
            Action::LabelDrop => labels.retain(|(n, _)| !self.regex.is_match(n)),
            Action::LabelKeep => labels.retain(|(n, _)| self.regex.is_match(n)),
        }
        true
    }

    fn replace(&self, labels: &mut Vec<(String, String)>, val: &str) {
        let cfg = &self.cfg;
        let Some(caps) = self.regex.captures(val) else {
            // No match: no replacement.
            return;
        };
        let target = expand(&self.regex, &caps, &cfg.target_label);
        if !is_valid_label_name(&target) {
            return;
        }
        let value = expand(&self.regex, &caps, &cfg.replacement);
        set(labels, &target, value);
    }
}

/// A `$name`/`${name}` reference: Go's `extract` takes letters (Unicode category L), decimal
/// digits (Nd) and `_`.
static TEMPLATE_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Nd}_]+").expect("BUG: static regex"));

/// Go's `Regexp.ExpandString`: `$$` is `$`; `$name` takes the longest run of name characters
/// (so `$1x` is the group named `1x`, not group 1 then `x`); `${name}` delimits it; an
/// all-ASCII-digit name without a leading zero and under 10 digits is a group number; a
/// missing or unmatched group expands to ""; a `$` not followed by a valid name is literal.
fn expand(re: &Regex, caps: &Captures<'_>, template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let Some(m) = TEMPLATE_NAME.find(body) else {
            out.push('$');
            continue;
        };
        let name = m.as_str();
        let after = &body[m.end()..];
        let after = if braced {
            match after.strip_prefix('}') {
                Some(a) => a,
                None => {
                    out.push('$');
                    continue;
                }
            }
        } else {
            after
        };
        rest = after;
        let numeric = name.bytes().all(|b| b.is_ascii_digit())
            && name.len() <= 9
            && (name.len() == 1 || !name.starts_with('0'));
        let group = if numeric {
            let n: usize = name.parse().expect("BUG: checked all digits");
            caps.get(n)
        } else if re.capture_names().any(|n| n == Some(name)) {
            caps.name(name)
        } else {
            None
        };
        if let Some(g) = group {
            out.push_str(g.as_str());
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbls(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    /// Runs `yaml` rules on `input`; `None` = dropped.
    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        let r = Relabeler::new(&rules(yaml)).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let mut l = lbls(input);
        r.process(&mut l).then_some(l)
    }

    fn kept(yaml: &str, input: &[(&str, &str)], want: &[(&str, &str)]) {
        let mut want = lbls(want);
        want.sort();
        assert_eq!(run(yaml, input), Some(want), "rules:\n{yaml}");
    }

    fn dropped(yaml: &str, input: &[(&str, &str)]) {
        assert_eq!(run(yaml, input), None, "rules:\n{yaml}");
    }

    const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];

    // Cases from Prometheus's model/relabel/relabel_test.go `TestRelabel`.

    #[test]
    fn replace_with_braced_groups() {
        kept(
            "- {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
            ABC,
            &[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")],
        );
    }

    #[test]
    fn replace_chain_sees_earlier_results() {
        kept(
            r#"
- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}
- {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}
"#,
            ABC,
            &[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")],
        );
    }

    #[test]
    fn drop_stops_processing() {
        dropped(
            r#"
- {source_labels: [a], regex: '.*o.*', action: drop}
- {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch$1-ch$1'}
"#,
            &[("a", "foo")],
        );
        dropped(
            "- {source_labels: [a], regex: '.*o.*', action: drop}",
            &[("a", "foo"), ("b", "bar")],
        );
    }

    #[test]
    fn replace_group_inside_match() {
        kept(
            "- {source_labels: [a], regex: '.*(b).*', target_label: d}",
            &[("a", "abc")],
            &[("a", "abc"), ("d", "b")],
        );
    }

    #[test]
    fn regex_is_fully_anchored() {
        let foo = &[("a", "foo")];
        kept(
            "- {source_labels: [a], regex: no-match, action: drop}",
            foo,
            foo,
        );
        // `f|o` would match inside "foo" unanchored; anchored it must cover all of it.
        kept(
            "- {source_labels: [a], regex: 'f|o', action: drop}",
            foo,
            foo,
        );
        dropped(
            "- {source_labels: [a], regex: 'no-match', action: keep}",
            foo,
        );
        kept(
            "- {source_labels: [a], regex: 'f.*', action: keep}",
            foo,
            foo,
        );
        dropped("- {source_labels: [a], regex: 'oo', action: keep}", foo);
        dropped("- {source_labels: [a], regex: 'fo', action: keep}", foo);
    }

    #[test]
    fn dot_matches_newline() {
        kept(
            "- {source_labels: [a], regex: 'line1.*line2', target_label: d, replacement: 'match${1}'}",
            &[("a", "line1\nline2")],
            &[("a", "line1\nline2"), ("d", "match")],
        );
    }

    #[test]
    fn no_match_no_replacement() {
        kept(
            "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
            &[("a", "boo")],
            &[("a", "boo")],
        );
    }

    #[test]
    fn empty_replacement_deletes_target() {
        kept(
            "- {source_labels: [a], regex: '(f).*', target_label: '$1', replacement: '$2'}",
            &[("a", "foo"), ("f", "baz")],
            &[("a", "foo")],
        );
    }

    #[test]
    fn templated_target_label() {
        let input = &[("a", "some-name-value")];
        kept(
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}'}",
            input,
            &[("a", "some-name-value"), ("name", "value")],
        );
        // Group 3 does not exist: the replacement is empty, so nothing is set.
        kept(
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}'}",
            input,
            input,
        );
        // Target expands to "" (invalid name): skipped.
        kept(
            r#"
- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}
- {source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', replacement: '${1}', target_label: '${3}'}
"#,
            &[("a", "some-name-0")],
            &[("a", "some-name-0")],
        );
        // `l0` is a valid name, `0` (below) is not and is skipped.
        kept(
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: x, target_label: 'l${2}'}",
            &[("a", "some-name-0")],
            &[("a", "some-name-0"), ("l0", "x")],
        );
        kept(
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: x, target_label: '${2}'}",
            &[("a", "some-name-0")],
            &[("a", "some-name-0")],
        );
    }

    #[test]
    fn real_life_tags() {
        kept(
            r#"
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', replacement: '${1}', target_label: __metrics_path__}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', replacement: '${1}', target_label: job}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}'}
"#,
            &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
            &[
                ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
                ("__metrics_path__", "/secret"),
                ("job", "some-job"),
                ("foo", "bar"),
            ],
        );
    }

    #[test]
    fn issue_12283_labeldrop_then_replace_then_keep() {
        kept(
            r#"
- {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}
- {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}
"#,
            &[
                ("__meta_kubernetes_pod_container_port_name", "foo"),
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ],
            &[
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ],
        );
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Expected values from Prometheus's TestRelabel.
        kept(
            "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
            ABC,
            &[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")],
        );
        kept(
            "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
            &[("a", "foo\nbar")],
            &[("a", "foo\nbar"), ("b", "734")],
        );
    }

    #[test]
    fn hashmod_uses_last_eight_bytes_big_endian() {
        // md5("") = d41d8cd98f00b204 e9800998ecf8427e; the tail as a big-endian u64.
        let tail = 0xe980_0998_ecf8_427e_u64;
        let m = 1_000_003;
        kept(
            &format!("- {{source_labels: [x], target_label: h, action: hashmod, modulus: {m}}}"),
            &[],
            &[("h", &(tail % m).to_string())],
        );
    }

    #[test]
    fn labelmap() {
        kept(
            "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            &[
                ("a", "foo"),
                ("b1", "bar"),
                ("b2", "baz"),
                ("bar_b1", "bar"),
                ("bar_b2", "baz"),
            ],
        );
        kept(
            "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
            &[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
            ],
            &[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
                ("my_bar", "aaa"),
                ("my_baz", "bbb"),
            ],
        );
        // The documented idiom: default replacement `$1`.
        kept(
            "- {regex: '__meta_consul_service_metadata_(.+)', action: labelmap}",
            &[("__meta_consul_service_metadata_team", "db"), ("job", "x")],
            &[
                ("__meta_consul_service_metadata_team", "db"),
                ("job", "x"),
                ("team", "db"),
            ],
        );
    }

    #[test]
    fn labelkeep_and_labeldrop() {
        let input = &[("a", "foo"), ("b1", "bar"), ("b2", "baz")];
        kept(
            "- {regex: '(b.*)', action: labelkeep}",
            input,
            &[("b1", "bar"), ("b2", "baz")],
        );
        kept(
            "- {regex: '(b.*)', action: labeldrop}",
            input,
            &[("a", "foo")],
        );
        // Anchored: `b` alone does not drop `b1`.
        kept("- {regex: 'b', action: labeldrop}", input, input);
    }

    #[test]
    fn lowercase_uppercase() {
        kept(
            r#"
- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}
- {source_labels: [foo], action: lowercase, target_label: foo_lowercase}
"#,
            &[("foo", "bAr123Foo")],
            &[
                ("foo", "bAr123Foo"),
                ("foo_lowercase", "bar123foo"),
                ("foo_uppercase", "BAR123FOO"),
            ],
        );
    }

    #[test]
    fn keepequal_dropequal() {
        let input = &[
            ("__tmp_port", "1234"),
            ("__port1", "1234"),
            ("__port2", "5678"),
        ];
        kept(
            "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}",
            input,
            input,
        );
        dropped(
            "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}",
            input,
        );
        kept(
            "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}",
            input,
            input,
        );
        dropped(
            "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}",
            input,
        );
        // Missing target reads as "": equal to a missing source.
        dropped(
            "- {source_labels: [nope], action: dropequal, target_label: absent}",
            input,
        );
    }

    #[test]
    fn named_group_styles() {
        kept(
            r#"
- {source_labels: [a], regex: '(line1).*(?P<second>line2)', target_label: 'label1_${1}', replacement: 'val_${second}'}
- {source_labels: [a], regex: '(line1).*(?<second>line2)', target_label: 'label2_$1', replacement: 'val_$second'}
"#,
            &[("a", "line1\nline2")],
            &[
                ("a", "line1\nline2"),
                ("label1_line1", "val_line2"),
                ("label2_line1", "val_line2"),
            ],
        );
    }

    #[test]
    fn missing_source_labels_read_as_empty() {
        // "" joined with ";" → ";" matches `;` only if both are missing/empty.
        kept(
            "- {source_labels: [x, y], regex: ';', target_label: both_missing, replacement: yes}",
            &[("a", "1")],
            &[("a", "1"), ("both_missing", "yes")],
        );
        kept(
            "- {source_labels: [x, a], separator: '-', regex: '-(.*)', target_label: t}",
            &[("a", "1")],
            &[("a", "1"), ("t", "1")],
        );
    }

    #[test]
    fn static_label_fast_path_and_empty_values() {
        // Default regex matches the empty source value: a plain "set this label".
        kept(
            "- {target_label: env, replacement: prod}",
            &[("a", "1")],
            &[("a", "1"), ("env", "prod")],
        );
        // Setting "" deletes, and empty input values vanish.
        kept(
            "- {target_label: a, replacement: ''}",
            &[("a", "1"), ("b", ""), ("c", "3")],
            &[("c", "3")],
        );
        // `regex:` with no value is the empty regex (Go's null → ""), which matches only "".
        kept(
            "- {source_labels: [a], regex: , target_label: t, replacement: hit}",
            &[("a", "x")],
            &[("a", "x")],
        );
        kept(
            "- {source_labels: [a], regex: , target_label: t, replacement: hit}",
            &[("z", "x")],
            &[("z", "x"), ("t", "hit")],
        );
    }

    #[test]
    fn output_sorted_and_deduplicated() {
        let r = Relabeler::new(&[]).unwrap();
        assert!(r.is_empty());
        let mut l = lbls(&[("z", "1"), ("a", "2"), ("m", "3"), ("a", "4")]);
        assert!(r.process(&mut l));
        assert_eq!(l, lbls(&[("a", "4"), ("m", "3"), ("z", "1")]));
    }

    #[test]
    fn go_expand_semantics() {
        let re = compile("(?P<n>a)(b)(c)?").unwrap();
        let caps = re.captures("ab").unwrap();
        let cases = [
            ("$1", "a"),
            ("${1}", "a"),
            ("$1x", ""), // group named "1x"
            ("${1}x", "ax"),
            ("$2$3|", "b|"), // unmatched group → ""
            ("$$1", "$1"),
            ("$n-${n}", "a-a"),
            ("$0", "ab"),
            ("$01", ""), // leading zero → a name, not a number
            ("$", "$"),
            ("${", "${"),
            ("${}", "${}"),
            ("${1", "${1"),
            ("a$-b", "a$-b"),
            ("$9999999999", ""),
            ("plain", "plain"),
        ];
        for (tmpl, want) in cases {
            assert_eq!(expand(&re, &caps, tmpl), want, "template {tmpl:?}");
        }
    }

    #[test]
    fn action_spelling() {
        let all = rules(
            r#"
- {action: replace, target_label: t}
- {action: keep}
- {action: drop}
- {action: keepequal, source_labels: [a], target_label: t}
- {action: dropequal, source_labels: [a], target_label: t}
- {action: hashmod, target_label: t, modulus: 2}
- {action: labelmap}
- {action: labeldrop}
- {action: labelkeep}
- {action: lowercase, target_label: t}
- {action: uppercase, target_label: t}
- {action: LabelMap}
"#,
        );
        let got: Vec<Action> = all.iter().map(|c| c.action).collect();
        let mut want = Action::ALL.to_vec();
        want.push(Action::LabelMap);
        assert_eq!(got, want);
        for c in &all {
            c.validate().unwrap();
        }
        let err = serde_yaml_ng::from_str::<RelabelConfig>("action: rename").unwrap_err();
        assert!(err.to_string().contains("unknown relabel action"), "{err}");
        let err = serde_yaml_ng::from_str::<RelabelConfig>("target: x").unwrap_err();
        assert!(err.to_string().contains("unknown field `target`"), "{err}");
    }

    #[test]
    fn defaults() {
        let c: RelabelConfig = serde_yaml_ng::from_str("target_label: x").unwrap();
        assert_eq!(
            c,
            RelabelConfig {
                target_label: "x".into(),
                ..RelabelConfig::default()
            }
        );
        assert_eq!((c.separator.as_str(), c.regex.as_str()), (";", "(.*)"));
        assert_eq!((c.replacement.as_str(), c.action), ("$1", Action::Replace));
    }

    #[test]
    fn validation() {
        let bad: &[(&str, &str)] = &[
            ("action: replace", "requires 'target_label' value"),
            ("action: lowercase", "requires 'target_label' value"),
            (
                "{action: lowercase, target_label: '${3}'}",
                "invalid 'target_label'",
            ),
            (
                "{action: uppercase, target_label: t, replacement: x}",
                "'replacement' can not be set",
            ),
            ("{action: hashmod, target_label: t}", "non-zero modulus"),
            (
                "{action: hashmod, target_label: 'a-b', modulus: 2}",
                "invalid 'target_label'",
            ),
            (
                "{action: replace, target_label: '-label'}",
                "invalid 'target_label'",
            ),
            (
                "{action: replace, target_label: 'bar.foo${1}bar'}",
                "invalid 'target_label'",
            ),
            (
                "{action: replace, target_label: 'foo${'}",
                "invalid 'target_label'",
            ),
            (
                "{action: replace, target_label: '${}'}",
                "invalid 'target_label'",
            ),
            (
                "{action: labelmap, replacement: 'a-$1'}",
                "invalid 'replacement'",
            ),
            (
                "{action: keepequal, source_labels: [a], target_label: t, regex: x}",
                "requires only 'source_labels'",
            ),
            (
                "{action: dropequal, source_labels: [a], target_label: t, separator: ','}",
                "requires only 'source_labels'",
            ),
            (
                "{action: dropequal, source_labels: [a], target_label: t, modulus: 3}",
                "requires only 'source_labels'",
            ),
            (
                "{action: labeldrop, source_labels: [a]}",
                "requires only 'regex'",
            ),
            (
                "{action: labelkeep, target_label: a}",
                "requires only 'regex'",
            ),
            (
                "{action: labelkeep, replacement: a}",
                "requires only 'regex'",
            ),
            ("{action: keep, regex: '(unclosed'}", "invalid regex"),
            (
                "{action: keep, source_labels: ['a.b']}",
                "not a valid label name",
            ),
        ];
        for (yaml, want) in bad {
            let c: RelabelConfig = serde_yaml_ng::from_str(yaml).unwrap();
            let err = c.validate().expect_err(yaml).to_string();
            assert!(err.contains(want), "{yaml}: got {err:?}, want {want:?}");
        }
        let good = [
            "{action: replace, target_label: 'label${1}'}",
            "{action: replace, target_label: '${1}label'}",
            "{action: replace, target_label: '$1'}",
            "{action: replace, target_label: 'asd$2asd'}",
            "{action: replace, target_label: '_${1}_'}",
            "{action: replace, target_label: 'foo${bar}foo'}",
            "{action: labelmap, regex: '__meta_kubernetes_pod_label_(strimzi_io_.+)', replacement: '$1'}",
            "{action: labelmap, regex: '__meta_(.+)', replacement: '${1}'}",
        ];
        for yaml in good {
            let c: RelabelConfig = serde_yaml_ng::from_str(yaml).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{yaml}: {e}"));
        }
        // Relabeler::new points at the failing rule.
        let err = Relabeler::new(&rules(
            "- {action: keep}\n- {action: hashmod, target_label: t}",
        ))
        .unwrap_err();
        assert!(
            matches!(err, RelabelError::Rule { index: 1, .. }),
            "{err:?}"
        );
    }

    proptest::proptest! {
        /// Output is always sorted, unique and free of empty values, whatever the input.
        #[test]
        fn process_output_is_canonical(
            input in proptest::collection::vec(("[a-c_]{1,2}", "[xy]{0,2}"), 0..8),
        ) {
            let r = Relabeler::new(&rules(
                "- {source_labels: [a], regex: '(x*)', target_label: b, replacement: '$1'}\n- {regex: 'c', action: labeldrop}",
            ))
            .unwrap();
            let mut l = input.clone();
            proptest::prop_assert!(r.process(&mut l));
            proptest::prop_assert!(l.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", l);
            proptest::prop_assert!(l.iter().all(|(n, v)| !v.is_empty() && n != "c"));
        }
    }
}
