//! The CLI's progress sink: a bar on a terminal, one line per resource otherwise (stderr).

use daemon::ops::{Progress, ResourceEvent};
use planner::plan::Action;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub struct TerminalProgress {
    tty: bool,
    total: AtomicUsize,
    done: AtomicUsize,
}

impl TerminalProgress {
    pub fn new() -> TerminalProgress {
        TerminalProgress {
            tty: std::io::stderr().is_terminal(),
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }
}

fn describe(event: &ResourceEvent) -> String {
    match event {
        ResourceEvent::Done(Action::Create) => "created".into(),
        ResourceEvent::Done(Action::Update) => "updated".into(),
        ResourceEvent::Done(Action::Replace) => "replaced".into(),
        ResourceEvent::Done(_) => "deleted".into(),
        ResourceEvent::Failed(e) => format!("failed: {e}"),
        ResourceEvent::Skipped(why) => format!("skipped: {why}"),
    }
}

impl Progress for TerminalProgress {
    fn started(&self, total: usize) {
        self.total.store(total, Ordering::SeqCst);
        self.done.store(0, Ordering::SeqCst);
    }

    fn resource(&self, address: &str, event: &ResourceEvent, elapsed: Duration) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let total = self.total.load(Ordering::SeqCst).max(done);
        let what = describe(event);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = done * width / total.max(1);
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {done}/{total} {address} {what}",
                "#".repeat(filled),
                " ".repeat(width - filled),
            );
            if done == total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{address}: {what} ({} ms)", elapsed.as_millis());
        }
    }

    fn notice(&self, message: &str) {
        let mut err = std::io::stderr().lock();
        if self.tty && self.done.load(Ordering::SeqCst) > 0 {
            let _ = writeln!(err);
        }
        let _ = writeln!(err, "{message}");
    }
}
