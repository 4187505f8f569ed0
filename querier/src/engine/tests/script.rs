//! The test script format of `testdata/*.test`.
//!
//! ```text
//! # comment
//! load 1m                                   # samples at 0, 1m, 2m, ...
//!   metric{label="value"}  1 2 _ stale 0+10x3 5x2 _x2
//! clear                                     # forget loaded series
//! set lookback 1m | set max_samples 100     # engine options for later evals
//! eval instant at 5m <query>                # expected result lines follow, indented
//!   {label="value"} 3                       # vector element (unordered)
//!   42                                      # scalar
//!   "text"                                  # string
//!   metric{a="b"} 1@60s 2@120s              # instant query of a range vector
//! eval_ordered instant at 5m <query>        # vector elements in this order
//! eval range from 0 to 10m step 1m <query>
//!   {a="b"} 1 2 _ 4                          # one value per step, _ = no point
//! eval_fail instant at 0 <query>
//!   error <substring>                        # optional
//!   type <error type>                        # optional
//! ```
//! Value notation: `a+bxN` / `a-bxN` expands to N+1 values from a by b, `axN` to N+1
//! copies, `_xN` to N gaps, `stale` to a staleness marker.

use promql_parser::parser::{self, Expr};
use strata_shared::labels::{Labels, METRIC_NAME};

use crate::engine::value::STALE_NAN_BITS;

/// A value slot of a series definition or expected range result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Slot {
    Value(f64),
    Gap,
}

#[derive(Clone, Debug)]
pub(crate) enum Expected {
    Vector(Vec<(Labels, f64)>),
    Scalar(f64),
    String(String),
    /// Range results, or an instant query's range vector: (timestamp, value) points.
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

#[derive(Clone, Debug)]
pub(crate) enum Timing {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Clone, Debug)]
pub(crate) enum Command {
    Load {
        interval: i64,
        series: Vec<(Labels, Vec<Slot>)>,
    },
    Clear,
    Set {
        option: String,
        value: String,
    },
    Eval {
        line: usize,
        query: String,
        timing: Timing,
        ordered: bool,
        expected: Expected,
    },
    EvalFail {
        line: usize,
        query: String,
        timing: Timing,
        message: Option<String>,
        error_type: Option<String>,
    },
}

fn err<T>(line: usize, msg: impl std::fmt::Display) -> Result<T, String> {
    Err(format!("line {line}: {msg}"))
}

/// Milliseconds of a duration (`5m`, `1h30m`, `-2m`) or of plain seconds (`100`, `1.5`).
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let ms = if let Ok(secs) = body.parse::<f64>() {
        (secs * 1000.0).round() as i64
    } else if body
        .trim_end_matches(char::is_alphabetic)
        .chars()
        .all(|c| c == '0')
    {
        // `0m`, `0s`: the duration parser refuses zero.
        0
    } else {
        let d = promql_parser::util::parse_duration(body)?;
        i64::try_from(d.as_millis()).map_err(|e| e.to_string())?
    };
    Ok(if neg { -ms } else { ms })
}

pub(crate) fn parse_number(s: &str) -> Result<f64, String> {
    match s {
        "stale" => Ok(f64::from_bits(STALE_NAN_BITS)),
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|e| format!("bad number {s:?}: {e}")),
    }
}

/// Expands value notation into slots.
pub(crate) fn parse_slots(text: &str) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        if tok == "_" {
            out.push(Slot::Gap);
        } else if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|e| format!("{tok}: {e}"))?;
            out.extend(std::iter::repeat_n(Slot::Gap, n));
        } else if let Some((head, n)) = tok.rsplit_once('x').filter(|(h, _)| !h.is_empty()) {
            let n: usize = n.parse().map_err(|e| format!("{tok}: {e}"))?;
            // Find the operator between start and increment (not a leading sign or exponent).
            let op = head
                .char_indices()
                .skip(1)
                .filter(|&(i, c)| {
                    (c == '+' || c == '-') && !matches!(head.as_bytes()[i - 1], b'e' | b'E')
                })
                .last();
            let (start, step) = match op {
                Some((i, c)) => {
                    let step = parse_number(&head[i + 1..])?;
                    (
                        parse_number(&head[..i])?,
                        if c == '-' { -step } else { step },
                    )
                }
                None => (parse_number(head)?, 0.0),
            };
            for k in 0..=n {
                out.push(Slot::Value(start + step * k as f64));
            }
        } else {
            out.push(Slot::Value(parse_number(tok)?));
        }
    }
    Ok(out)
}

/// Splits `metric{a="b c"} rest` into the series text and the rest.
fn split_series(line: &str) -> (&str, &str) {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut depth = 0;
    for (i, c) in line.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&line[..=i], line[i + 1..].trim());
                }
            }
            c if c.is_whitespace() && depth == 0 => return (&line[..i], line[i..].trim()),
            _ => {}
        }
    }
    (line, "")
}

/// The label set a series text such as `metric{a="b"}` or `{}` denotes.
pub(crate) fn parse_labels(text: &str) -> Result<Labels, String> {
    if text == "{}" {
        return Ok(Labels::default());
    }
    match parser::parse(text)? {
        Expr::VectorSelector(vs) => {
            let mut pairs: Vec<(String, String)> = vs
                .matchers
                .matchers
                .iter()
                .filter(|m| !m.value.is_empty())
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            if let Some(name) = vs.name {
                pairs.push((METRIC_NAME.to_string(), name));
            }
            Ok(Labels::from_pairs(pairs))
        }
        other => Err(format!("not a series: {other}")),
    }
}

fn parse_timing(words: &mut std::str::SplitWhitespace<'_>, line: usize) -> Result<Timing, String> {
    match words.next() {
        Some("instant") => {
            if words.next() != Some("at") {
                return err(line, "expected 'at'");
            }
            let t = words
                .next()
                .ok_or_else(|| format!("line {line}: missing time"))?;
            Ok(Timing::Instant(parse_time(t)?))
        }
        Some("range") => {
            let mut next = |kw: &str| -> Result<i64, String> {
                if words.next() != Some(kw) {
                    return err(line, format!("expected '{kw}'"));
                }
                parse_time(words.next().unwrap_or(""))
            };
            let start = next("from")?;
            let end = next("to")?;
            let step = next("step")?;
            Ok(Timing::Range { start, end, step })
        }
        other => err(line, format!("expected instant or range, got {other:?}")),
    }
}

/// Parses a whole script.
pub(crate) fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (line, text) = lines[i];
        if text.starts_with(char::is_whitespace) {
            return err(line, "indented line outside a block");
        }
        let mut body = Vec::new();
        let mut j = i + 1;
        while j < lines.len() && lines[j].1.starts_with(char::is_whitespace) {
            body.push((lines[j].0, lines[j].1.trim()));
            j += 1;
        }
        i = j;
        let mut words = text.split_whitespace();
        let keyword = words.next().unwrap_or("");
        match keyword {
            "load" => {
                let interval = parse_time(words.next().unwrap_or(""))?;
                let mut series = Vec::new();
                for (l, b) in body {
                    let (name, values) = split_series(b);
                    let labels = parse_labels(name).map_err(|e| format!("line {l}: {e}"))?;
                    series.push((
                        labels,
                        parse_slots(values).map_err(|e| format!("line {l}: {e}"))?,
                    ));
                }
                commands.push(Command::Load { interval, series });
            }
            "clear" => commands.push(Command::Clear),
            "set" => commands.push(Command::Set {
                option: words.next().unwrap_or("").to_string(),
                value: words.next().unwrap_or("").to_string(),
            }),
            "eval" | "eval_ordered" | "eval_fail" => {
                let timing = parse_timing(&mut words, line)?;
                let query = words.collect::<Vec<_>>().join(" ");
                if keyword == "eval_fail" {
                    let mut message = None;
                    let mut error_type = None;
                    for (_, b) in body {
                        if let Some(m) = b.strip_prefix("error ") {
                            message = Some(m.trim().to_string());
                        } else if let Some(t) = b.strip_prefix("type ") {
                            error_type = Some(t.trim().to_string());
                        }
                    }
                    commands.push(Command::EvalFail {
                        line,
                        query,
                        timing,
                        message,
                        error_type,
                    });
                    continue;
                }
                let expected = parse_expected(&body, &timing)?;
                commands.push(Command::Eval {
                    line,
                    query,
                    timing,
                    ordered: keyword == "eval_ordered",
                    expected,
                });
            }
            other => return err(line, format!("unknown command {other:?}")),
        }
    }
    Ok(commands)
}

fn parse_expected(body: &[(usize, &str)], timing: &Timing) -> Result<Expected, String> {
    if let [(l, only)] = body {
        if let Some(s) = only.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            return Ok(Expected::String(s.to_string()));
        }
        if let Ok(v) = parse_number(only) {
            if !only.contains('{') {
                return Ok(Expected::Scalar(v));
            }
        }
        let _ = l;
    }
    let mut vector = Vec::new();
    let mut matrix = Vec::new();
    for &(l, b) in body {
        let (name, values) = split_series(b);
        let labels = parse_labels(name).map_err(|e| format!("line {l}: {e}"))?;
        match timing {
            Timing::Range { start, step, .. } => {
                let slots = parse_slots(values).map_err(|e| format!("line {l}: {e}"))?;
                let points = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(k, s)| match s {
                        Slot::Value(v) => Some((start + step * k as i64, *v)),
                        Slot::Gap => None,
                    })
                    .collect();
                matrix.push((labels, points));
            }
            Timing::Instant(_) if values.contains('@') => {
                let mut points = Vec::new();
                for tok in values.split_whitespace() {
                    let (v, t) = tok
                        .split_once('@')
                        .ok_or_else(|| format!("line {l}: expected value@time, got {tok}"))?;
                    points.push((parse_time(t)?, parse_number(v)?));
                }
                matrix.push((labels, points));
            }
            Timing::Instant(_) => {
                vector.push((
                    labels,
                    parse_number(values).map_err(|e| format!("line {l}: {e}"))?,
                ));
            }
        }
    }
    if matches!(timing, Timing::Range { .. }) || !matrix.is_empty() {
        return Ok(Expected::Matrix(matrix));
    }
    Ok(Expected::Vector(vector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_notation_expands() {
        let slots = parse_slots("1 _ stale 0+10x2 5x1 _x2 -1-1x1 1e-3+1e-3x1").unwrap();
        let values: Vec<Option<f64>> = slots
            .iter()
            .map(|s| match s {
                Slot::Value(v) => Some(*v),
                Slot::Gap => None,
            })
            .collect();
        assert_eq!(values[0], Some(1.0));
        assert_eq!(values[1], None);
        assert!(values[2].is_some_and(|v| v.to_bits() == STALE_NAN_BITS));
        assert_eq!(&values[3..6], &[Some(0.0), Some(10.0), Some(20.0)]);
        assert_eq!(&values[6..8], &[Some(5.0), Some(5.0)]);
        assert_eq!(&values[8..10], &[None, None]);
        assert_eq!(&values[10..12], &[Some(-1.0), Some(-2.0)]);
        assert_eq!(&values[12..14], &[Some(1e-3), Some(2e-3)]);
    }

    #[test]
    fn times_and_labels_parse() {
        assert_eq!(parse_time("5m").unwrap(), 300_000);
        assert_eq!(parse_time("-1m30s").unwrap(), -90_000);
        assert_eq!(parse_time("1.5").unwrap(), 1_500);
        assert_eq!(parse_time("0m").unwrap(), 0);
        let l = parse_labels("up{job=\"a b\"}").unwrap();
        assert_eq!(l.get("job"), Some("a b"));
        assert_eq!(l.metric_name(), "up");
        assert_eq!(
            split_series("up{job=\"a } b\"} 1 2"),
            ("up{job=\"a } b\"}", "1 2")
        );
    }
}
