//! Repeated measurements reduced to what the report shows: median, min and max.

use serde::Serialize;

/// The median, min and max of a set of measurements, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    /// `None` for no measurements. The median of an even count is the mean of the two
    /// middle values.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 0 {
            (sorted[middle - 1] + sorted[middle]) / 2.0
        } else {
            sorted[middle]
        };
        Some(Summary {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            runs: sorted.len(),
        })
    }

    /// This median as a multiple of the floor's (`None` when the floor's is zero).
    pub fn ratio_to(&self, floor: &Summary) -> Option<f64> {
        (floor.median > 0.0).then(|| self.median / floor.median)
    }
}

/// The nearest-rank `q`-quantile (`0.95`: the value 95 % of the measurements are at or
/// below); `None` for no measurements.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_95th_percentile_is_the_nearest_rank() {
        let values: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 0.95), Some(19.0));
        assert_eq!(percentile(&[4.0], 0.95), Some(4.0));
        assert_eq!(percentile(&[], 0.95), None);
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value_whatever_the_order() {
        let summary = Summary::of(&[9.0, 1.0, 5.0]);
        assert_eq!(
            summary,
            Some(Summary {
                median: 5.0,
                min: 1.0,
                max: 9.0,
                runs: 3
            })
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_two_middle_values() {
        let summary = Summary::of(&[4.0, 1.0, 3.0, 2.0]).map(|s| s.median);
        assert_eq!(summary, Some(2.5));
    }

    #[test]
    fn no_measurement_gives_no_summary_and_a_zero_floor_no_ratio() {
        assert_eq!(Summary::of(&[]), None);
        let zero = Summary::of(&[0.0]);
        let one = Summary::of(&[1.0]);
        let ratio = one.zip(zero).and_then(|(one, zero)| one.ratio_to(&zero));
        assert_eq!(ratio, None);
    }

    #[test]
    fn a_ratio_compares_medians() {
        let floor = Summary::of(&[2.0, 2.0, 100.0]);
        let measured = Summary::of(&[3.0, 3.0, 1.0]);
        let ratio = measured.zip(floor).and_then(|(m, f)| m.ratio_to(&f));
        assert_eq!(ratio, Some(1.5));
    }
}
