//! Each pipeline step's name, outcome and duration: printed as it ends (on
//! stderr) and kept for the final report and the benchmark.

use std::time::{Duration, Instant};

use crate::output::Printer;

#[derive(Clone, Debug, serde::Serialize)]
pub struct StepRecord {
    pub step: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub detail: String,
}

pub struct Progress<'a> {
    printer: &'a Printer,
    pub steps: Vec<StepRecord>,
    started: Instant,
}

impl<'a> Progress<'a> {
    pub fn new(printer: &'a Printer) -> Self {
        Self {
            printer,
            steps: Vec::new(),
            started: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn note(&self, text: &str) {
        self.printer.note(&format!("    {text}"));
    }

    pub fn printer(&self) -> &Printer {
        self.printer
    }

    /// Records a finished step.
    pub fn done(&mut self, step: &str, started: Instant, ok: bool, detail: impl Into<String>) {
        let duration = started.elapsed();
        let detail = detail.into();
        let mark = if ok { "✓" } else { "✗" };
        self.printer.note(&format!(
            "  {mark} {step:<16} {:>6.1}s  {detail}",
            duration.as_secs_f64()
        ));
        self.steps.push(StepRecord {
            step: step.to_string(),
            ok,
            duration_ms: duration.as_millis() as u64,
            detail,
        });
    }
}
