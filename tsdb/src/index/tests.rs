//! Tests of the index as a whole: `select` against a brute-force filter over `Matcher::matches`.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use roaring::RoaringTreemap;

use super::{MatchOp, Matcher, MemPostings, Stat, SymbolTable};

/// A series as the tests see it: id and label pairs.
type Series = (u64, Vec<(&'static str, &'static str)>);

struct Fixture {
    symbols: SymbolTable,
    postings: MemPostings,
    series: Vec<(u64, BTreeMap<String, String>)>,
}

impl Fixture {
    fn new<'a>(series: impl IntoIterator<Item = (u64, Vec<(&'a str, &'a str)>)>) -> Self {
        let symbols = SymbolTable::new();
        let postings = MemPostings::new();
        let mut all = Vec::new();
        for (id, labels) in series {
            let pairs: Vec<(u32, u32)> = labels
                .iter()
                .map(|(n, v)| (symbols.intern(n), symbols.intern(v)))
                .collect();
            postings.add(id, &pairs);
            let map = labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            all.push((id, map));
        }
        Fixture {
            symbols,
            postings,
            series: all,
        }
    }

    fn select(&self, matchers: &[Matcher]) -> Vec<u64> {
        self.postings
            .select(&self.symbols, matchers)
            .iter()
            .collect()
    }

    /// The definition: a series passes if every matcher accepts its value, `""` if absent.
    fn brute_force(&self, matchers: &[Matcher]) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .series
            .iter()
            .filter(|(_, labels)| {
                matchers.iter().all(|m| {
                    let v = labels.get(m.name()).map_or("", String::as_str);
                    m.matches(v)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

fn fixed_series() -> Vec<Series> {
    vec![
        (
            1,
            vec![("__name__", "up"), ("job", "api"), ("instance", "a")],
        ),
        (
            2,
            vec![("__name__", "up"), ("job", "db"), ("instance", "b")],
        ),
        (3, vec![("__name__", "up"), ("instance", "c")]),
        (
            4,
            vec![("__name__", "http"), ("job", "api"), ("path", "/x\ny")],
        ),
        (
            5,
            vec![("__name__", "http"), ("job", "api.v2"), ("code", "200")],
        ),
        (
            6,
            vec![("__name__", "http"), ("job", "apixv2"), ("code", "١٢")],
        ),
        (7, vec![("__name__", "bar"), ("job", "bar")]),
        (8, vec![("__name__", "bar")]),
        // Series ids are u64: make sure the high half works.
        (
            (1 << 40) + 3,
            vec![("__name__", "up"), ("job", "API"), ("instance", "d")],
        ),
    ]
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).unwrap()
}

use MatchOp::{Equal as EQ, NotEqual as NEQ, NotRegex as NRE, Regex as RE};

const BIG: u64 = (1 << 40) + 3;

#[test]
fn select_semantics_table() {
    let f = Fixture::new(fixed_series());
    let all = vec![1, 2, 3, 4, 5, 6, 7, 8, BIG];
    #[rustfmt::skip]
    let cases: Vec<(Vec<Matcher>, Vec<u64>)> = vec![
        (vec![], all.clone()),
        (vec![m(EQ, "__name__", "up")], vec![1, 2, 3, BIG]),
        (vec![m(EQ, "job", "api")], vec![1, 4]),
        (vec![m(EQ, "job", "nope")], vec![]),
        // `l=""` selects series WITHOUT l, `l!=""` those WITH it.
        (vec![m(EQ, "job", "")], vec![3, 8]),
        (vec![m(NEQ, "job", "")], vec![1, 2, 4, 5, 6, 7, BIG]),
        // Regexes that match "" select series without the label too.
        (vec![m(RE, "job", ".*")], all.clone()),
        (vec![m(RE, "job", "")], vec![3, 8]),
        (vec![m(RE, "job", "|api")], vec![1, 3, 4, 8]),
        (vec![m(RE, "job", "api|")], vec![1, 3, 4, 8]),
        (vec![m(RE, "job", "a*")], vec![3, 8]),
        (vec![m(RE, "job", ".+")], vec![1, 2, 4, 5, 6, 7, BIG]),
        (vec![m(NRE, "job", ".+")], vec![3, 8]),
        (vec![m(NRE, "job", ".*")], vec![]),
        // Negative matchers keep series without the label.
        (vec![m(NEQ, "job", "api")], vec![2, 3, 5, 6, 7, 8, BIG]),
        (vec![m(NRE, "job", "api|db")], vec![3, 5, 6, 7, 8, BIG]),
        (vec![m(NRE, "job", "a.*")], vec![2, 3, 7, 8, BIG]),
        (vec![m(NRE, "job", "|api")], vec![2, 5, 6, 7, BIG]),
        // Anchoring: "ba" does not match "bar".
        (vec![m(RE, "job", "ba")], vec![]),
        (vec![m(RE, "job", "ba.*")], vec![7]),
        (vec![m(RE, "job", "(?:ba)")], vec![]),
        // `.` is any character, `\.` only a dot.
        (vec![m(RE, "job", "api.v2")], vec![5, 6]),
        (vec![m(RE, "job", r"api\.v2")], vec![5]),
        (vec![m(RE, "job", "api|db")], vec![1, 2, 4]),
        (vec![m(RE, "job", "(api|db)")], vec![1, 2, 4]),
        (vec![m(RE, "job", "(?i)api")], vec![1, 4, BIG]),
        (vec![m(NRE, "job", "(?i)api")], vec![2, 3, 5, 6, 7, 8]),
        // `.` matches a newline (Prometheus 3).
        (vec![m(RE, "path", "/x.y")], vec![4]),
        (vec![m(RE, "path", ".*y")], vec![4]),
        // Perl classes are ASCII, as in Go.
        (vec![m(RE, "code", r"\d+")], vec![5]),
        (vec![m(NRE, "code", r"\d+")], vec![1, 2, 3, 4, 6, 7, 8, BIG]),
        // A label nobody has is "" everywhere.
        (vec![m(EQ, "nope", "x")], vec![]),
        (vec![m(NEQ, "nope", "x")], all.clone()),
        (vec![m(EQ, "nope", "")], all.clone()),
        (vec![m(NEQ, "nope", "")], vec![]),
        (vec![m(RE, "nope", ".*")], all.clone()),
        (vec![m(RE, "nope", ".+")], vec![]),
        (vec![m(RE, "nope", "a|b")], vec![]),
        (vec![m(NRE, "nope", "a|b")], all.clone()),
        (vec![m(RE, "nope", "x.*")], vec![]),
        (vec![m(NRE, "nope", "x.*")], all.clone()),
        // Several matchers intersect.
        (vec![m(EQ, "__name__", "up"), m(NEQ, "job", "api")], vec![2, 3, BIG]),
        (vec![m(EQ, "__name__", "up"), m(EQ, "job", "")], vec![3]),
        (vec![m(EQ, "__name__", "http"), m(RE, "job", "api.*"), m(NEQ, "code", "200")], vec![4, 6]),
        (vec![m(RE, "__name__", "up|http"), m(RE, "instance", "[ab]")], vec![1, 2]),
        (vec![m(EQ, "__name__", "up"), m(EQ, "__name__", "http")], vec![]),
        (vec![m(NEQ, "job", ""), m(RE, "instance", ".+"), m(NRE, "job", "db")], vec![1, BIG]),
        (vec![m(EQ, "job", ""), m(NEQ, "instance", "")], vec![3]),
    ];
    for (matchers, want) in cases {
        let shown: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
        assert_eq!(f.brute_force(&matchers), want, "brute force of {shown:?}");
        assert_eq!(f.select(&matchers), want, "select of {shown:?}");
    }
}

/// Prometheus never stores an empty value, but if a caller did, it must behave like an
/// absent label rather than break `select`'s agreement with `Matcher::matches`.
#[test]
fn stored_empty_value_behaves_like_absent_label() {
    let f = Fixture::new(vec![
        (1, vec![("job", "")]),
        (2, vec![("job", "a")]),
        (3, vec![("x", "1")]),
    ]);
    #[rustfmt::skip]
    let cases: Vec<(Vec<Matcher>, Vec<u64>)> = vec![
        (vec![m(EQ, "job", "")], vec![1, 3]),
        (vec![m(NEQ, "job", "")], vec![2]),
        (vec![m(RE, "job", ".+")], vec![2]),
        (vec![m(NRE, "job", ".+")], vec![1, 3]),
        (vec![m(RE, "job", "|b")], vec![1, 3]),
        (vec![m(NRE, "job", "|b")], vec![2]),
        (vec![m(RE, "job", "a?")], vec![1, 2, 3]),
        (vec![m(NRE, "job", "a")], vec![1, 3]),
    ];
    for (matchers, want) in cases {
        assert_eq!(f.brute_force(&matchers), want, "{}", matchers[0]);
        assert_eq!(f.select(&matchers), want, "{}", matchers[0]);
    }
}

#[test]
fn label_names_and_values_within() {
    let f = Fixture::new(fixed_series());
    let strs = |v: Vec<Arc<str>>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let sy = &f.symbols;
    let p = &f.postings;
    assert_eq!(
        strs(p.label_names(sy, None)),
        ["__name__", "code", "instance", "job", "path"]
    );
    let up = p.select(sy, &[m(EQ, "__name__", "up")]);
    assert_eq!(
        strs(p.label_names(sy, Some(&up))),
        ["__name__", "instance", "job"]
    );
    assert_eq!(
        strs(p.label_values(sy, "job", None)),
        ["API", "api", "api.v2", "apixv2", "bar", "db"]
    );
    assert_eq!(
        strs(p.label_values(sy, "job", Some(&up))),
        ["API", "api", "db"]
    );
    assert_eq!(strs(p.label_values(sy, "__name__", Some(&up))), ["up"]);
    assert!(p.label_values(sy, "nope", None).is_empty());
    assert!(p.label_names(sy, Some(&RoaringTreemap::new())).is_empty());
    let only8: RoaringTreemap = [8u64].into_iter().collect();
    assert_eq!(strs(p.label_names(sy, Some(&only8))), ["__name__"]);
    assert!(p.label_values(sy, "job", Some(&only8)).is_empty());
}

#[test]
fn remove_drops_empty_lists_and_names() {
    let f = Fixture::new(fixed_series());
    let pairs = |labels: &[(&str, &str)]| -> Vec<(u32, u32)> {
        labels
            .iter()
            .map(|(n, v)| (f.symbols.lookup(n).unwrap(), f.symbols.lookup(v).unwrap()))
            .collect()
    };
    let before = f.postings.heap_bytes();
    assert!(before > 0);
    f.postings.remove(
        4,
        &pairs(&[("__name__", "http"), ("job", "api"), ("path", "/x\ny")]),
    );
    assert_eq!(f.postings.num_series(), 8);
    assert!(!f.postings.all().contains(4));
    let names = f.postings.label_names(&f.symbols, None);
    assert!(!names.iter().any(|n| &**n == "path"), "{names:?}");
    assert_eq!(f.select(&[m(EQ, "job", "api")]), vec![1]);
    assert_eq!(f.select(&[m(RE, "path", ".*")]).len(), 8);
    assert!(f.postings.heap_bytes() < before);
    // Removing an unknown series or pairs is harmless.
    f.postings.remove(999, &pairs(&[("job", "api")]));
    assert_eq!(f.select(&[m(EQ, "job", "api")]), vec![1]);
}

#[test]
fn cardinality_stats() {
    let f = Fixture::new(fixed_series());
    let stats = f.postings.cardinality_stats(&f.symbols, 3);
    let st = |name: &str, count: u64| Stat {
        name: name.to_owned(),
        count,
    };
    assert_eq!(stats.num_series, 9);
    // __name__: up, http, bar; job: api, db, api.v2, apixv2, bar, API; instance: a b c d;
    // path: 1; code: 200, ١٢.
    assert_eq!(stats.num_label_pairs, 3 + 6 + 4 + 1 + 2);
    assert_eq!(
        stats.series_count_by_metric_name,
        [st("up", 4), st("http", 3), st("bar", 2)]
    );
    assert_eq!(
        stats.label_value_count_by_label_name,
        [st("job", 6), st("instance", 4), st("__name__", 3)]
    );
    assert_eq!(
        stats.series_count_by_label_name,
        [st("__name__", 9), st("job", 7), st("instance", 4)]
    );
    // Ties are broken by name.
    assert_eq!(
        stats.series_count_by_label_pair,
        [
            st("__name__=up", 4),
            st("__name__=http", 3),
            st("__name__=bar", 2)
        ]
    );
    // __name__: 4*2 + 3*4 + 2*3 = 26 bytes; job: 3*2+2+6+6+3+3 = 26 (tie, name order);
    // code: "200" + "١٢" (4 bytes of UTF-8) = 7.
    assert_eq!(
        stats.memory_in_bytes_by_label_name,
        [st("__name__", 26), st("job", 26), st("code", 7)]
    );
    let stats = f.postings.cardinality_stats(&f.symbols, 100);
    assert_eq!(stats.series_count_by_label_pair.len(), 16);
    assert_eq!(
        stats.series_count_by_label_pair[3],
        st("job=api", 2),
        "{:?}",
        stats.series_count_by_label_pair
    );
    let empty = f.postings.cardinality_stats(&f.symbols, 0);
    assert!(empty.series_count_by_label_pair.is_empty());
    assert_eq!(empty.num_series, 9);
}

#[test]
fn symbol_table_basics() {
    let t = SymbolTable::new();
    assert!(t.is_empty());
    let a = t.intern("a");
    let b = t.intern("b");
    assert_eq!((a, b), (0, 1));
    assert_eq!(t.intern("a"), a);
    assert_eq!(t.lookup("b"), Some(b));
    assert_eq!(t.lookup("c"), None);
    assert_eq!(t.get(b).as_deref(), Some("b"));
    assert_eq!(t.get(7), None);
    assert_eq!(t.with_str(a, str::len), Some(1));
    assert_eq!(t.with_str(9, str::len), None);
    let mut out = vec![Arc::from("x")];
    t.resolve_into(&[b, a, b], &mut out);
    assert_eq!(
        out.iter().map(|s| &**s).collect::<Vec<_>>(),
        ["x", "b", "a", "b"]
    );
    assert_eq!(t.len(), 2);
    let before = t.heap_bytes();
    t.intern(&"z".repeat(1000));
    assert!(t.heap_bytes() >= before + 1000);
}

#[test]
#[should_panic(expected = "BUG: unknown symbol id")]
fn resolve_into_unknown_id_is_a_bug() {
    SymbolTable::new().resolve_into(&[3], &mut Vec::new());
}

#[test]
fn symbol_table_concurrent_interning_is_consistent() {
    let table = SymbolTable::new();
    let threads = 4;
    let per_thread = 2000;
    let results: Vec<Vec<(String, u32)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let table = &table;
                s.spawn(move || {
                    // Overlapping ranges in different orders, so threads race on the same
                    // strings.
                    (0..per_thread)
                        .map(|i| {
                            let k = if t % 2 == 0 { i } else { per_thread - 1 - i };
                            let s = format!("s{}", k + t * per_thread / 4);
                            let id = table.intern(&s);
                            (s, id)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for (s, id) in results.into_iter().flatten() {
        let prev = *seen.entry(s.clone()).or_insert(id);
        assert_eq!(prev, id, "{s} got two ids");
        assert_eq!(table.get(id).as_deref(), Some(s.as_str()));
    }
    assert_eq!(table.len(), seen.len());
    // Ids are dense: exactly 0..len.
    let mut ids: Vec<u32> = seen.values().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..seen.len() as u32).collect::<Vec<_>>());
}

#[test]
fn concurrent_add_and_select() {
    let f = Fixture::new(Vec::<Series>::new());
    let matcher = [m(EQ, "k", "v")];
    std::thread::scope(|s| {
        s.spawn(|| {
            for id in 0..2000u64 {
                let pair = (f.symbols.intern("k"), f.symbols.intern("v"));
                f.postings.add(id, &[pair]);
            }
        });
        s.spawn(|| {
            let mut last = 0;
            for _ in 0..2000 {
                let n = f.postings.select(&f.symbols, &matcher).len();
                assert!(n >= last, "series vanished: {n} < {last}");
                last = n;
            }
        });
    });
    assert_eq!(f.postings.select(&f.symbols, &matcher).len(), 2000);
}

const NAMES: &[&str] = &["__name__", "a", "b", "c"];
const VALUES: &[&str] = &["x", "y", "xy", "yx", "foo", "FOO", "a.b", "a\nb", "1"];
const PATTERNS: &[&str] = &[
    "",
    ".*",
    ".+",
    "x|y",
    "x.*",
    "|x",
    "x|",
    "(x|y)z?",
    "f.o",
    "(?i)FOO",
    "[xy]",
    ".*y",
    r"a\.b",
    "a.b",
    "(?s:a.b)",
    "(?-s:a.b)",
    "[^x]*",
    r"\d",
    "(x|xy|foo)",
    "x+",
    "y*",
    "(?:yx|)",
    "nope",
    "x?y",
];

fn arb_series() -> impl Strategy<Value = Vec<Vec<(&'static str, &'static str)>>> {
    let series = proptest::collection::vec(
        proptest::option::of(proptest::sample::select(VALUES)),
        NAMES.len(),
    )
    .prop_map(|values| {
        NAMES
            .iter()
            .zip(values)
            .filter_map(|(n, v)| v.map(|v| (*n, v)))
            .collect::<Vec<_>>()
    });
    proptest::collection::vec(series, 0..25)
}

fn arb_matcher() -> impl Strategy<Value = Matcher> {
    let name = proptest::sample::select([NAMES, &["zz"]].concat());
    let value = prop_oneof![
        proptest::sample::select(VALUES),
        proptest::sample::select(PATTERNS),
    ];
    let op = proptest::sample::select(vec![EQ, NEQ, RE, NRE]);
    (op, name, value).prop_map(|(op, name, value)| m(op, name, value))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn select_equals_brute_force(
        series in arb_series(),
        matchers in proptest::collection::vec(arb_matcher(), 0..4),
    ) {
        // Spread ids over the u64 range so both halves of the treemap key are exercised.
        let f = Fixture::new(
            series.into_iter().enumerate().map(|(i, l)| ((i as u64) << 31 | i as u64, l)),
        );
        let want = f.brute_force(&matchers);
        prop_assert_eq!(f.select(&matchers), want.clone(), "{:?}",
            matchers.iter().map(Matcher::to_string).collect::<Vec<_>>());

        let within: RoaringTreemap = want.iter().copied().collect();
        let mut names: Vec<&str> = f.series.iter()
            .filter(|(id, _)| within.contains(*id))
            .flat_map(|(_, l)| l.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        let got = f.postings.label_names(&f.symbols, Some(&within));
        prop_assert_eq!(got.iter().map(|s| &**s).collect::<Vec<_>>(), names);

        let mut values: Vec<&str> = f.series.iter()
            .filter(|(id, _)| within.contains(*id))
            .filter_map(|(_, l)| l.get("a").map(String::as_str))
            .collect();
        values.sort_unstable();
        values.dedup();
        let got = f.postings.label_values(&f.symbols, "a", Some(&within));
        prop_assert_eq!(got.iter().map(|s| &**s).collect::<Vec<_>>(), values);
    }
}
