//! The progress bar: steps, steps per second and the time left, on stderr.

use std::io::Write;
use std::time::Instant;

pub struct ProgressBar {
    started: Instant,
    label: String,
}

impl ProgressBar {
    /// Starts the clock; `label` prefixes the line (empty for a single image).
    pub fn new(label: String) -> Self {
        ProgressBar { started: Instant::now(), label }
    }

    /// Redraws the line after `step` of `total` steps.
    pub fn update(&self, step: usize, total: usize) {
        const WIDTH: usize = 30;
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { step as f64 / elapsed } else { 0.0 };
        let filled = (step * WIDTH).checked_div(total).unwrap_or(WIDTH).min(WIDTH);
        let left = if rate > 0.0 { (total - step.min(total)) as f64 / rate } else { 0.0 };
        let mut line = format!(
            "\r{}[{}{}] {step}/{total} {rate:.2} it/s, {} left ",
            self.label,
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            clock(left)
        );
        if step >= total {
            line = format!(
                "\r{}[{}] {total}/{total} {rate:.2} it/s in {}   \n",
                self.label,
                "#".repeat(WIDTH),
                clock(elapsed)
            );
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }
}

/// Seconds as m:ss (h:mm:ss from an hour on).
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_reads_as_minutes_and_hours() {
        assert_eq!(super::clock(0.4), "0:00");
        assert_eq!(super::clock(75.0), "1:15");
        assert_eq!(super::clock(3725.0), "1:02:05");
    }
}
