//! Background work that outlives a panic: a loop runs each unit of its work (one cut, one
//! upload pass, one probe round) through [`unit`], so a bug hit by one tenant's data is
//! logged, counted in `strata_panics_total{task}` and skipped, and the loop carries on with
//! the next unit instead of ending silently (a tokio task that panics just stops) and
//! wedging every tenant behind it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

use futures::FutureExt;
use prometheus::{IntCounterVec, Opts, Registry};

fn panics() -> &'static IntCounterVec {
    static PANICS: OnceLock<IntCounterVec> = OnceLock::new();
    PANICS.get_or_init(|| {
        IntCounterVec::new(
            Opts::new(
                "strata_panics_total",
                "Panics caught in request handlers and background loops, by task; each one failed only its unit of work.",
            ),
            &["task"],
        )
        // Constant options: this cannot fail at run time.
        .expect("strata_panics_total has valid options")
    })
}

/// Registers `strata_panics_total` (once per registry; a second registration is ignored).
pub fn register(registry: &Registry) {
    let _ = registry.register(Box::new(panics().clone()));
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}

/// Counts a caught panic of `task` in `strata_panics_total` (the caller logs it).
pub fn count_panic(task: &str) {
    panics().with_label_values(&[task]).inc();
}

/// Counts a caught panic of `task` and logs it with its message.
pub fn record_panic(task: &str, payload: &(dyn std::any::Any + Send)) {
    let message = panic_message(payload);
    count_panic(task);
    tracing::error!(
        task,
        panic = %message,
        "caught a panic; this unit of work failed, the process carries on"
    );
}

/// Runs one unit of background work; `None` when it panicked (logged and counted).
pub async fn unit<F: Future>(task: &'static str, work: F) -> Option<F::Output> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(output) => Some(output),
        Err(payload) => {
            record_panic(task, payload.as_ref());
            None
        }
    }
}

/// How many panics `task` has had (for tests).
pub fn panic_count(task: &str) -> u64 {
    panics().with_label_values(&[task]).get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_unit_is_counted_and_the_next_one_runs() {
        let before = panic_count("test-loop");
        let mut done = Vec::new();
        for i in 0..3 {
            let out = unit("test-loop", async move {
                if i == 1 {
                    panic!("unit {i} hit a bug");
                }
                i
            })
            .await;
            done.push(out);
        }
        assert_eq!(done, vec![Some(0), None, Some(2)]);
        assert_eq!(panic_count("test-loop"), before + 1);
    }
}
