//! UI state and its transitions: pure, no terminal and no network (gitui style: state apart
//! from drawing). The terminal loop turns key presses into [`Key`]s and carries out the
//! [`Action`]s this returns.

use crate::model::Model;
use api::Action as PlanAction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Plan,
    Drift,
    History,
    Graph,
    /// Every applied resource with its health, in the manner of k9s.
    Resources,
    /// The monthly estimate by team (against budgets), kind and resource.
    Cost,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Overview,
        View::Plan,
        View::Drift,
        View::History,
        View::Graph,
        View::Resources,
        View::Cost,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Plan => "Plan",
            View::Drift => "Drift",
            View::History => "History",
            View::Graph => "Graph",
            View::Resources => "Resources",
            View::Cost => "Cost",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Keys the UI understands, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Backspace,
}

/// What the operator asked for, once confirmed; `PreviewRollback` is the one request made
/// before confirming (it changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Sync,
    Rollback(String),
    Resume,
    Quit,
    PreviewRollback(String),
    /// Re-apply what was applied: one resource, or every finding with policy `correct`.
    CorrectDrift(Option<String>),
    /// Approve exactly the plan waiting for approval (revision and plan hash).
    Approve {
        revision: String,
        plan_hash: String,
    },
    /// Bring a resource the cost controller scaled down back.
    Wake(String),
}

/// A question that must be answered before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    pub lines: Vec<String>,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub struct App {
    pub model: Model,
    pub view: View,
    selected: [usize; View::ALL.len()],
    pub filter: String,
    pub filtering: bool,
    pub details: bool,
    pub help: bool,
    pub confirm: Option<Confirm>,
    /// Opened on a state directory: actions need a daemon.
    pub read_only: bool,
    pub message: Option<String>,
}

impl App {
    pub fn new(model: Model, read_only: bool) -> App {
        App {
            model,
            view: View::Overview,
            selected: [0; View::ALL.len()],
            filter: String::new(),
            filtering: false,
            details: false,
            help: false,
            confirm: None,
            read_only,
            message: None,
        }
    }

    /// The rows of the current list, as (key, text) after the filter; the key identifies the
    /// row (an address or a revision).
    pub fn rows(&self) -> Vec<(String, String)> {
        let rows: Vec<(String, String)> = match self.view {
            View::Overview => Vec::new(),
            View::Plan | View::Graph => self
                .model
                .plan
                .iter()
                .flat_map(|p| p.resources.iter())
                .filter(|r| self.view == View::Graph || r.action != PlanAction::NoOp)
                .map(|r| (r.address.clone(), format!("{} {}", r.address, r.driver)))
                .collect(),
            View::Drift => self
                .model
                .drift
                .iter()
                .map(|f| (f.address.clone(), format!("{} {}", f.address, f.status)))
                .collect(),
            View::Resources => self
                .model
                .resources
                .iter()
                .map(|r| {
                    (
                        r.address.clone(),
                        format!("{} {} {} {}", r.address, r.driver, r.health, r.team),
                    )
                })
                .collect(),
            View::Cost => self
                .costs()
                .into_iter()
                .map(|r| {
                    (
                        r.address.clone(),
                        format!("{} {} {}", r.address, r.team, r.kind),
                    )
                })
                .collect(),
            View::History => self
                .model
                .revisions
                .iter()
                .map(|r| {
                    (
                        r.revision.clone(),
                        format!("{} {}", r.revision, r.message.clone().unwrap_or_default()),
                    )
                })
                .collect(),
        };
        let needle = self.filter.to_lowercase();
        rows.into_iter()
            .filter(|(_, text)| needle.is_empty() || text.to_lowercase().contains(&needle))
            .collect()
    }

    /// The resources the plan leads to, costliest first (the Cost view's rows).
    pub fn costs(&self) -> Vec<&api::ResourceChange> {
        let mut rows: Vec<&api::ResourceChange> = self
            .model
            .plan
            .iter()
            .flat_map(|p| p.resources.iter())
            .filter(|r| r.after.is_some())
            .collect();
        rows.sort_by(|a, b| {
            b.cost
                .after
                .total_cmp(&a.cost.after)
                .then_with(|| a.address.cmp(&b.address))
        });
        rows
    }

    pub fn selected(&self) -> usize {
        let len = self.rows().len();
        self.selected[self.view.index()].min(len.saturating_sub(1))
    }

    /// The key of the selected row, if any.
    pub fn selected_key(&self) -> Option<String> {
        self.rows().into_iter().nth(self.selected()).map(|(k, _)| k)
    }

    fn switch(&mut self, view: View) {
        self.view = view;
        self.details = false;
        self.filter.clear();
        self.filtering = false;
    }

    /// Applies a key; returns an action to carry out (only after a confirmation, or quit).
    pub fn on_key(&mut self, key: Key) -> Option<Action> {
        self.message = None;
        if let Some(confirm) = &self.confirm {
            return match key {
                Key::Char('y') | Key::Enter => {
                    let action = confirm.action.clone();
                    self.confirm = None;
                    Some(action)
                }
                Key::Char('n') | Key::Esc | Key::Char('q') => {
                    self.confirm = None;
                    self.message = Some("cancelled; nothing changed".into());
                    None
                }
                _ => None,
            };
        }
        if self.help {
            self.help = false;
            return None;
        }
        if self.filtering {
            match key {
                Key::Enter => self.filtering = false,
                Key::Esc => {
                    self.filtering = false;
                    self.filter.clear();
                }
                Key::Backspace => {
                    self.filter.pop();
                }
                Key::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.selected[self.view.index()] = 0;
            return None;
        }
        let i = self.view.index();
        match key {
            Key::Char('q') => return Some(Action::Quit),
            Key::Char('?') => self.help = true,
            Key::Char(c @ '1'..='7') => self.switch(View::ALL[c as usize - '1' as usize]),
            Key::Tab => self.switch(View::ALL[(i + 1) % View::ALL.len()]),
            Key::BackTab => self.switch(View::ALL[(i + View::ALL.len() - 1) % View::ALL.len()]),
            Key::Char('j') | Key::Down => {
                let len = self.rows().len();
                self.selected[i] = (self.selected() + 1).min(len.saturating_sub(1));
            }
            Key::Char('k') | Key::Up => self.selected[i] = self.selected().saturating_sub(1),
            Key::Enter => self.details = !self.details,
            Key::Char('/') if self.view != View::Overview => {
                self.filtering = true;
                self.filter.clear();
            }
            Key::Esc => {
                self.details = false;
                self.filter.clear();
            }
            Key::Char('s') => self.ask_sync(),
            Key::Char('a') => self.ask_approve(),
            Key::Char('w') => self.ask_wake(),
            Key::Char('r') if self.view == View::History => return self.ask_rollback(),
            Key::Char('u') => return self.ask_resume(),
            Key::Char('l') if self.view == View::Graph => self.walk(true),
            Key::Char('h') if self.view == View::Graph => self.walk(false),
            Key::Char('c') if self.view == View::Drift => self.ask_correct(true),
            Key::Char('C') if self.view == View::Drift => self.ask_correct(false),
            _ => {}
        }
        None
    }

    fn needs_daemon(&mut self) -> bool {
        if self.read_only {
            self.message =
                Some("actions need a running daemon: open the UI with --connect URL".into());
        }
        self.read_only
    }

    fn ask_sync(&mut self) {
        if self.needs_daemon() {
            return;
        }
        let mut lines = vec![match &self.model.plan {
            Some(p) => format!("Plan: {}", api::summary_line(p)),
            None => "No plan yet: the daemon will fetch and plan first.".to_string(),
        }];
        lines.extend(self.plan_preview());
        self.confirm = Some(Confirm {
            title: "Sync now?".into(),
            lines,
            action: Action::Sync,
        });
    }

    /// The first changes of the daemon's plan, as a dialog lists them.
    fn plan_preview(&self) -> Vec<String> {
        self.model
            .plan
            .iter()
            .flat_map(|p| p.changes().take(8))
            .map(|c| format!("{:>3} {}", c.action.marker(), c.address))
            .collect()
    }

    /// Opens the approval dialog for the plan waiting for approval. The plan shown is the one
    /// approved: when the daemon's plan no longer has the waiting hash, nothing is offered.
    fn ask_approve(&mut self) {
        if self.needs_daemon() {
            return;
        }
        let Some(pending) = self.model.status.pending_approval.clone() else {
            self.message = Some("no plan waits for approval".into());
            return;
        };
        let shown = self.model.plan.as_ref().map(|p| p.approval_hash());
        if shown.as_deref() != Some(pending.plan_hash.as_str()) {
            self.message = Some("the plan changed since it was shown; wait for the refresh".into());
            return;
        }
        let mut lines = vec![
            format!(
                "Revision {}, plan {}",
                short(&pending.revision),
                api::short_hash(&pending.plan_hash)
            ),
            format!("Plan: {}", pending.summary),
        ];
        lines.extend(self.plan_preview());
        self.confirm = Some(Confirm {
            title: "Approve exactly this plan?".into(),
            lines,
            action: Action::Approve {
                revision: pending.revision,
                plan_hash: pending.plan_hash,
            },
        });
    }

    /// Opens the wake dialog: for the selected resource in the resources view when it is scaled
    /// down, else for the first resource the cost controller holds scaled down.
    fn ask_wake(&mut self) {
        if self.needs_daemon() {
            return;
        }
        let held = &self.model.status.scaled_down;
        let selected = (self.view == View::Resources)
            .then(|| self.selected_key())
            .flatten();
        let Some(down) = held
            .iter()
            .find(|d| Some(&d.address) == selected.as_ref())
            .or_else(|| held.first())
            .cloned()
        else {
            self.message = Some("nothing is scaled down".into());
            return;
        };
        self.confirm = Some(Confirm {
            title: format!("Wake {}?", down.address),
            lines: vec![
                format!("Scaled down: {} ({})", down.note, down.figure),
                "It comes back as declared (with the GPU pool it runs on).".into(),
            ],
            action: Action::Wake(down.address),
        });
    }

    /// Opens the rollback dialog and asks for the rollback plan to show in it.
    fn ask_rollback(&mut self) -> Option<Action> {
        if self.needs_daemon() {
            return None;
        }
        let key = self.selected_key()?;
        let rev = self.model.revisions.iter().find(|r| r.revision == key)?;
        if !rev.applied {
            self.message = Some(format!(
                "{} was never applied in full: not a rollback target",
                short(&rev.revision)
            ));
            return None;
        }
        let mut lines = vec![format!("Roll back to {}", short(&rev.revision))];
        lines.extend(
            rev.message
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| format!("  {m}")),
        );
        lines.extend(rev.author.iter().map(|a| format!("  by {a}")));
        lines.extend([
            String::new(),
            "The stored snapshot of this revision is planned and applied, and the stack".into(),
            "is pinned there until resume or a new commit on the tracked branch.".into(),
            String::new(),
            "Plan: computing…".into(),
        ]);
        let revision = rev.revision.clone();
        self.confirm = Some(Confirm {
            title: "Roll back?".into(),
            lines,
            action: Action::Rollback(revision.clone()),
        });
        Some(Action::PreviewRollback(revision))
    }

    /// Shows the rollback plan in the open rollback dialog (if it is still open for `revision`).
    pub fn show_rollback_plan(
        &mut self,
        revision: &str,
        plan: Result<api::Plan, crate::model::SourceError>,
    ) {
        let Some(confirm) = &mut self.confirm else {
            return;
        };
        // Resuming goes back to the tracked revision: its plan is previewed the same way.
        let resume_to = (confirm.action == Action::Resume)
            .then(|| self.model.status.tracked_revision.clone())
            .flatten();
        if confirm.action != Action::Rollback(revision.to_string())
            && resume_to.as_deref() != Some(revision)
        {
            return;
        }
        confirm.lines.retain(|l| l != "Plan: computing…");
        match plan {
            Ok(plan) => {
                confirm
                    .lines
                    .push(format!("Plan: {}", api::summary_line(&plan)));
                let changes: Vec<_> = plan.changes().collect();
                for c in changes.iter().take(10) {
                    let blocked = if c.blocked { "  BLOCKED" } else { "" };
                    confirm
                        .lines
                        .push(format!("{:>3} {}{blocked}", c.action.marker(), c.address));
                }
                if changes.len() > 10 {
                    confirm
                        .lines
                        .push(format!("    … and {} more", changes.len() - 10));
                }
                if plan.policy.blocked {
                    confirm
                        .lines
                        .push("Blocked by policy: the daemon will refuse it.".into());
                }
            }
            Err(e) => confirm.lines.push(format!("Plan unavailable: {e}")),
        }
    }

    /// Graph view: moves to the first resource the selected one needs (`needs`), or to the
    /// first one that needs it.
    fn walk(&mut self, needs: bool) {
        let Some(plan) = &self.model.plan else { return };
        let Some(current) = self.selected_key() else {
            return;
        };
        let next = if needs {
            plan.resources
                .iter()
                .find(|r| r.address == current)
                .and_then(|r| r.depends_on.first().cloned())
        } else {
            plan.resources
                .iter()
                .find(|r| r.depends_on.contains(&current))
                .map(|r| r.address.clone())
        };
        let Some(next) = next else {
            self.message = Some(format!(
                "{current} has nothing {}",
                if needs { "it needs" } else { "that needs it" }
            ));
            return;
        };
        // Clear a filter that would hide the target.
        if !self.rows().iter().any(|(k, _)| *k == next) {
            self.filter.clear();
        }
        if let Some(i) = self.rows().iter().position(|(k, _)| *k == next) {
            self.selected[View::Graph.index()] = i;
        }
    }

    /// Asks before re-applying drifted or missing resources (the selected one, or all), whatever
    /// their policy but `ignore`: an operator asking is the point of policy `report`.
    fn ask_correct(&mut self, selected_only: bool) {
        if self.needs_daemon() {
            return;
        }
        let selected = self.selected_key();
        let targets: Vec<_> = self
            .model
            .drift
            .iter()
            .filter(|f| {
                f.status != api::DriftStatus::Orphan
                    && f.policy.is_some_and(|p| p != api::DriftPolicy::Ignore)
            })
            .filter(|f| !selected_only || selected.as_deref() == Some(f.address.as_str()))
            .collect();
        if targets.is_empty() {
            self.message = Some(if selected_only {
                "nothing to correct here: orphans and resources with drift policy `ignore` are left alone".into()
            } else {
                "nothing to correct".into()
            });
            return;
        }
        let mut lines = vec!["Re-apply what was last applied to:".to_string()];
        for f in &targets {
            lines.push(format!("  {} ({})", f.address, f.status));
            lines.extend(f.changes.iter().take(3).map(|c| {
                let show = |v: &Option<serde_json::Value>| {
                    v.as_ref().map_or("(absent)".into(), |v| v.to_string())
                };
                format!(
                    "    {}: live {} → {}",
                    c.path,
                    show(&c.after),
                    show(&c.before)
                )
            }));
        }
        let action = Action::CorrectDrift(selected_only.then(|| targets[0].address.clone()));
        self.confirm = Some(Confirm {
            title: "Correct drift?".into(),
            lines,
            action,
        });
    }

    /// Opens the resume dialog and asks for the plan of going back to the tracked revision.
    fn ask_resume(&mut self) -> Option<Action> {
        if self.needs_daemon() {
            return None;
        }
        let Some(pin) = self.model.status.pinned_revision.clone() else {
            self.message = Some("not pinned; nothing to resume".into());
            return None;
        };
        let tracked = self.model.status.tracked_revision.clone();
        let mut lines = vec![format!(
            "End the pin to {} and follow the branch again.",
            short(&pin)
        )];
        if let Some(t) = &tracked {
            lines.extend([
                String::new(),
                format!("Back to {}", short(t)),
                "Plan: computing…".into(),
            ]);
        }
        self.confirm = Some(Confirm {
            title: "Resume?".into(),
            lines,
            action: Action::Resume,
        });
        tracked.map(Action::PreviewRollback)
    }
}

/// A revision id short enough to read: 12 hex digits of a commit, 8 of a content hash.
pub fn short(revision: &str) -> &str {
    let len = if revision.starts_with("content-") {
        16
    } else {
        12
    };
    revision.get(..len).unwrap_or(revision)
}
