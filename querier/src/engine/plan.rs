//! Preparing a query: parse it, keep to what Prometheus 2.42 accepts, resolve `@ start()` /
//! `@ end()`, number the selectors, and mark step-invariant subtrees as Prometheus'
//! `PreprocessExpr` does (they are evaluated once and repeated at every step).

use std::sync::Once;
use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp as ParserMatchOp, Matcher};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    self as ast, AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality,
};
use strata_shared::labels::METRIC_NAME;
use strata_shared::query::{LabelMatcher, MatchOp};

use super::error::EngineError;
use super::functions::Func;
use crate::bounds::{
    seconds_text, time_in_range, time_range_text, MAX_DURATION_MS, MAX_TIME_MS, MIN_TIME_MS,
};
use crate::query_shape::ShapeLimits;

/// The type of a node's result, as PromQL types expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueKind {
    /// The name Prometheus' documentation (and its error messages) use.
    pub(crate) fn documented(self) -> &'static str {
        match self {
            ValueKind::Scalar => "scalar",
            ValueKind::Vector => "instant vector",
            ValueKind::Matrix => "range vector",
            ValueKind::String => "string",
        }
    }
}

/// A vector selector: which series, and where in time relative to the evaluation.
#[derive(Clone, Debug)]
pub(crate) struct Selector {
    /// Index of the selector's fetched series.
    pub(crate) id: usize,
    pub(crate) matchers: Vec<LabelMatcher>,
    pub(crate) offset_ms: i64,
    /// The `@` timestamp, `start()`/`end()` already resolved.
    pub(crate) at_ms: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    And,
    Or,
    Unless,
    Atan2,
}

impl BinOp {
    pub(crate) fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte
        )
    }

    /// Whether the result loses `__name__` (arithmetic; not comparisons, not `atan2`).
    pub(crate) fn drops_metric_name(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow | BinOp::Mod
        )
    }
}

/// How series on both sides of a vector operation pair up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

#[derive(Clone, Debug)]
pub(crate) struct VectorMatching {
    pub(crate) card: Cardinality,
    /// `on(...)` when true, `ignoring(...)` (possibly empty) when false.
    pub(crate) on: bool,
    pub(crate) labels: Vec<String>,
    /// The `group_left(...)` / `group_right(...)` labels.
    pub(crate) include: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct BinaryNode {
    pub(crate) op: BinOp,
    pub(crate) lhs: Node,
    pub(crate) rhs: Node,
    pub(crate) return_bool: bool,
    pub(crate) matching: VectorMatching,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
}

#[derive(Clone, Debug)]
pub(crate) struct AggregateNode {
    pub(crate) op: AggOp,
    pub(crate) expr: Node,
    pub(crate) param: Option<Node>,
    /// Sorted.
    pub(crate) grouping: Vec<String>,
    pub(crate) without: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct SubqueryNode {
    pub(crate) expr: Node,
    pub(crate) range_ms: i64,
    /// 0 when the query gives none (the default evaluation interval applies).
    pub(crate) step_ms: i64,
    pub(crate) offset_ms: i64,
    pub(crate) at_ms: Option<i64>,
}

/// A prepared expression. Parentheses are gone (Prometheus unwraps them everywhere it
/// looks at a node's shape).
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Number(f64),
    Str(String),
    VectorSelector(Selector),
    MatrixSelector {
        selector: Selector,
        range_ms: i64,
    },
    Subquery(Box<SubqueryNode>),
    Neg(Box<Node>),
    Binary(Box<BinaryNode>),
    Aggregate(Box<AggregateNode>),
    Call {
        func: Func,
        args: Vec<Node>,
    },
    /// Evaluated at the first step only, the result repeated at every step.
    StepInvariant(Box<Node>),
}

impl Node {
    pub(crate) fn kind(&self) -> ValueKind {
        match self {
            Node::Number(_) => ValueKind::Scalar,
            Node::Str(_) => ValueKind::String,
            Node::VectorSelector(_) | Node::Aggregate(_) => ValueKind::Vector,
            Node::MatrixSelector { .. } | Node::Subquery(_) => ValueKind::Matrix,
            Node::Neg(inner) | Node::StepInvariant(inner) => inner.kind(),
            Node::Binary(b) => {
                if b.lhs.kind() == ValueKind::Scalar && b.rhs.kind() == ValueKind::Scalar {
                    ValueKind::Scalar
                } else {
                    ValueKind::Vector
                }
            }
            Node::Call { func, .. } => func.return_kind(),
        }
    }

    /// The node inside a step-invariant marker, or the node itself.
    pub(crate) fn unwrap_invariant(&self) -> &Node {
        match self {
            Node::StepInvariant(inner) => inner,
            other => other,
        }
    }
}

/// A prepared query.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) root: Node,
    /// Every selector in the query, indexed by [`Selector::id`].
    pub(crate) selectors: Vec<SelectorUse>,
    /// The pre-scan's bound of the expression's depth.
    pub(crate) depth: usize,
}

/// Plans up to this deep are dropped on whatever thread drops them: measured, dropping a
/// 1,000-level tree needs well under the 2 MiB of an executor thread even in a debug build.
const INLINE_DROP_DEPTH: usize = 1_000;

impl Drop for Plan {
    /// Dropping the tree recurses once per level. A deeper plan dropped away from a query
    /// thread (a failed fetch, a client gone mid-query) is handed to a thread of its own
    /// with a stack sized for it, so an executor thread never overflows.
    fn drop(&mut self) {
        if self.depth <= INLINE_DROP_DEPTH
            || std::thread::current().name() == Some(super::QUERY_THREAD_NAME)
        {
            return;
        }
        let root = std::mem::replace(&mut self.root, Node::Number(0.0));
        let spawned = std::thread::Builder::new()
            .name(super::QUERY_THREAD_NAME.to_string())
            .stack_size(super::stack_bytes_for_depth(self.depth))
            .spawn(move || drop(root));
        if let Err(e) = spawned {
            tracing::error!(error = %e, depth = self.depth, "cannot start a thread to drop a deep query plan; dropping it here");
        }
    }
}

/// What the fetch stage needs to know about one selector.
#[derive(Clone, Debug)]
pub(crate) struct SelectorUse {
    pub(crate) matchers: Vec<LabelMatcher>,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
}

/// Parses a query (after the pre-parse checks of `shape`) and prepares it for evaluation
/// between `start_ms` and `end_ms`. Every time the plan derives (offsets, ranges, `@`,
/// lookback) is computed with checked arithmetic: an out-of-range one is a `bad_data` error.
pub(crate) fn prepare(
    query: &str,
    shape: &ShapeLimits,
    start_ms: i64,
    end_ms: i64,
    lookback_ms: i64,
) -> Result<Plan, EngineError> {
    register_extra_functions();
    let depth = shape.check(query).map_err(EngineError::QueryShape)?.depth();
    let expr = ast::parse(query).map_err(|e| EngineError::BadData(parse_error(&e)))?;
    let mut converter = Converter {
        start_ms,
        end_ms,
        next_selector_id: 0,
    };
    let root = converter.convert(&expr, true)?;
    let (root, invariant) = wrap_step_invariant(root);
    let root = if invariant {
        Node::StepInvariant(Box::new(root))
    } else {
        root
    };
    let mut plan = Plan {
        root,
        selectors: Vec::new(),
        depth,
    };
    let mut selectors = Vec::new();
    collect_selector_ranges(
        &plan.root,
        &mut selectors,
        &RangeContext {
            start_ms,
            end_ms,
            lookback_ms,
            subquery_offset_ms: 0,
            subquery_range_ms: 0,
            subquery_at_ms: None,
        },
    )?;
    selectors.sort_by_key(|(id, _)| *id);
    plan.selectors = selectors.into_iter().map(|(_, s)| s).collect();
    Ok(plan)
}

fn parse_error(msg: &str) -> String {
    if msg.starts_with("parse error") {
        msg.to_string()
    } else {
        format!("parse error: {msg}")
    }
}

/// `holt_winters` is Prometheus 2.42's name; the parser only knows its later name.
fn register_extra_functions() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let holt_winters = ast::Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        // Fails only if the parser ever learns the name itself, which is what we want then.
        let _ = ast::register_extra_functions(vec![holt_winters]);
    });
}

struct Converter {
    start_ms: i64,
    end_ms: i64,
    next_selector_id: usize,
}

fn bad<T>(msg: impl Into<String>) -> Result<T, EngineError> {
    Err(EngineError::BadData(msg.into()))
}

/// A duration of the query text in ms; over 292 years (what Prometheus' `time.Duration`
/// holds, and so what its parser accepts) is a parse error, as in Prometheus.
fn duration_ms(d: &Duration, what: &str) -> Result<i64, EngineError> {
    i64::try_from(d.as_millis())
        .ok()
        .filter(|ms| *ms <= MAX_DURATION_MS)
        .ok_or_else(|| {
            EngineError::BadData(format!(
                "parse error: {what} duration out of range: at most {MAX_DURATION_MS} ms (292 years)"
            ))
        })
}

fn offset_ms(offset: &Option<Offset>) -> Result<i64, EngineError> {
    Ok(match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d, "offset")?,
        Some(Offset::Neg(d)) => -duration_ms(d, "offset")?,
    })
}

/// An `@` time in ms; outside the times Prometheus' API can name it is refused with
/// Prometheus' message for an `@` out of bounds.
fn system_time_ms(t: &SystemTime) -> Result<i64, EngineError> {
    let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|m| -m),
    };
    // The value is not repeated: the parser has already saturated a huge one.
    ms.filter(|ms| time_in_range(*ms)).ok_or_else(|| {
        EngineError::BadData(format!(
            "parse error: timestamp out of bounds for @ modifier (Strata accepts {})",
            time_range_text()
        ))
    })
}

fn label_names(labels: &promql_parser::label::Labels) -> Vec<String> {
    labels.labels.clone()
}

impl Converter {
    /// `resolve_at` is false inside aggregation parameters, which Prometheus 2.42's
    /// preprocessing never visits: an `@ start()`/`@ end()` there is ignored.
    fn at_ms(&self, at: &Option<AtModifier>, resolve_at: bool) -> Result<Option<i64>, EngineError> {
        Ok(match at {
            None => None,
            Some(AtModifier::At(t)) => Some(system_time_ms(t)?),
            Some(AtModifier::Start) => resolve_at.then_some(self.start_ms),
            Some(AtModifier::End) => resolve_at.then_some(self.end_ms),
        })
    }

    fn selector(
        &mut self,
        vs: &ast::VectorSelector,
        resolve_at: bool,
    ) -> Result<Selector, EngineError> {
        if !vs.matchers.or_matchers.is_empty() {
            return bad("parse error: 'or' in label matchers is not supported");
        }
        let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
        if let Some(name) = &vs.name {
            matchers.push(LabelMatcher::equal(METRIC_NAME, name.clone()));
        }
        for m in &vs.matchers.matchers {
            matchers.push(convert_matcher(m)?);
        }
        let id = self.next_selector_id;
        self.next_selector_id += 1;
        Ok(Selector {
            id,
            matchers,
            offset_ms: offset_ms(&vs.offset)?,
            at_ms: self.at_ms(&vs.at, resolve_at)?,
        })
    }

    fn convert(&mut self, expr: &Expr, resolve_at: bool) -> Result<Node, EngineError> {
        Ok(match expr {
            Expr::NumberLiteral(n) => Node::Number(n.val),
            Expr::StringLiteral(s) => Node::Str(s.val.clone()),
            Expr::Paren(p) => self.convert(&p.expr, resolve_at)?,
            Expr::Unary(u) => Node::Neg(Box::new(self.convert(&u.expr, resolve_at)?)),
            Expr::VectorSelector(vs) => Node::VectorSelector(self.selector(vs, resolve_at)?),
            Expr::MatrixSelector(ms) => {
                let range_ms = duration_ms(&ms.range, "range")?;
                Node::MatrixSelector {
                    selector: self.selector(&ms.vs, resolve_at)?,
                    range_ms,
                }
            }
            Expr::Subquery(sq) => Node::Subquery(Box::new(SubqueryNode {
                expr: self.convert(&sq.expr, resolve_at)?,
                range_ms: duration_ms(&sq.range, "subquery range")?,
                step_ms: match &sq.step {
                    Some(step) => duration_ms(step, "subquery step")?,
                    None => 0,
                },
                offset_ms: offset_ms(&sq.offset)?,
                at_ms: self.at_ms(&sq.at, resolve_at)?,
            })),
            Expr::Binary(b) => Node::Binary(Box::new(self.binary(b, resolve_at)?)),
            Expr::Aggregate(a) => Node::Aggregate(Box::new(self.aggregate(a, resolve_at)?)),
            Expr::Call(call) => {
                let Some(func) = Func::from_name(call.func.name) else {
                    return bad(format!(
                        "parse error: unknown function with name {:?}",
                        call.func.name
                    ));
                };
                let args = call
                    .args
                    .args
                    .iter()
                    .map(|a| self.convert(a, resolve_at))
                    .collect::<Result<Vec<_>, _>>()?;
                Node::Call { func, args }
            }
            Expr::Extension(_) => return bad("parse error: unsupported expression"),
        })
    }

    fn binary(&mut self, b: &ast::BinaryExpr, resolve_at: bool) -> Result<BinaryNode, EngineError> {
        let op = match b.op.id() {
            token::T_ADD => BinOp::Add,
            token::T_SUB => BinOp::Sub,
            token::T_MUL => BinOp::Mul,
            token::T_DIV => BinOp::Div,
            token::T_MOD => BinOp::Mod,
            token::T_POW => BinOp::Pow,
            token::T_EQLC => BinOp::Eql,
            token::T_NEQ => BinOp::Neq,
            token::T_GTR => BinOp::Gtr,
            token::T_LSS => BinOp::Lss,
            token::T_GTE => BinOp::Gte,
            token::T_LTE => BinOp::Lte,
            token::T_LAND => BinOp::And,
            token::T_LOR => BinOp::Or,
            token::T_LUNLESS => BinOp::Unless,
            token::T_ATAN2 => BinOp::Atan2,
            _ => return bad(format!("parse error: unsupported binary operator {}", b.op)),
        };
        let lhs = self.convert(&b.lhs, resolve_at)?;
        let rhs = self.convert(&b.rhs, resolve_at)?;
        let set_op = matches!(op, BinOp::And | BinOp::Or | BinOp::Unless);
        let mut matching = VectorMatching {
            card: if set_op {
                Cardinality::ManyToMany
            } else {
                Cardinality::OneToOne
            },
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
        };
        let mut return_bool = false;
        if let Some(modifier) = &b.modifier {
            if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
                return bad("parse error: fill modifiers are not supported");
            }
            return_bool = modifier.return_bool;
            match &modifier.matching {
                Some(LabelModifier::Include(l)) => {
                    matching.on = true;
                    matching.labels = label_names(l);
                }
                Some(LabelModifier::Exclude(l)) => matching.labels = label_names(l),
                None => {}
            }
            match &modifier.card {
                VectorMatchCardinality::ManyToOne(l) if !set_op => {
                    matching.card = Cardinality::ManyToOne;
                    matching.include = label_names(l);
                }
                VectorMatchCardinality::OneToMany(l) if !set_op => {
                    matching.card = Cardinality::OneToMany;
                    matching.include = label_names(l);
                }
                _ => {}
            }
        }
        if op.is_comparison()
            && !return_bool
            && lhs.kind() == ValueKind::Scalar
            && rhs.kind() == ValueKind::Scalar
        {
            return bad("parse error: comparisons between scalars must use BOOL modifier");
        }
        Ok(BinaryNode {
            op,
            lhs,
            rhs,
            return_bool,
            matching,
        })
    }

    fn aggregate(
        &mut self,
        a: &ast::AggregateExpr,
        resolve_at: bool,
    ) -> Result<AggregateNode, EngineError> {
        let op = match a.op.id() {
            token::T_SUM => AggOp::Sum,
            token::T_AVG => AggOp::Avg,
            token::T_COUNT => AggOp::Count,
            token::T_MIN => AggOp::Min,
            token::T_MAX => AggOp::Max,
            token::T_GROUP => AggOp::Group,
            token::T_STDDEV => AggOp::Stddev,
            token::T_STDVAR => AggOp::Stdvar,
            token::T_TOPK => AggOp::Topk,
            token::T_BOTTOMK => AggOp::Bottomk,
            token::T_COUNT_VALUES => AggOp::CountValues,
            token::T_QUANTILE => AggOp::Quantile,
            other => return bad(unknown_aggregation(other, &a.op)),
        };
        let (mut grouping, without) = match &a.modifier {
            Some(LabelModifier::Include(l)) => (label_names(l), false),
            Some(LabelModifier::Exclude(l)) => (label_names(l), true),
            None => (Vec::new(), false),
        };
        grouping.sort();
        let param = match &a.param {
            Some(p) => Some(self.convert(p, false)?),
            None => None,
        };
        Ok(AggregateNode {
            op,
            expr: self.convert(&a.expr, resolve_at)?,
            param,
            grouping,
            without,
        })
    }
}

fn unknown_aggregation(_id: TokenId, op: &ast::token::TokenType) -> String {
    format!("parse error: unknown aggregation operator {op}")
}

fn convert_matcher(m: &Matcher) -> Result<LabelMatcher, EngineError> {
    let op = match m.op {
        ParserMatchOp::Equal => MatchOp::Equal,
        ParserMatchOp::NotEqual => MatchOp::NotEqual,
        ParserMatchOp::Re(_) => MatchOp::Regex,
        ParserMatchOp::NotRe(_) => MatchOp::NotRegex,
    };
    LabelMatcher::new(op, m.name.clone(), m.value.clone()).map_err(EngineError::from)
}

/// Marks step-invariant subtrees following Prometheus' `preprocessExprHelper`; returns the
/// node and whether it is itself step invariant (the caller wraps it).
fn wrap_step_invariant(node: Node) -> (Node, bool) {
    fn wrap_if(node: Node, invariant: bool) -> Node {
        if invariant {
            Node::StepInvariant(Box::new(node))
        } else {
            node
        }
    }
    match node {
        Node::Number(_) | Node::Str(_) => (node, true),
        Node::VectorSelector(ref s) => {
            let inv = s.at_ms.is_some();
            (node, inv)
        }
        Node::MatrixSelector { ref selector, .. } => {
            let inv = selector.at_ms.is_some();
            (node, inv)
        }
        Node::Neg(inner) => {
            let (inner, inv) = wrap_step_invariant(*inner);
            (Node::Neg(Box::new(inner)), inv)
        }
        Node::Aggregate(mut a) => {
            let expr = std::mem::replace(&mut a.expr, Node::Number(0.0));
            let (expr, inv) = wrap_step_invariant(expr);
            a.expr = expr;
            (Node::Aggregate(a), inv)
        }
        Node::Binary(mut b) => {
            let lhs = std::mem::replace(&mut b.lhs, Node::Number(0.0));
            let rhs = std::mem::replace(&mut b.rhs, Node::Number(0.0));
            let (lhs, inv_l) = wrap_step_invariant(lhs);
            let (rhs, inv_r) = wrap_step_invariant(rhs);
            if inv_l && inv_r {
                b.lhs = lhs;
                b.rhs = rhs;
                return (Node::Binary(b), true);
            }
            b.lhs = wrap_if(lhs, inv_l);
            b.rhs = wrap_if(rhs, inv_r);
            (Node::Binary(b), false)
        }
        Node::Call { func, args } => {
            let wrapped: Vec<(Node, bool)> = args.into_iter().map(wrap_step_invariant).collect();
            let inv = !func.is_at_modifier_unsafe() && wrapped.iter().all(|(_, i)| *i);
            let args = if inv {
                wrapped.into_iter().map(|(n, _)| n).collect()
            } else {
                wrapped.into_iter().map(|(n, i)| wrap_if(n, i)).collect()
            };
            (Node::Call { func, args }, inv)
        }
        Node::Subquery(mut sq) => {
            let expr = std::mem::replace(&mut sq.expr, Node::Number(0.0));
            let (expr, inv) = wrap_step_invariant(expr);
            sq.expr = wrap_if(expr, inv);
            let inv = sq.at_ms.is_some();
            (Node::Subquery(sq), inv)
        }
        Node::StepInvariant(_) => (node, true),
    }
}

/// Where a selector sits: the query's range and the subqueries around it.
#[derive(Clone, Copy)]
struct RangeContext {
    start_ms: i64,
    end_ms: i64,
    lookback_ms: i64,
    subquery_offset_ms: i64,
    subquery_range_ms: i64,
    subquery_at_ms: Option<i64>,
}

/// The samples each selector needs across the whole query, as Prometheus'
/// `getTimeRangesForSelector` computes them, with checked arithmetic: a window past `i64`
/// is a `bad_data` error naming the selector; one past the API's times is clamped to them
/// (no sample lies outside, and the data sources then never see an extreme bound).
fn collect_selector_ranges(
    node: &Node,
    out: &mut Vec<(usize, SelectorUse)>,
    ctx: &RangeContext,
) -> Result<(), EngineError> {
    let add = |out: &mut Vec<(usize, SelectorUse)>,
               selector: &Selector,
               range_ms: i64|
     -> Result<(), EngineError> {
        let overflow = || {
            EngineError::BadData(format!(
                "the time range selector {} would read is out of bounds: its offsets, ranges, @ and the lookback delta add up past {} (Strata accepts {})",
                selector_text(selector),
                seconds_text(if ctx.start_ms < 0 { MIN_TIME_MS } else { MAX_TIME_MS }),
                time_range_text()
            ))
        };
        let (mut start, mut end) = match ctx.subquery_at_ms {
            Some(at) => (at, at),
            None => (ctx.start_ms, ctx.end_ms),
        };
        if let Some(at) = selector.at_ms {
            start = at;
            end = at;
        } else {
            start = start
                .checked_sub(ctx.subquery_offset_ms)
                .and_then(|s| s.checked_sub(ctx.subquery_range_ms))
                .ok_or_else(overflow)?;
            end = end
                .checked_sub(ctx.subquery_offset_ms)
                .ok_or_else(overflow)?;
        }
        let back = if range_ms == 0 {
            ctx.lookback_ms
        } else {
            range_ms
        };
        start = start
            .checked_sub(back)
            .and_then(|s| s.checked_sub(selector.offset_ms))
            .ok_or_else(overflow)?;
        end = end.checked_sub(selector.offset_ms).ok_or_else(overflow)?;
        out.push((
            selector.id,
            SelectorUse {
                matchers: selector.matchers.clone(),
                start_ms: start.clamp(MIN_TIME_MS, MAX_TIME_MS),
                end_ms: end.clamp(MIN_TIME_MS, MAX_TIME_MS),
            },
        ));
        Ok(())
    };
    match node {
        Node::Number(_) | Node::Str(_) => {}
        Node::VectorSelector(s) => add(out, s, 0)?,
        Node::MatrixSelector { selector, range_ms } => add(out, selector, *range_ms)?,
        Node::Neg(inner) | Node::StepInvariant(inner) => collect_selector_ranges(inner, out, ctx)?,
        Node::Binary(b) => {
            collect_selector_ranges(&b.lhs, out, ctx)?;
            collect_selector_ranges(&b.rhs, out, ctx)?;
        }
        Node::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_selector_ranges(p, out, ctx)?;
            }
            collect_selector_ranges(&a.expr, out, ctx)?;
        }
        Node::Call { args, .. } => {
            for a in args {
                collect_selector_ranges(a, out, ctx)?;
            }
        }
        Node::Subquery(sq) => {
            let mut inner = *ctx;
            let overflow = || {
                EngineError::BadData(format!(
                    "the time range of a subquery is out of bounds: its offsets and ranges add up past int64 milliseconds (Strata accepts {})",
                    time_range_text()
                ))
            };
            match sq.at_ms {
                Some(at) => {
                    inner.subquery_offset_ms = sq.offset_ms;
                    inner.subquery_range_ms = sq.range_ms;
                    inner.subquery_at_ms = Some(at);
                }
                None => {
                    inner.subquery_offset_ms = inner
                        .subquery_offset_ms
                        .checked_add(sq.offset_ms)
                        .ok_or_else(overflow)?;
                    inner.subquery_range_ms = inner
                        .subquery_range_ms
                        .checked_add(sq.range_ms)
                        .ok_or_else(overflow)?;
                }
            }
            collect_selector_ranges(&sq.expr, out, &inner)?;
        }
    }
    Ok(())
}

/// A selector as the query wrote it, near enough for an error message.
fn selector_text(selector: &Selector) -> String {
    let matchers: Vec<String> = selector.matchers.iter().map(|m| m.to_string()).collect();
    format!("{{{}}}", matchers.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: ShapeLimits = ShapeLimits {
        max_bytes: 0,
        max_depth: 1_000,
    };

    fn plan(q: &str) -> Plan {
        prepare(q, &SHAPE, 600_000, 1_200_000, 300_000).unwrap()
    }

    #[test]
    fn selector_ranges_follow_prometheus() {
        let p = plan("foo");
        assert_eq!(
            (p.selectors[0].start_ms, p.selectors[0].end_ms),
            (300_000, 1_200_000)
        );
        let p = plan("rate(foo[5m] offset 1m)");
        assert_eq!(
            (p.selectors[0].start_ms, p.selectors[0].end_ms),
            (240_000, 1_140_000)
        );
        let p = plan("foo @ 100");
        assert_eq!(
            (p.selectors[0].start_ms, p.selectors[0].end_ms),
            (-200_000, 100_000)
        );
        let p = plan("max_over_time(foo[10m:1m] offset 2m)");
        assert_eq!(
            (p.selectors[0].start_ms, p.selectors[0].end_ms),
            (-420_000, 1_080_000)
        );
        let p = plan("max_over_time(foo @ end()[10m:1m])");
        assert_eq!(
            (p.selectors[0].start_ms, p.selectors[0].end_ms),
            (900_000, 1_200_000)
        );
        let p = plan("max_over_time(foo[10m:1m] @ start())");
        assert_eq!(
            (p.selectors[0].start_ms, p.selectors[0].end_ms),
            (-300_000, 600_000)
        );
    }

    #[test]
    fn step_invariant_parts_are_marked() {
        assert!(matches!(plan("foo @ 100").root, Node::StepInvariant(_)));
        assert!(matches!(plan("1 + 2").root, Node::StepInvariant(_)));
        assert!(!matches!(plan("foo").root, Node::StepInvariant(_)));
        let p = plan("foo @ 100 + bar");
        let Node::Binary(b) = &p.root else {
            panic!("binary expected");
        };
        assert!(matches!(b.lhs, Node::StepInvariant(_)));
        assert!(!matches!(b.rhs, Node::StepInvariant(_)));
        let p = plan("hour(foo @ 100)");
        let Node::Call { args, .. } = &p.root else {
            panic!("call expected");
        };
        assert!(matches!(args[0], Node::StepInvariant(_)));
    }

    #[test]
    fn rejects_what_prometheus_2_42_does_not_know() {
        for q in [
            "sort_by_label(foo, \"a\")",
            "limitk(2, foo)",
            "foo{",
            "1 > 2",
        ] {
            let err = prepare(q, &SHAPE, 0, 0, 300_000).unwrap_err();
            assert_eq!(err.error_type(), "bad_data", "{q}: {err}");
        }
        assert!(prepare("holt_winters(foo[5m], 0.5, 0.5)", &SHAPE, 0, 0, 300_000).is_ok());
    }
}
