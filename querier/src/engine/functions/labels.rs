//! `label_replace` and `label_join`.

use std::sync::Arc;

use regex::Regex;

use crate::engine::aggregations::is_valid_label_name;
use crate::engine::error::{exec_err, EvalResult};
use crate::engine::eval::LabelCache;
use crate::engine::value::{LabelsBuilder, SharedLabels};

/// A prepared label rewrite, arguments validated.
#[derive(Debug)]
pub(crate) enum LabelRewrite {
    Replace {
        dst: String,
        replacement: String,
        src: String,
        regex: Regex,
    },
    Join {
        dst: String,
        separator: String,
        srcs: Vec<String>,
    },
}

impl LabelRewrite {
    /// `label_replace(v, dst, replacement, src, regex)`.
    pub(crate) fn replace(
        dst: &str,
        replacement: &str,
        src: &str,
        regex: &str,
    ) -> EvalResult<Self> {
        let Ok(compiled) = Regex::new(&format!("^(?:{regex})$")) else {
            return exec_err(format!(
                "invalid regular expression in label_replace(): {regex}"
            ));
        };
        if !is_valid_label_name(dst) {
            return exec_err(format!(
                "invalid destination label name in label_replace(): {dst}"
            ));
        }
        Ok(LabelRewrite::Replace {
            dst: dst.to_string(),
            replacement: replacement.to_string(),
            src: src.to_string(),
            regex: compiled,
        })
    }

    /// `label_join(v, dst, separator, src...)`.
    pub(crate) fn join(dst: &str, separator: &str, srcs: &[String]) -> EvalResult<Self> {
        if let Some(bad) = srcs.iter().find(|s| !is_valid_label_name(s)) {
            return exec_err(format!("invalid source label name in label_join(): {bad}"));
        }
        if !is_valid_label_name(dst) {
            return exec_err(format!(
                "invalid destination label name in label_join(): {dst}"
            ));
        }
        Ok(LabelRewrite::Join {
            dst: dst.to_string(),
            separator: separator.to_string(),
            srcs: srcs.to_vec(),
        })
    }

    /// The rewritten labels of one series (cached per series).
    pub(crate) fn apply(&self, cache: &mut LabelCache, labels: &SharedLabels) -> SharedLabels {
        cache.get_or(labels, |l| self.rewrite(l))
    }

    fn rewrite(&self, labels: &SharedLabels) -> SharedLabels {
        match self {
            LabelRewrite::Replace {
                dst,
                replacement,
                src,
                regex,
            } => {
                let value = labels.get(src).unwrap_or("");
                let Some(caps) = regex.captures(value) else {
                    return Arc::clone(labels);
                };
                let mut expanded = String::new();
                caps.expand(replacement, &mut expanded);
                let mut b = LabelsBuilder::new(labels);
                b.set(dst, &expanded);
                Arc::new(b.build())
            }
            LabelRewrite::Join {
                dst,
                separator,
                srcs,
            } => {
                let values: Vec<&str> = srcs.iter().map(|s| labels.get(s).unwrap_or("")).collect();
                let mut b = LabelsBuilder::new(labels);
                b.set(dst, &values.join(separator));
                Arc::new(b.build())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_shared::labels::Labels;

    #[test]
    fn replace_expands_groups_and_deletes_on_empty() {
        let mut cache = LabelCache::default();
        let l = Arc::new(Labels::from_pairs([("a", "foo-bar"), ("d", "x")]));
        let r = LabelRewrite::replace("d", "${2}_$1", "a", "(.*)-(.*)").unwrap();
        assert_eq!(r.apply(&mut cache, &l).get("d"), Some("bar_foo"));
        // As in Go, `$2_` names group "2_", which does not exist.
        let r = LabelRewrite::replace("d", "$2_${1}", "a", "(.*)-(.*)").unwrap();
        assert_eq!(
            r.apply(&mut LabelCache::default(), &l).get("d"),
            Some("foo")
        );
        let r = LabelRewrite::replace("d", "$1", "a", "(x*)foo-bar").unwrap();
        assert_eq!(r.apply(&mut LabelCache::default(), &l).get("d"), None);
        // No match: unchanged.
        let r = LabelRewrite::replace("d", "y", "a", "nomatch").unwrap();
        assert_eq!(r.apply(&mut LabelCache::default(), &l).get("d"), Some("x"));
        assert!(LabelRewrite::replace("d", "", "a", "(").is_err());
        assert!(LabelRewrite::replace("1d", "", "a", ".*").is_err());
    }

    #[test]
    fn join_concatenates_in_argument_order() {
        let l = Arc::new(Labels::from_pairs([("a", "1"), ("b", "2")]));
        let j = LabelRewrite::join("c", "-", &["b".into(), "missing".into(), "a".into()]).unwrap();
        assert_eq!(
            j.apply(&mut LabelCache::default(), &l).get("c"),
            Some("2--1")
        );
        assert!(LabelRewrite::join("c", "-", &["b-x".into()]).is_err());
    }
}
