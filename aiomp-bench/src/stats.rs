//! Order statistics over samples.

/// The median and the 99th percentile of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The 50th percentile.
    pub median: f64,
    /// The 99th percentile (nearest rank).
    pub p99: f64,
    /// How many samples.
    pub count: usize,
}

/// The `q` quantile (0..=1) of `samples` by nearest rank; `None` when empty.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of `samples`; `None` when empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    } else {
        sorted[mid]
    })
}

/// The median and p99 of `samples`; `None` when empty.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    Some(Summary {
        median: median(samples)?,
        p99: quantile(samples, 0.99)?,
        count: samples.len(),
    })
}

/// W4: of `(serial_seconds, pool_seconds)` pairs, the one whose speedup is
/// the median (the upper one of an even count), and a note listing every
/// pair's speedup. Pairs measured back to back share the machine's mood of
/// the moment, which single passes minutes apart do not.
///
/// # Panics
///
/// If `pairs` is empty.
pub fn median_pair(mut pairs: Vec<(f64, f64)>) -> ((f64, f64), String) {
    pairs.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    let speedups: Vec<String> = pairs
        .iter()
        .map(|(serial, pool)| format!("{:.2}", serial / pool))
        .collect();
    let note = match &speedups[..] {
        [one] => format!("one pair (speedup {one})"),
        all => format!("median of {} pairs (speedups {})", all.len(), all.join(", ")),
    };
    (pairs[pairs.len() / 2], note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_pair_is_ranked_by_speedup() {
        let (pair, note) = median_pair(vec![(2.0, 1.0), (1.5, 1.0), (3.0, 1.0)]);
        assert_eq!(pair, (2.0, 1.0));
        assert_eq!(note, "median of 3 pairs (speedups 1.50, 2.00, 3.00)");
        assert_eq!(
            median_pair(vec![(1.0, 2.0)]),
            ((1.0, 2.0), "one pair (speedup 0.50)".to_owned())
        );
    }

    #[test]
    fn median_and_p99() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = summarize(&samples).unwrap();
        assert!((summary.median - 50.5).abs() < 1e-9);
        assert!((summary.p99 - 99.0).abs() < 1e-9);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(summarize(&[]), None);
    }
}
