//! The pipeline's progress on the terminal: lines through the printer, and while the node
//! phases run a spinner per node (indicatif) on a terminal at the normal level, else a line
//! per step with `-v`. A bounded wait shows on a terminal what it waits for, how long it has
//! waited and its bound; off a terminal, a line when it starts and one every 30 s (every
//! change with `-v`).

use crate::printer::Printer;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Off a terminal, how often a long wait says it still waits.
const WAIT_LINE_EVERY: Duration = Duration::from_secs(30);

/// A wait in progress.
#[derive(Debug)]
struct Wait {
    what: String,
    bound: Duration,
    started: Instant,
    last_line: Instant,
    last_still: String,
    bar: Option<indicatif::ProgressBar>,
}

/// A spinner per node, while the node phases run.
type Bars = (indicatif::MultiProgress, Vec<(String, indicatif::ProgressBar)>);

#[derive(Debug)]
pub struct Progress {
    printer: Printer,
    bars: Mutex<Option<Bars>>,
    wait: Mutex<Option<Wait>>,
}

impl Progress {
    pub fn new(printer: Printer) -> Progress {
        Progress { printer, bars: Mutex::new(None), wait: Mutex::new(None) }
    }

    fn wait(&self) -> std::sync::MutexGuard<'_, Option<Wait>> {
        self.wait.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bars(&self) -> std::sync::MutexGuard<'_, Option<Bars>> {
        self.bars.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl kos_run::Reporter for Progress {
    fn line(&self, text: &str) {
        self.printer.line(text);
    }

    fn detail(&self, text: &str) {
        self.printer.detail(text);
    }

    fn nodes_started(&self, nodes: &[&str]) {
        if !self.printer.wants_bars() {
            return;
        }
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:<14} {wide_msg} {elapsed:>4}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        let bars = nodes
            .iter()
            .map(|n| {
                let bar = multi.add(indicatif::ProgressBar::new_spinner().with_style(style.clone()).with_prefix(n.to_string()));
                bar.enable_steady_tick(Duration::from_millis(120));
                (n.to_string(), bar)
            })
            .collect();
        *self.bars() = Some((multi, bars));
    }

    fn node_step(&self, node: &str, step: &str) {
        match &*self.bars() {
            Some((_, bars)) => {
                if let Some((_, bar)) = bars.iter().find(|(n, _)| n == node) {
                    bar.set_message(step.to_string());
                }
            }
            None => self.printer.detail(format!("{node}: {step}")),
        }
    }

    fn wait_started(&self, what: &str, bound: Duration) {
        let now = Instant::now();
        let bar = self.printer.wants_bars().then(|| {
            let style = indicatif::ProgressStyle::with_template("{spinner} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            let bar = indicatif::ProgressBar::new_spinner().with_style(style);
            bar.set_message(format!("{what} (at most {} s)", bound.as_secs()));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            self.printer.line(format!("{what} (at most {} s)", bound.as_secs()));
        }
        *self.wait() = Some(Wait { what: what.to_string(), bound, started: now, last_line: now, last_still: String::new(), bar });
    }

    fn wait_progress(&self, still: &str) {
        let mut guard = self.wait();
        let Some(w) = guard.as_mut() else { return };
        let waited = w.started.elapsed().as_secs();
        match &w.bar {
            Some(bar) => bar.set_message(format!("{}: {still} (at most {} s)", w.what, w.bound.as_secs())),
            None if w.last_line.elapsed() >= WAIT_LINE_EVERY => {
                self.printer.line(format!("{}: still waiting after {waited} s of at most {}: {still}", w.what, w.bound.as_secs()));
                w.last_line = Instant::now();
            }
            // With -v every change shows, as it happens.
            None if still != w.last_still => self.printer.detail(format!("{}: {still} ({waited} s)", w.what)),
            None => {}
        }
        w.last_still = still.to_string();
    }

    fn wait_finished(&self) {
        if let Some(w) = self.wait().take()
            && let Some(bar) = w.bar
        {
            bar.finish_and_clear();
        }
    }

    /// The bars go before the summary lines.
    fn nodes_finished(&self) {
        if let Some((multi, bars)) = self.bars().take() {
            for (_, b) in bars {
                b.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}
