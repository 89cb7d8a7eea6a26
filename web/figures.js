// Summary figures of a series of offsets or latencies (ms), as the meters report them.

/** Mean, median, 99th percentile of |value| and largest |value|; nulls when empty. */
export function summary(values) {
  if (!values.length) return { mean_ms: null, p50_ms: null, p99_abs_ms: null, max_abs_ms: null };
  const sorted = [...values].sort((a, b) => a - b);
  const abs = sorted.map(Math.abs).sort((a, b) => a - b);
  return {
    mean_ms: values.reduce((a, b) => a + b, 0) / values.length,
    p50_ms: sorted[Math.floor(sorted.length / 2)],
    p99_abs_ms: abs[Math.min(abs.length - 1, Math.floor(abs.length * 0.99))],
    max_abs_ms: abs[abs.length - 1],
  };
}

export function median(values) {
  if (!values || !values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
