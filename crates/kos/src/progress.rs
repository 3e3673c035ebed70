//! The pipeline's progress on the terminal: lines through the printer, and while the node
//! phases run a spinner per node (indicatif) on a terminal at the normal level, else a line
//! per step with `-v`.

use crate::printer::Printer;
use std::sync::Mutex;
use std::time::Duration;

/// A spinner per node, while the node phases run.
type Bars = (indicatif::MultiProgress, Vec<(String, indicatif::ProgressBar)>);

#[derive(Debug)]
pub struct Progress {
    printer: Printer,
    bars: Mutex<Option<Bars>>,
}

impl Progress {
    pub fn new(printer: Printer) -> Progress {
        Progress { printer, bars: Mutex::new(None) }
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
