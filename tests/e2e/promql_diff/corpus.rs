//! The expression corpus (`tests/e2e/promql/corpus.promql`) and statistics of how strong it
//! is against one endpoint's answers.
//!
//! File format: one expression per line. `#` lines are comments; `#@ group NAME` starts a
//! group, `#@ group NAME expect=error` a group whose expressions must fail at every
//! evaluation (their `errorType` is what is compared).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::compare::{DiffReport, Response};

#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) expr: String,
    pub(crate) group: String,
    pub(crate) expect_error: bool,
    /// 1-based line in the corpus file.
    pub(crate) line: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct Corpus {
    pub(crate) cases: Vec<Case>,
}

impl Corpus {
    pub(crate) fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/promql/corpus.promql")
    }

    pub(crate) fn load() -> Corpus {
        let path = Corpus::path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Corpus::parse(&text)
    }

    pub(crate) fn parse(text: &str) -> Corpus {
        let mut group = String::from("ungrouped");
        let mut expect_error = false;
        let mut cases = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_trimmed = line.trim();
            if let Some(directive) = line_trimmed.strip_prefix("#@") {
                let mut words = directive.split_whitespace();
                match words.next() {
                    Some("group") => {
                        group = words.next().expect("#@ group needs a name").to_string();
                        expect_error = false;
                        for w in words {
                            match w {
                                "expect=error" => expect_error = true,
                                other => panic!("line {}: unknown group option {other}", i + 1),
                            }
                        }
                    }
                    other => panic!("line {}: unknown directive {other:?}", i + 1),
                }
                continue;
            }
            if line_trimmed.is_empty() || line_trimmed.starts_with('#') {
                continue;
            }
            cases.push(Case {
                expr: line_trimmed.to_string(),
                group: group.clone(),
                expect_error,
                line: i + 1,
            });
        }
        Corpus { cases }
    }

    /// Replaces the time placeholders with Unix seconds of a data set whose first scrape is
    /// at `start_ms` and last at `last_ms`.
    pub(crate) fn with_times(mut self, start_ms: i64, last_ms: i64) -> Corpus {
        let secs = |ms: i64| (ms.div_euclid(1000)).to_string();
        let values = [
            ("{{start}}", secs(start_ms)),
            ("{{mid}}", secs(start_ms + 75 * 60_000)),
            ("{{last}}", secs(last_ms)),
            ("{{before}}", secs(start_ms - 3_600_000)),
            ("{{after}}", secs(last_ms + 3_600_000)),
        ];
        for case in &mut self.cases {
            for (placeholder, value) in &values {
                case.expr = case.expr.replace(placeholder, value);
            }
            assert!(
                !case.expr.contains("{{"),
                "line {}: unknown placeholder in {}",
                case.line,
                case.expr
            );
        }
        self
    }

    /// Expressions per group, in file order.
    pub(crate) fn breakdown(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for c in &self.cases {
            match out.last_mut() {
                Some((g, n)) if *g == c.group => *n += 1,
                _ => out.push((c.group.clone(), 1)),
            }
        }
        out
    }
}

/// How one expression did on the reference endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Successful everywhere it can be, non-empty at most evaluations.
    Strong,
    /// Successful but empty at half of its evaluations or more.
    MostlyEmpty,
    /// An error where none was expected (range errors of range-vector and string
    /// expressions excepted).
    UnexpectedError(String),
    /// In an `expect=error` group and failed everywhere, with these error types.
    ExpectedError(Vec<String>),
    /// In an `expect=error` group but succeeded somewhere.
    MissingError,
}

/// Per-expression statistics of the reference side of a report.
#[derive(Debug)]
pub(crate) struct CorpusStats {
    pub(crate) verdicts: Vec<Verdict>,
    /// Over all evaluations: non-empty successes, empty successes, errors by type.
    pub(crate) non_empty: usize,
    pub(crate) empty: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    /// Range evaluations of range-vector / string expressions, which must fail.
    pub(crate) range_of_non_vector: usize,
}

impl CorpusStats {
    pub(crate) fn from_reference(report: &DiffReport) -> CorpusStats {
        let mut stats = CorpusStats {
            verdicts: Vec::new(),
            non_empty: 0,
            empty: 0,
            errors: BTreeMap::new(),
            range_of_non_vector: 0,
        };
        for (c, case) in report.cases.iter().enumerate() {
            let outcomes: Vec<_> = report.outcomes.iter().filter(|o| o.case == c).collect();
            // The type an instant query gives: ranges of matrix/string expressions fail.
            let instant_type = outcomes
                .iter()
                .filter(|o| !report.evals[o.eval].is_range())
                .find_map(|o| o.reference.result_type().map(str::to_string));
            let not_rangeable = matches!(instant_type.as_deref(), Some("matrix" | "string"));
            let (mut ok, mut non_empty, mut error_types, mut unexpected) =
                (0usize, 0usize, Vec::new(), None);
            for o in &outcomes {
                let range = report.evals[o.eval].is_range();
                match &o.reference {
                    r @ Response::Success { .. } => {
                        ok += 1;
                        if r.is_non_empty() {
                            non_empty += 1;
                            stats.non_empty += 1;
                        } else {
                            stats.empty += 1;
                        }
                    }
                    r => {
                        let t = r.error_type().unwrap_or_default().to_string();
                        if range && not_rangeable && !case.expect_error {
                            stats.range_of_non_vector += 1;
                            continue;
                        }
                        *stats.errors.entry(t.clone()).or_default() += 1;
                        if unexpected.is_none() {
                            if let Response::Error { error, .. } = r {
                                unexpected = Some(format!("{t}: {error}"));
                            } else if let Response::Invalid(e) = r {
                                unexpected = Some(e.clone());
                            }
                        }
                        if !error_types.contains(&t) {
                            error_types.push(t);
                        }
                    }
                }
            }
            let verdict = if case.expect_error {
                if ok == 0 {
                    Verdict::ExpectedError(error_types)
                } else {
                    Verdict::MissingError
                }
            } else if let Some(e) = unexpected {
                Verdict::UnexpectedError(e)
            } else if non_empty * 2 > ok {
                Verdict::Strong
            } else {
                Verdict::MostlyEmpty
            };
            stats.verdicts.push(verdict);
        }
        stats
    }

    pub(crate) fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.verdicts.iter().filter(|v| f(v)).count()
    }

    /// Share of the non-error expressions that are non-empty at most evaluations.
    pub(crate) fn strong_share(&self) -> f64 {
        let strong = self.count(|v| *v == Verdict::Strong);
        let successful = strong + self.count(|v| *v == Verdict::MostlyEmpty);
        strong as f64 / successful.max(1) as f64
    }

    pub(crate) fn render(&self, report: &DiffReport) -> String {
        let mut out = format!(
            "reference {}: {} expressions: {} strong, {} mostly empty, {} expected errors, {} unexpected errors, {} expected errors that succeeded; strong share {:.1}%\n",
            report.reference,
            self.verdicts.len(),
            self.count(|v| *v == Verdict::Strong),
            self.count(|v| *v == Verdict::MostlyEmpty),
            self.count(|v| matches!(v, Verdict::ExpectedError(_))),
            self.count(|v| matches!(v, Verdict::UnexpectedError(_))),
            self.count(|v| *v == Verdict::MissingError),
            100.0 * self.strong_share()
        );
        out.push_str(&format!(
            "evaluations: {} non-empty, {} empty, errors {:?}, {} range evaluations of range-vector/string expressions (bad_data as expected)\n",
            self.non_empty, self.empty, self.errors, self.range_of_non_vector
        ));
        let mut expected_types: BTreeMap<String, usize> = BTreeMap::new();
        for v in &self.verdicts {
            if let Verdict::ExpectedError(types) = v {
                *expected_types.entry(types.join("+")).or_default() += 1;
            }
        }
        out.push_str(&format!("expected errors by type: {expected_types:?}\n"));
        for (case, v) in report.cases.iter().zip(&self.verdicts) {
            match v {
                Verdict::MostlyEmpty => out.push_str(&format!(
                    "  mostly empty  line {} [{}] {}\n",
                    case.line, case.group, case.expr
                )),
                Verdict::UnexpectedError(e) => out.push_str(&format!(
                    "  UNEXPECTED ERROR line {} [{}] {}\n      {e}\n",
                    case.line, case.group, case.expr
                )),
                Verdict::MissingError => out.push_str(&format!(
                    "  NO ERROR line {} [{}] {}\n",
                    case.line, case.group, case.expr
                )),
                _ => {}
            }
        }
        out
    }
}
