//! Per-series write quorum, as Mimir's batch tracker: every series of a push is decided by
//! its own replicas. A series is written once `quorum` of them took it, and refused once more
//! of them refused it than may fail (`replicas − quorum`), so one replica's refusal (it holds
//! a later sample from a request whose sender never saw the answer, say) does not fail a
//! write that the others took, and a write that a quorum refused is a 400, not a retry loop.

/// What one replica answered for the series it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaAnswer {
    /// Stored every sample (or already held them).
    Took,
    /// Refused at least one sample (out of order, out of bounds, a limit...).
    Refused,
}

/// How a series ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOutcome {
    Written,
    Refused,
    /// Neither yet: too few replicas answered (a retry can succeed).
    Undecided,
}

/// Counts the replicas' answers of every series of one push.
#[derive(Debug)]
pub struct QuorumTracker {
    quorum: usize,
    /// Replicas of each series.
    replicas: Vec<usize>,
    took: Vec<usize>,
    refused: Vec<usize>,
    undecided: usize,
}

impl QuorumTracker {
    /// `replicas[i]`: how many replicas series `i` was sent to.
    pub fn new(quorum: usize, replicas: Vec<usize>) -> Self {
        let n = replicas.len();
        Self {
            quorum,
            replicas,
            took: vec![0; n],
            refused: vec![0; n],
            undecided: n,
        }
    }

    pub fn outcome(&self, series: usize) -> SeriesOutcome {
        let replicas = self.replicas.get(series).copied().unwrap_or(0);
        let (took, refused) = (self.took[series], self.refused[series]);
        if took >= self.quorum {
            SeriesOutcome::Written
        } else if refused > replicas.saturating_sub(self.quorum) {
            SeriesOutcome::Refused
        } else {
            SeriesOutcome::Undecided
        }
    }

    /// Records one replica's answer for `series`.
    pub fn record(&mut self, series: usize, answer: ReplicaAnswer) {
        if series >= self.replicas.len() {
            return;
        }
        let before = self.outcome(series);
        match answer {
            ReplicaAnswer::Took => self.took[series] += 1,
            ReplicaAnswer::Refused => self.refused[series] += 1,
        }
        if before == SeriesOutcome::Undecided && self.outcome(series) != SeriesOutcome::Undecided {
            self.undecided -= 1;
        }
    }

    /// Every series is written or refused: the remaining replicas need not be waited for.
    pub fn all_decided(&self) -> bool {
        self.undecided == 0
    }

    /// Series neither written nor refused (the push must be retried).
    pub fn undecided(&self) -> usize {
        self.undecided
    }

    /// Series written.
    pub fn written(&self) -> usize {
        (0..self.replicas.len())
            .filter(|&i| self.outcome(i) == SeriesOutcome::Written)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicaAnswer::{Refused, Took};
    use super::*;

    #[test]
    fn replication_factor_three_needs_two_of_a_kind() {
        // Series 0: two took, one refused (a replica with a later sample): written.
        // Series 1: two refused: refused, whatever the third says.
        // Series 2: one took, one refused, one unreachable: undecided, so retried.
        let mut q = QuorumTracker::new(2, vec![3, 3, 3]);
        q.record(0, Refused);
        assert_eq!(q.outcome(0), SeriesOutcome::Undecided);
        q.record(0, Took);
        q.record(0, Took);
        assert_eq!(q.outcome(0), SeriesOutcome::Written);
        q.record(1, Refused);
        q.record(1, Refused);
        assert_eq!(q.outcome(1), SeriesOutcome::Refused);
        q.record(2, Took);
        q.record(2, Refused);
        assert_eq!(q.outcome(2), SeriesOutcome::Undecided);
        assert!(!q.all_decided());
        assert_eq!((q.undecided(), q.written()), (1, 1));
    }

    #[test]
    fn one_replica_decides_alone_and_a_refusal_with_two_is_final() {
        let mut single = QuorumTracker::new(1, vec![1]);
        single.record(0, Refused);
        assert_eq!(single.outcome(0), SeriesOutcome::Refused);
        assert!(single.all_decided());
        // Two replicas, quorum two: one refusal can never be outvoted, so it is a 400.
        let mut pair = QuorumTracker::new(2, vec![2]);
        pair.record(0, Refused);
        assert_eq!(pair.outcome(0), SeriesOutcome::Refused);
    }

    #[test]
    fn answers_after_the_decision_do_not_count_twice() {
        let mut q = QuorumTracker::new(2, vec![3, 3]);
        for answer in [Took, Took, Took] {
            q.record(0, answer);
        }
        assert_eq!(q.undecided(), 1);
        q.record(1, Took);
        q.record(1, Took);
        assert!(q.all_decided());
        // An index past the push is ignored, not a panic.
        q.record(7, Took);
        assert_eq!(q.written(), 2);
    }
}
