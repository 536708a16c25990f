//! Sync windows: `window "deny" schedule="0 22 * * 5" duration="60h" timezone="Europe/Berlin"`
//! and `window "allow" …` in the platform. A window is open from each time its five-field cron
//! schedule matches (in its time zone, daylight saving included) for `duration`. Applying is
//! allowed when no deny window is open and, if the platform declares allow windows, one of them
//! is. Pure: the caller passes the time, so the daemon, the CLI and tests with a fixed clock all
//! get the same answer.

use crate::invalid::InvalidValue;
use serde::{Deserialize, Serialize};

/// Whether a window permits or forbids applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    Allow,
    Deny,
}

impl WindowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Allow => "allow",
            WindowKind::Deny => "deny",
        }
    }
}

/// A window as declared (validated when decoded), kept in snapshots as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncWindow {
    pub kind: WindowKind,
    pub schedule: String,
    pub duration: String,
    pub timezone: String,
}

impl SyncWindow {
    /// `deny window "0 22 * * 5" for 60h (Europe/Berlin)`.
    pub fn describe(&self) -> String {
        format!(
            "{} window \"{}\" for {} ({})",
            self.kind.as_str(),
            self.schedule,
            self.duration,
            self.timezone
        )
    }
}

/// What the windows say at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    /// Applying is allowed now.
    pub open: bool,
    /// Why applying is not allowed (the deny window in force, or "outside every allow window").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When applying is allowed again (RFC 3339, UTC), if that happens within the next 35 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
}

/// A parsed five-field cron schedule: minute, hour, day of month, month, day of week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Standard cron: when both day fields are restricted, either may match.
    days_restricted: bool,
    weekdays_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, InvalidValue> {
    let value = |s: &str| -> Result<u32, InvalidValue> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        let v: u32 = s
            .parse()
            .map_err(|_| format!("`{s}` is not a number in the {what} field"))?;
        if v < min || v > max {
            return Err(InvalidValue::from(format!(
                "{what} {v} is outside {min}-{max}"
            )));
        }
        Ok(v)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("`{s}` is not a step in the {what} field"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(InvalidValue::from(format!(
                    "the {what} range {range} runs backwards"
                )));
            }
            (a, b)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, InvalidValue> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(InvalidValue::from(format!(
                "a schedule has five fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            )));
        }
        Ok(Cron {
            minutes: field(parts[0], "minute", 0, 59, &[])?,
            hours: field(parts[1], "hour", 0, 23, &[])? as u32,
            days: field(parts[2], "day-of-month", 1, 31, &[])? as u32,
            months: field(parts[3], "month", 1, 12, &MONTHS)? as u16,
            // Sunday may be written 0 or 7.
            weekdays: {
                let bits = field(parts[4], "day-of-week", 0, 7, &WEEKDAYS)?;
                ((bits & 0x7f) | ((bits >> 7) & 1)) as u8
            },
            days_restricted: parts[2] != "*",
            weekdays_restricted: parts[4] != "*",
        })
    }

    /// How often the schedule fires in an average month (365.25 / 12 days), counted over the
    /// days of 2027 (every weekday and month length of a year).
    pub fn runs_per_month(&self) -> f64 {
        let per_day = u64::from(self.hours.count_ones()) * u64::from(self.minutes.count_ones());
        let mut runs = 0u64;
        let mut day = jiff::civil::date(2027, 1, 1);
        while day.year() == 2027 {
            let dom = self.days & (1 << day.day()) != 0;
            let dow = self.weekdays & (1 << day.weekday().to_sunday_zero_offset()) != 0;
            let day_ok = match (self.days_restricted, self.weekdays_restricted) {
                (true, true) => dom || dow,
                _ => dom && dow,
            };
            if day_ok && self.months & (1 << day.month()) != 0 {
                runs += per_day;
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        runs as f64 / 12.0
    }

    fn matches(&self, t: &jiff::civil::DateTime) -> bool {
        let day = self.days & (1 << t.day()) != 0;
        let weekday = self.weekdays & (1 << t.weekday().to_sunday_zero_offset()) != 0;
        let day_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        };
        self.minutes & (1 << t.minute()) != 0
            && self.hours & (1 << t.hour()) != 0
            && self.months & (1 << t.month()) != 0
            && day_ok
    }
}

/// Checks a time zone name against the bundled time zone database.
pub fn check_timezone(name: &str) -> Result<(), InvalidValue> {
    jiff::tz::TimeZone::get(name)
        .map(|_| ())
        .map_err(|_| InvalidValue(format!("`{name}` is not a time zone of the IANA database")))
}

/// How far ahead `opens_at` is looked for.
const HORIZON_MINUTES: i64 = 35 * 24 * 60;

/// Open intervals `[start, end)` of one window that touch `[from, to)`, in Unix seconds.
fn intervals(window: &SyncWindow, from: i64, to: i64) -> Vec<(i64, i64)> {
    let (Ok(cron), Ok(tz)) = (
        Cron::parse(&window.schedule),
        jiff::tz::TimeZone::get(&window.timezone),
    ) else {
        return Vec::new();
    };
    let length = crate::units::duration_seconds(&window.duration) as i64;
    let mut out = Vec::new();
    // Every minute a window could have started in and still be open at `from`, up to `to`.
    let mut minute = (from - length).div_euclid(60) * 60;
    while minute < to {
        if let Ok(ts) = jiff::Timestamp::from_second(minute) {
            let local = ts.to_zoned(tz.clone()).datetime();
            if cron.matches(&local) && minute + length > from {
                out.push((minute, minute + length));
            }
        }
        minute += 60;
    }
    out
}

/// Each window with its open intervals touching `[from, to)`.
type Spans<'a> = Vec<(&'a SyncWindow, Vec<(i64, i64)>)>;

fn spans(windows: &[SyncWindow], from: i64, to: i64) -> Spans<'_> {
    windows
        .iter()
        .map(|w| (w, intervals(w, from, to)))
        .collect()
}

/// Why applying is closed at `t`, given each window's intervals; `None` when it is open.
fn closed_because(spans: &Spans<'_>, t: i64) -> Option<String> {
    let in_any = |kind: WindowKind| {
        spans
            .iter()
            .filter(|(w, _)| w.kind == kind)
            .find(|(_, iv)| iv.iter().any(|(a, b)| *a <= t && t < *b))
            .map(|(w, _)| *w)
    };
    if let Some(w) = in_any(WindowKind::Deny) {
        return Some(format!("the {} is in force", w.describe()));
    }
    let has_allow = spans.iter().any(|(w, _)| w.kind == WindowKind::Allow);
    if has_allow && in_any(WindowKind::Allow).is_none() {
        return Some("outside every allow window".to_string());
    }
    None
}

/// Whether `windows` allow applying at `now`: [`state`] without looking ahead for when a
/// closed window opens (a scan of each window's duration only), for callers that poll.
pub fn is_open(windows: &[SyncWindow], now: jiff::Timestamp) -> bool {
    let t = now.as_second();
    windows.is_empty() || closed_because(&spans(windows, t, t + 1), t).is_none()
}

/// What `windows` say at `now`.
pub fn state(windows: &[SyncWindow], now: jiff::Timestamp) -> WindowState {
    let start = now.as_second();
    // Now first (a scan of each window's duration), the horizon only when closed.
    let reason = if windows.is_empty() {
        None
    } else {
        closed_because(&spans(windows, start, start + 1), start)
    };
    let Some(reason) = reason else {
        return WindowState {
            open: true,
            reason: None,
            opens_at: None,
        };
    };
    let end = start + HORIZON_MINUTES * 60;
    let spans = spans(windows, start, end);
    // The state only changes at an interval's start or end: the first of those that is open.
    let mut candidates: Vec<i64> = spans
        .iter()
        .flat_map(|(_, iv)| iv.iter().flat_map(|(a, b)| [*a, *b]))
        .filter(|t| *t > start && *t <= end)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let opens_at = candidates
        .into_iter()
        .find(|t| closed_because(&spans, *t).is_none())
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| t.to_string());
    WindowState {
        open: false,
        reason: Some(reason),
        opens_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn window(kind: WindowKind, schedule: &str, duration: &str, tz: &str) -> SyncWindow {
        SyncWindow {
            kind,
            schedule: schedule.into(),
            duration: duration.into(),
            timezone: tz.into(),
        }
    }

    #[test]
    fn schedules_parse_lists_ranges_steps_and_names() {
        assert!(Cron::parse("0 22 * * 5").is_ok());
        assert!(Cron::parse("*/15 9-17 * * mon-fri").is_ok());
        assert!(Cron::parse("0 0 1,15 jan,jul 7").is_ok());
        for (bad, why) in [
            ("0 22 * *", "five fields"),
            ("60 * * * *", "minute 60 is outside 0-59"),
            ("0 25 * * *", "hour 25"),
            ("0 0 * * fri-mon", "runs backwards"),
            ("*/0 * * * *", "not a step"),
            ("x * * * *", "not a number"),
        ] {
            let err = Cron::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_deny_window_closes_applying_until_it_ends() {
        // Fridays 22:00 Berlin for 60 hours: the weekend freeze.
        let freeze = [window(
            WindowKind::Deny,
            "0 22 * * 5",
            "60h",
            "Europe/Berlin",
        )];
        // Friday 2026-11-27 21:59 Berlin (20:59 UTC): still open.
        assert!(state(&freeze, at("2026-11-27T20:59:00Z")).open);
        // Saturday noon: closed until Monday 10:00 Berlin (09:00 UTC).
        let s = state(&freeze, at("2026-11-28T12:00:00Z"));
        assert!(!s.open);
        assert!(
            s.reason
                .as_deref()
                .unwrap()
                .contains("deny window \"0 22 * * 5\" for 60h (Europe/Berlin)")
        );
        assert_eq!(s.opens_at.as_deref(), Some("2026-11-30T09:00:00Z"));
        assert!(state(&freeze, at("2026-11-30T09:00:00Z")).open);
    }

    #[test]
    fn allow_windows_open_only_inside_them_and_follow_daylight_saving() {
        // Weekdays 09:00-17:00 New York.
        let office = [window(
            WindowKind::Allow,
            "0 9 * * mon-fri",
            "8h",
            "America/New_York",
        )];
        // Winter (UTC-5): Monday 2026-01-05 14:00 UTC is 09:00 local.
        assert!(state(&office, at("2026-01-05T14:00:00Z")).open);
        assert!(!state(&office, at("2026-01-05T13:59:00Z")).open);
        // Summer (UTC-4): 13:00 UTC is 09:00 local.
        assert!(state(&office, at("2026-07-06T13:00:00Z")).open);
        // Saturday: closed until Monday 09:00 local.
        let s = state(&office, at("2026-07-11T12:00:00Z"));
        assert_eq!(s.reason.as_deref(), Some("outside every allow window"));
        assert_eq!(s.opens_at.as_deref(), Some("2026-07-13T13:00:00Z"));
    }

    #[test]
    fn a_deny_window_inside_an_allow_window_wins() {
        let windows = [
            window(WindowKind::Allow, "0 0 * * *", "24h", "UTC"),
            window(WindowKind::Deny, "0 12 * * *", "1h", "UTC"),
        ];
        assert!(state(&windows, at("2026-03-02T11:59:00Z")).open);
        let s = state(&windows, at("2026-03-02T12:30:00Z"));
        assert!(!s.open);
        assert_eq!(s.opens_at.as_deref(), Some("2026-03-02T13:00:00Z"));
    }

    #[test]
    fn is_open_agrees_with_the_full_verdict() {
        let windows = [
            window(
                WindowKind::Allow,
                "0 9 * * mon-fri",
                "8h",
                "America/New_York",
            ),
            window(WindowKind::Deny, "0 22 * * 5", "60h", "Europe/Berlin"),
        ];
        for t in [
            "2026-01-05T14:00:00Z",
            "2026-01-05T13:59:00Z",
            "2026-11-28T12:00:00Z",
            "2026-11-27T20:59:00Z",
            "2026-07-11T12:00:00Z",
        ] {
            assert_eq!(is_open(&windows, at(t)), state(&windows, at(t)).open, "{t}");
        }
        assert!(is_open(&[], at("2026-01-05T14:00:00Z")));
    }

    #[test]
    fn runs_per_month_counts_the_schedule_over_a_year() {
        let daily = Cron::parse("0 3 * * *").unwrap().runs_per_month();
        assert!((daily - 365.0 / 12.0).abs() < 1e-9, "{daily}");
        let weekdays = Cron::parse("30 6 * * mon-fri").unwrap().runs_per_month();
        assert!((weekdays - 261.0 / 12.0).abs() < 1e-9, "{weekdays}");
        let hourly = Cron::parse("0 * * * *").unwrap().runs_per_month();
        assert!((hourly - 365.0 * 24.0 / 12.0).abs() < 1e-9);
    }

    #[test]
    fn no_windows_is_always_open() {
        assert!(state(&[], at("2026-03-02T12:30:00Z")).open);
    }
}
