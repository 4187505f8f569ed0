//! Go's `container/heap` and small-slice `sort.Sort`, which decide the order (and, for ties,
//! the choice) of `topk`, `bottomk`, `sort` and `quantile` results in Prometheus. Their
//! comparators are not total orders when NaN is involved, so the algorithms are followed
//! step by step rather than replaced by a Rust sort.

use std::cmp::Ordering;

/// Pushes `x` onto the heap `h` ordered by `less` (Go's `heap.Push`).
pub(crate) fn heap_push<T>(h: &mut Vec<T>, x: T, less: &impl Fn(&T, &T) -> bool) {
    h.push(x);
    let mut j = h.len() - 1;
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

/// Removes the heap's top (Go's `heap.Pop`).
pub(crate) fn heap_pop<T>(h: &mut Vec<T>, less: &impl Fn(&T, &T) -> bool) -> Option<T> {
    let n = h.len().checked_sub(1)?;
    h.swap(0, n);
    down(h, 0, n, less);
    h.pop()
}

fn down<T>(h: &mut [T], i0: usize, n: usize, less: &impl Fn(&T, &T) -> bool) {
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        let j2 = j1 + 1;
        if j2 < n && less(&h[j2], &h[j1]) {
            j = j2;
        }
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

/// Sorts by `less` as Go's `sort.Sort` does: insertion sort for up to 12 elements (exactly
/// Go's steps); beyond that a stable sort, where Go's pdqsort may order ties differently.
pub(crate) fn go_sort<T>(v: &mut [T], less: impl Fn(&T, &T) -> bool) {
    if v.len() <= 12 {
        for i in 1..v.len() {
            let mut j = i;
            while j > 0 && less(&v[j], &v[j - 1]) {
                v.swap(j, j - 1);
                j -= 1;
            }
        }
        return;
    }
    v.sort_by(|a, b| match (less(a, b), less(b, a)) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => Ordering::Equal,
    });
}

/// Prometheus' `vectorByValueHeap` order: NaN first, then ascending.
pub(crate) fn value_less(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

/// Prometheus' `vectorByReverseValueHeap` order: NaN first, then descending.
pub(crate) fn reverse_value_less(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_keeps_smallest_on_top() {
        let less = |a: &f64, b: &f64| value_less(*a, *b);
        let mut h = Vec::new();
        for x in [5.0, 1.0, 4.0, 2.0, 3.0] {
            heap_push(&mut h, x, &less);
        }
        let mut popped = Vec::new();
        while let Some(x) = heap_pop(&mut h, &less) {
            popped.push(x);
        }
        assert_eq!(popped, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn sort_puts_nan_where_go_does() {
        // sort(): reverse of the reverse-value order, NaN last.
        let mut v = vec![2.0, f64::NAN, 1.0, 3.0];
        go_sort(&mut v, |a, b| reverse_value_less(*b, *a));
        assert_eq!(&v[..3], &[1.0, 2.0, 3.0]);
        assert!(v[3].is_nan());
        let mut big: Vec<f64> = (0..20).rev().map(f64::from).collect();
        big.push(f64::NAN);
        go_sort(&mut big, |a, b| reverse_value_less(*b, *a));
        assert_eq!(big[0], 0.0);
        assert!(big[20].is_nan());
    }
}
