//! `GET /distributor/ha_tracker`: the elections this distributor knows, as HTML or, with
//! `?format=json` (or `Accept: application/json`), as JSON.

use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::HaTracker;
use crate::distributor::http::escape;
use strata_shared::time::format_ms;

fn time(ms: i64) -> String {
    if ms <= 0 {
        return "never".to_string();
    }
    format_ms(ms)
}

/// The page; `tracker` is None when `-distributor.ha-tracker.enable` is off.
pub fn page(tracker: Option<&HaTracker>, wants_json: bool, now_ms: i64) -> Response {
    let Some(tracker) = tracker else {
        if wants_json {
            return Json(serde_json::json!({"enabled": false, "clusters": []})).into_response();
        }
        return Html("<!DOCTYPE html><html><head><title>Strata HA tracker</title></head><body><h1>HA tracker</h1><p>The HA tracker is not enabled (-distributor.ha-tracker.enable).</p></body></html>").into_response();
    };
    let status = tracker.status();
    let timeouts = tracker.timeouts();
    if wants_json {
        return Json(serde_json::json!({
            "enabled": true,
            "kvStore": tracker.kv_description(),
            "watchHealthy": tracker.watch_healthy(),
            "updateTimeoutMs": timeouts.update_ms,
            "failoverTimeoutMs": timeouts.failover_ms,
            "clusters": status,
        }))
        .into_response();
    }
    let mut rows = String::new();
    for s in &status {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({:.1}s ago)</td><td>{}</td><td>{}</td><td>{:.1}s</td></tr>",
            escape(&s.tenant),
            escape(&s.cluster),
            escape(&s.replica),
            time(s.elected_at),
            time(s.received_at),
            (now_ms - s.received_at) as f64 / 1000.0,
            time(s.last_seen_here),
            time(s.updated_at),
            ((s.failover_at - now_ms).max(0)) as f64 / 1000.0,
        ));
    }
    Html(format!(
        "<!DOCTYPE html><html><head><title>Strata HA tracker</title></head><body><h1>HA tracker</h1>\
         <p>KV store: {} (watch {}). Update timeout {:.1}s (with this distributor's jitter), failover timeout {:.1}s. <a href=\"?format=json\">JSON</a></p>\
         <table border=\"1\"><tr><th>Tenant</th><th>Cluster</th><th>Elected replica</th><th>Elected at</th><th>Last seen (KV store)</th><th>Last seen here</th><th>Updated</th><th>Failover possible in</th></tr>{rows}</table></body></html>",
        escape(&tracker.kv_description()),
        if tracker.watch_healthy() { "established" } else { "down" },
        timeouts.update_ms as f64 / 1000.0,
        timeouts.failover_ms as f64 / 1000.0,
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times() {
        assert_eq!(super::time(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(super::time(0), "never");
    }
}
