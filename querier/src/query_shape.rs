//! Bounds on a query's text checked before the parser sees it: its length and how deeply its
//! expression can nest.
//!
//! Why before parsing: promql-parser builds and drops its syntax tree recursively (measured:
//! about 43,000 nested parentheses overflow a 2 MiB stack in a release build, fewer in a debug
//! build), its time grows with the square of a binary chain's length (10,000 terms: 0.8 s,
//! 100,000: minutes), and every later stage of Strata (planning, evaluation, dropping the
//! plan) recurses once per level too. A stack overflow aborts the whole process and cannot be
//! caught, so the depth must be known to be small before anything recursive runs.
//!
//! The scan is one pass over the bytes. The depth it reports is an upper bound of the
//! syntax tree's depth: the deepest nesting of parentheses, brackets and braces, plus every
//! operator outside braces (`a + b + c` nests one level per `+`; a unary `-` nests one level;
//! the `-` of `1e-5` is counted too, which only over-estimates). Strings and comments are
//! skipped.

use std::fmt;

/// The pre-parse limits. `max_bytes` 0 turns the length limit off (Mimir's default); the
/// depth limit is always on in a running querier (see `QuerierConfig`), 0 here only serves
/// tests of the scan itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeLimits {
    /// Longest query text, in bytes (`-query-frontend.max-query-expression-size-bytes`).
    pub max_bytes: usize,
    /// Deepest expression nesting ([`Shape::depth`], `-querier.max-query-expression-depth`).
    pub max_depth: usize,
}

/// The flag of [`ShapeLimits::max_bytes`].
pub const MAX_BYTES_FLAG: &str = strata_shared::overrides::flags::MAX_QUERY_EXPRESSION_SIZE_BYTES;
/// The flag of [`ShapeLimits::max_depth`].
pub const MAX_DEPTH_FLAG: &str = "querier.max-query-expression-depth";

/// What the scan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub bytes: usize,
    /// Deepest nesting of `(`, `[` and `{`.
    pub nesting: usize,
    /// Operators outside braces: arithmetic, comparison, `and`/`or`/`unless`/`atan2`.
    pub operators: usize,
}

impl Shape {
    /// An upper bound of the syntax tree's depth.
    pub fn depth(&self) -> usize {
        self.nesting.saturating_add(self.operators)
    }
}

/// A query over one of the [`ShapeLimits`]. Displays as the message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    TooLong { bytes: usize, limit: usize },
    TooDeep { shape: Shape, limit: usize },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::TooLong { bytes, limit } => write!(
                f,
                "the raw query size in bytes exceeds the limit (query size: {bytes}, limit: {limit}) \
                 (err-strata-max-query-expression-size-bytes). To adjust the related limit, \
                 configure -{MAX_BYTES_FLAG}, or contact your service administrator."
            ),
            ShapeError::TooDeep { shape, limit } => write!(
                f,
                "the query expression nests up to {} levels deep, more than the limit of {limit} \
                 (nesting of parentheses, brackets and braces: {}; operators, each nesting one \
                 level: {}) (err-strata-max-query-expression-depth). Split the query, or to \
                 adjust the related limit, configure -{MAX_DEPTH_FLAG}, or contact your service \
                 administrator.",
                shape.depth(),
                shape.nesting,
                shape.operators
            ),
        }
    }
}

impl std::error::Error for ShapeError {}

impl ShapeLimits {
    /// These limits with the tenant's `max_query_expression_size_bytes`.
    pub fn for_tenant(self, limits: &strata_shared::limits::LimitsConfig) -> Self {
        Self {
            max_bytes: limits.max_query_expression_size_bytes,
            ..self
        }
    }

    /// The length limit alone (no scan), for text the engine scans for depth itself.
    pub fn check_size(&self, query: &str) -> Result<(), ShapeError> {
        if self.max_bytes > 0 && query.len() > self.max_bytes {
            return Err(ShapeError::TooLong {
                bytes: query.len(),
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Scans `query` and checks it against the limits.
    pub fn check(&self, query: &str) -> Result<Shape, ShapeError> {
        self.check_size(query)?;
        let shape = scan(query);
        if self.max_depth > 0 && shape.depth() > self.max_depth {
            return Err(ShapeError::TooDeep {
                shape,
                limit: self.max_depth,
            });
        }
        Ok(shape)
    }

    /// [`Self::check`], then promql-parser's parse: the only way Strata parses request text.
    pub fn parse(&self, query: &str) -> Result<promql_parser::parser::Expr, ParseFailure> {
        self.check(query).map_err(ParseFailure::Shape)?;
        promql_parser::parser::parse(query).map_err(ParseFailure::Syntax)
    }
}

/// Why [`ShapeLimits::parse`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseFailure {
    Shape(ShapeError),
    /// The parser's own message.
    Syntax(String),
}

impl fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseFailure::Shape(e) => e.fmt(f),
            ParseFailure::Syntax(e) => f.write_str(e),
        }
    }
}

/// One pass over `query`: see the module documentation.
pub fn scan(query: &str) -> Shape {
    let bytes = query.as_bytes();
    let mut shape = Shape {
        bytes: bytes.len(),
        ..Shape::default()
    };
    let mut open = 0usize;
    let mut braces = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                open += 1;
                shape.nesting = shape.nesting.max(open);
                if c == b'{' {
                    braces += 1;
                }
            }
            b')' | b']' | b'}' => {
                open = open.saturating_sub(1);
                if c == b'}' {
                    braces = braces.saturating_sub(1);
                }
            }
            _ if braces > 0 => {}
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' => shape.operators += 1,
            b'=' | b'!' | b'<' | b'>' => {
                shape.operators += 1;
                // `==`, `!=`, `<=`, `>=`, `=~`, `!~` are one operator.
                if matches!(bytes.get(i + 1), Some(b'=' | b'~')) {
                    i += 1;
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b':' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                let word = &query[start..i];
                if ["and", "or", "unless", "atan2"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    shape.operators += 1;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    shape
}

/// The index after the string literal starting at `start` (its end when unterminated).
/// Backquoted strings have no escapes.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_limit_is_the_tenants() {
        let mut limits = strata_shared::limits::LimitsConfig::from_flag_defaults().unwrap();
        let engine = ShapeLimits {
            max_bytes: 0,
            max_depth: 1000,
        };
        // Off by default, as in Mimir.
        assert!(engine.for_tenant(&limits).check("up + up").is_ok());
        limits.max_query_expression_size_bytes = 5;
        let tenant = engine.for_tenant(&limits);
        assert_eq!(tenant.max_depth, 1000);
        let err = tenant.check_size("up + up").unwrap_err();
        assert_eq!(err, ShapeError::TooLong { bytes: 7, limit: 5 });
        assert!(err
            .to_string()
            .contains("-query-frontend.max-query-expression-size-bytes"));
        assert!(tenant.check_size("up").is_ok());
    }

    fn shape(q: &str) -> (usize, usize) {
        let s = scan(q);
        (s.nesting, s.operators)
    }

    #[test]
    fn scan_counts_nesting_and_operators_outside_strings_and_braces() {
        assert_eq!(shape("up"), (0, 0));
        assert_eq!(shape("sum(rate(x{a=\"(((\",b!~\"-+\"}[5m]))"), (3, 0));
        assert_eq!(shape("a + b * c - -d"), (0, 4));
        assert_eq!(shape("a == bool b and c unless d OR e atan2 f"), (0, 5));
        assert_eq!(shape("a >= b != c"), (0, 2));
        assert_eq!(shape("x # ((((( + + +\n + y"), (0, 1));
        assert_eq!(shape("`((\\` + '\\'(('"), (0, 1));
        assert_eq!(
            shape(&format!("{}x{}", "(".repeat(50), ")".repeat(50))),
            (50, 0)
        );
        assert_eq!(shape(&["x"; 10].join(" + ")), (0, 9));
        // Identifiers that merely contain a keyword are not operators.
        assert_eq!(shape("band + order"), (0, 1));
        // Unbalanced or unterminated input does not panic.
        assert_eq!(shape(")))\"abc"), (0, 0));
    }

    #[test]
    fn limits_name_their_flags() {
        let limits = ShapeLimits {
            max_bytes: 10,
            max_depth: 3,
        };
        assert!(limits.check("a + b").is_ok());
        let e = limits.check("a + b + c + d").unwrap_err();
        assert!(matches!(
            e,
            ShapeError::TooLong {
                bytes: 13,
                limit: 10
            }
        ));
        assert!(e
            .to_string()
            .contains("-query-frontend.max-query-expression-size-bytes"));
        let e = limits.check("((((x))))").unwrap_err();
        assert!(e
            .to_string()
            .contains("nests up to 4 levels deep, more than the limit of 3"));
        assert!(e
            .to_string()
            .contains("-querier.max-query-expression-depth"));
        let off = ShapeLimits {
            max_bytes: 0,
            max_depth: 0,
        };
        assert!(off.check(&"(".repeat(100_000)).is_ok());
    }
}
