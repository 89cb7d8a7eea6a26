//! Least-squares line through points: the sender-report clock and the skew estimator both fit one.

/// The centroid of the points and, when the x values spread, the least-squares slope through it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LineFit {
    pub mean_x: f64,
    pub mean_y: f64,
    /// `None` when all x are equal (no slope can be told).
    pub slope: Option<f64>,
}

impl LineFit {
    /// `None` for no points.
    pub(crate) fn through(points: impl Iterator<Item = (f64, f64)> + Clone) -> Option<LineFit> {
        let (n, sum_x, sum_y) = points
            .clone()
            .fold((0usize, 0.0, 0.0), |(n, a, b), (x, y)| {
                (n + 1, a + x, b + y)
            });
        if n == 0 {
            return None;
        }
        let (mean_x, mean_y) = (sum_x / n as f64, sum_y / n as f64);
        let (sxx, sxy) = points.fold((0.0, 0.0), |(a, b), (x, y)| {
            (
                a + (x - mean_x) * (x - mean_x),
                b + (x - mean_x) * (y - mean_y),
            )
        });
        Some(LineFit {
            mean_x,
            mean_y,
            slope: (sxx > f64::EPSILON).then(|| sxy / sxx),
        })
    }

    /// The intercept at x = 0 of the line through the centroid with `slope`.
    pub(crate) fn intercept(&self, slope: f64) -> f64 {
        self.mean_y - slope * self.mean_x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_and_knows_when_it_cannot() {
        let fit = LineFit::through([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)].into_iter()).unwrap();
        assert_eq!(fit.slope, Some(2.0));
        assert_eq!(fit.intercept(2.0), 1.0);
        let vertical = LineFit::through([(1.0, 1.0), (1.0, 3.0)].into_iter()).unwrap();
        assert_eq!(vertical.slope, None);
        assert_eq!(vertical.mean_y, 2.0);
        assert_eq!(LineFit::through(std::iter::empty()), None);
    }
}
