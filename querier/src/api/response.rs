//! Prometheus' JSON envelope, byte for byte: `{"status":"success","data":...}` or
//! `{"status":"error","errorType":...,"error":...}`, sample values as strings formatted like
//! Go's `strconv.FormatFloat(v, 'f', -1, 64)`, timestamps as seconds with the milliseconds
//! written out (`1700000000.5` is `1700000000.500`), as Prometheus' encoder does.

use std::fmt::Write;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use strata_shared::labels::Labels;
use strata_shared::query::QueryError;

/// An error in Prometheus' envelope with its status code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
    pub(crate) status: StatusCode,
}

impl ApiError {
    pub(crate) fn new(error_type: &'static str, status: StatusCode, message: String) -> Self {
        Self {
            error_type,
            message,
            status,
        }
    }

    pub(crate) fn bad_data(message: String) -> Self {
        Self::new("bad_data", StatusCode::BAD_REQUEST, message)
    }

    /// The envelope of a failed data-source call, by kind.
    pub(crate) fn from_query(error: QueryError) -> Self {
        match error {
            QueryError::BadRequest(m) => Self::bad_data(m),
            QueryError::LimitExceeded(m) => {
                Self::new("execution", StatusCode::UNPROCESSABLE_ENTITY, m)
            }
            QueryError::Timeout(m) => Self::new("timeout", StatusCode::SERVICE_UNAVAILABLE, m),
            QueryError::Unavailable(m) => {
                Self::new("unavailable", StatusCode::SERVICE_UNAVAILABLE, m)
            }
            QueryError::Internal(m) => Self::new("internal", StatusCode::INTERNAL_SERVER_ERROR, m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::from("{\"status\":\"error\",\"errorType\":");
        push_json_string(&mut body, self.error_type);
        body.push_str(",\"error\":");
        push_json_string(&mut body, &self.message);
        body.push('}');
        json_response(self.status, body)
    }
}

/// A success envelope around already-encoded `data`, with Prometheus' `warnings` when any.
pub(crate) fn success(data: &str, warnings: &[String]) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str("{\"status\":\"success\",\"data\":");
    body.push_str(data);
    if !warnings.is_empty() {
        body.push_str(",\"warnings\":[");
        for (i, w) in warnings.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            push_json_string(&mut body, w);
        }
        body.push(']');
    }
    body.push('}');
    json_response(StatusCode::OK, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `text` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a sample value as Prometheus writes it: a string, `NaN`, `+Inf`, `-Inf`.
pub(crate) fn push_value(out: &mut String, value: f64) {
    out.push('"');
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Rust's Display is the shortest representation that round-trips, never in
        // exponent form: the same digits as Go's FormatFloat(v, 'f', -1, 64).
        let _ = write!(out, "{value}");
    }
    out.push('"');
}

/// Appends a millisecond timestamp as seconds, the milliseconds written out when not zero.
pub(crate) fn push_timestamp(out: &mut String, t: i64) {
    if t < 0 {
        out.push('-');
    }
    let abs = t.unsigned_abs();
    let _ = write!(out, "{}", abs / 1000);
    let fraction = abs % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// Appends `[t,"v"]`.
pub(crate) fn push_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t);
    out.push(',');
    push_value(out, v);
    out.push(']');
}

/// Appends a label set as a JSON object.
pub(crate) fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, &label.name);
        out.push(':');
        push_json_string(out, &label.value);
    }
    out.push('}');
}

/// Appends a JSON array of strings.
pub(crate) fn push_strings<'a>(out: &mut String, values: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, v);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_prometheus_writes_them() {
        let mut s = String::new();
        for v in [
            1.0,
            0.1,
            -2.5,
            1e21,
            1e-7,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
            -0.0,
        ] {
            push_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(
            s,
            "\"1\" \"0.1\" \"-2.5\" \"1000000000000000000000\" \"0.0000001\" \"NaN\" \"+Inf\" \"-Inf\" \"-0\" "
        );
        let mut t = String::new();
        push_timestamp(&mut t, 1_700_000_000_500);
        t.push(' ');
        push_timestamp(&mut t, 1_700_000_000_000);
        t.push(' ');
        push_timestamp(&mut t, 5);
        t.push(' ');
        push_timestamp(&mut t, -1_500);
        assert_eq!(t, "1700000000.500 1700000000 0.005 -1.500");
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
