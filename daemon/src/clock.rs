//! The wall clock sync windows are judged by: the system's, or a fixed start that then advances
//! in real time (`PLATFORMD_FAKE_NOW`, RFC 3339), so tests and freeze drills can place the daemon
//! and the CLI just before a window opens or closes. `PLATFORMD_FAKE_NOW=@FILE` reads the time
//! from FILE at every look instead, so a test can move it (the cost controller's idle arithmetic).

use std::time::Instant;

/// A fake clock that cannot be read (`PLATFORMD_FAKE_NOW`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClockError(String);

impl From<String> for ClockError {
    fn from(message: String) -> ClockError {
        ClockError(message)
    }
}

/// The environment variable that sets a fake start time.
pub const FAKE_NOW: &str = "PLATFORMD_FAKE_NOW";

#[derive(Debug, Clone)]
pub struct Clock {
    /// A fake start and when it was set; `None` for the system clock.
    fake: Option<(jiff::Timestamp, Instant)>,
    /// A file holding the time, read at every look.
    file: Option<std::path::PathBuf>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock {
            fake: None,
            file: None,
        }
    }

    /// The system clock, or the fake start in `PLATFORMD_FAKE_NOW`.
    pub fn from_env() -> Result<Clock, ClockError> {
        match std::env::var(FAKE_NOW) {
            Ok(text) if text.starts_with('@') => {
                let clock = Clock {
                    fake: None,
                    file: Some(text[1..].into()),
                };
                clock.read_file().map(|_| clock)
            }
            Ok(text) => {
                let start: jiff::Timestamp = text
                    .parse()
                    .map_err(|e| format!("{FAKE_NOW}={text} is not an RFC 3339 time: {e}"))?;
                Ok(Clock {
                    fake: Some((start, Instant::now())),
                    file: None,
                })
            }
            Err(_) => Ok(Clock::system()),
        }
    }

    fn read_file(&self) -> Result<jiff::Timestamp, ClockError> {
        let path = self.file.as_deref().unwrap_or(std::path::Path::new(""));
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{FAKE_NOW}: cannot read {}: {e}", path.display()))?;
        text.trim().parse().map_err(|e| {
            ClockError(format!(
                "{FAKE_NOW}: {} is not an RFC 3339 time: {e}",
                path.display()
            ))
        })
    }

    pub fn now(&self) -> jiff::Timestamp {
        if self.file.is_some() {
            // A file being rewritten is read again at the next look; until then, the system's.
            return self.read_file().unwrap_or_else(|_| jiff::Timestamp::now());
        }
        match &self.fake {
            Some((start, at)) => {
                let elapsed = jiff::SignedDuration::try_from(at.elapsed()).unwrap_or_default();
                start.checked_add(elapsed).unwrap_or(*start)
            }
            None => jiff::Timestamp::now(),
        }
    }

    /// Whether the sync windows let `snapshot` be applied now (without the verdict's details).
    pub fn window_open(&self, snapshot: &planner::Snapshot) -> bool {
        planner::window::is_open(&snapshot.windows, self.now())
    }

    /// The sync windows' verdict on `snapshot` now.
    pub fn window(&self, snapshot: &planner::Snapshot) -> planner::window::WindowState {
        planner::window::state(&snapshot.windows, self.now())
    }
}

/// Who is acting, for the record: the OS user of a CLI command.
pub fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", uid_from_proc()))
}

fn uid_from_proc() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}
