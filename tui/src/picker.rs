//! The stack picker: a daemon that follows many stacks (`--config`) is opened on the list of
//! its stacks; Enter opens one in the UI. State and keys here (pure), drawing in [`draw`].

use crate::app::Key;
use api::{StackSummary, SyncState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};

/// What a key asks of the picker's caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picked {
    Open(String),
    Quit,
}

pub struct Picker {
    pub daemon: String,
    pub stacks: Vec<StackSummary>,
    pub selected: usize,
}

impl Picker {
    pub fn new(daemon: &str, stacks: Vec<StackSummary>) -> Picker {
        Picker {
            daemon: daemon.to_string(),
            stacks,
            selected: 0,
        }
    }

    pub fn on_key(&mut self, key: Key) -> Option<Picked> {
        match key {
            Key::Char('q') | Key::Esc => Some(Picked::Quit),
            Key::Up | Key::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                None
            }
            Key::Down | Key::Char('j') => {
                if self.selected + 1 < self.stacks.len() {
                    self.selected += 1;
                }
                None
            }
            Key::Enter => self
                .stacks
                .get(self.selected)
                .map(|s| Picked::Open(s.name.clone())),
            _ => None,
        }
    }
}

fn state_style(stack: &StackSummary) -> Style {
    if stack.owner.is_some() {
        return Style::default().fg(Color::DarkGray);
    }
    match stack.sync_state {
        SyncState::Synced => Style::default().fg(Color::Green),
        SyncState::Error | SyncState::Invalid | SyncState::Rejected | SyncState::Blocked => {
            Style::default().fg(Color::Red)
        }
        _ => Style::default().fg(Color::Yellow),
    }
}

pub fn draw(frame: &mut Frame, picker: &Picker) {
    let [title, body, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("platformd", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                " · {} · {} stacks",
                picker.daemon,
                picker.stacks.len()
            )),
        ])),
        title,
    );
    let rows = picker.stacks.iter().map(|s| {
        let applied = s
            .applied_revision
            .as_deref()
            .map_or("—".to_string(), |r| r.chars().take(8).collect());
        let note = match (&s.owner, &s.last_error) {
            (Some(owner), _) => format!("reconciled by {owner}"),
            (None, Some(e)) => e.clone(),
            (None, None) => s.source.clone(),
        };
        let state = if s.owner.is_some() {
            "elsewhere".to_string()
        } else {
            s.sync_state.to_string()
        };
        Row::new(vec![s.name.clone(), state, applied, note]).style(state_style(s))
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(18),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(vec!["STACK", "STATE", "APPLIED", ""])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .highlight_symbol("› ")
    .block(Block::default().borders(Borders::TOP).title(" stacks "));
    let mut state = TableState::default().with_selected(Some(picker.selected));
    frame.render_stateful_widget(table, body, &mut state);
    frame.render_widget(
        Paragraph::new("↑/↓ choose · enter open · q quit")
            .style(Style::default().fg(Color::DarkGray)),
        help,
    );
}
