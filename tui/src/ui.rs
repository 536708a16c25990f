//! Drawing: a pure function of [`App`]. Colours carry meaning (create green, update yellow,
//! replace magenta, delete red, drift yellow), and every row also has a text marker
//! (`+ ~ -/+ -`, `drifted`, `✗`), so a monochrome terminal reads the same.

use crate::app::{App, View, short};
use api::{Action, ResourceChange, SyncState};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};

fn action_style(a: Action) -> Style {
    let colour = match a {
        Action::Create => Color::Green,
        Action::Update => Color::Yellow,
        Action::Replace => Color::Magenta,
        Action::Delete => Color::Red,
        Action::NoOp => Color::Reset,
        Action::Import => Color::Cyan,
        Action::Forget => Color::Blue,
    };
    Style::default().fg(colour)
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, app);
    match app.view {
        View::Overview => draw_overview(frame, body, app),
        View::Plan => draw_plan(frame, body, app),
        View::Drift => draw_drift(frame, body, app),
        View::History => draw_history(frame, body, app),
        View::Graph => draw_graph(frame, body, app),
        View::Resources => draw_resources(frame, body, app),
        View::Cost => draw_cost(frame, body, app),
    }
    draw_footer(frame, footer, app);
    if app.help {
        draw_help(frame, frame.area());
    }
    if let Some(confirm) = &app.confirm {
        let lines: Vec<Line<'_>> = confirm
            .lines
            .iter()
            .map(|l| Line::raw(l.as_str()))
            .chain([
                Line::raw(""),
                Line::from(vec![
                    Span::styled("y", bold()),
                    Span::raw(" confirm   "),
                    Span::styled("n", bold()),
                    Span::raw(" cancel"),
                ]),
            ])
            .collect();
        popup(frame, frame.area(), &confirm.title, lines);
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let stack = app
        .model
        .status
        .stack
        .clone()
        .unwrap_or_else(|| "no stack yet".into());
    let state = format!("  {stack} · {}", app.model.status.sync_state);
    let label = |i: usize, v: &View, full: bool| {
        if full || *v == app.view {
            format!(" {} {}", i + 1, v.title())
        } else {
            format!(" {}", i + 1)
        }
    };
    // Every view's name when they fit beside the stack and its state; otherwise numbers, with
    // the current view named: the state is what must never be cut.
    let full_width: usize = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| label(i, v, true).chars().count())
        .sum::<usize>()
        + state.chars().count();
    let full = full_width <= area.width as usize;
    let mut spans: Vec<Span<'static>> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let text = label(i, v, full);
            if *v == app.view {
                Span::styled(text, bold().add_modifier(Modifier::REVERSED))
            } else {
                Span::raw(text)
            }
        })
        .collect();
    spans.push(Span::raw(state));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let text = if app.filtering {
        format!("/{}▏ Enter keep · Esc clear", app.filter)
    } else if let Some(m) = &app.message {
        m.clone()
    } else {
        let view_keys = match app.view {
            View::Overview => "s sync · a approve · w wake · u resume",
            View::Plan => "j/k move · Enter details · / filter · s sync · a approve",
            View::Drift => "j/k move · Enter details · / filter · c/C correct one/all",
            View::History => "j/k move · Enter details · / filter · r roll back · u resume",
            View::Graph => "j/k move · l needs · h needed by · / filter",
            View::Resources => "j/k move · Enter live objects · / filter",
            View::Cost => "j/k move · Enter details · / filter",
        };
        let filter = if app.filter.is_empty() {
            String::new()
        } else {
            format!(" · filter \"{}\"", app.filter)
        };
        // Views are numbered in the header; the footer keeps to what fits 80 columns.
        format!("{view_keys} · ? help · q quit{filter}")
    };
    frame.render_widget(
        Paragraph::new(text).style(Style::default().add_modifier(Modifier::DIM)),
        area,
    );
}

fn kv(key: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{key:<16}"), bold()),
        Span::raw(value),
    ])
}

fn draw_overview(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let s = &app.model.status;
    let rev = |r: &Option<String>| {
        r.as_deref()
            .map_or("none".to_string(), |r| short(r).to_string())
    };
    // "  message — author" of a revision, when known.
    let detail = |id: &Option<String>| -> String {
        let Some(r) = id
            .as_ref()
            .and_then(|a| app.model.revisions.iter().find(|r| &r.revision == a))
        else {
            return String::new();
        };
        let parts: Vec<String> = [r.message.clone(), r.author.clone()]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("  {}", parts.join(" — "))
        }
    };
    let mut lines = vec![
        kv(
            "Stack",
            s.stack
                .clone()
                .unwrap_or_else(|| "no valid revision yet".into()),
        ),
        kv("Source", s.source.clone()),
        kv(
            "Tracked",
            format!(
                "{}{}",
                rev(&s.tracked_revision),
                detail(&s.tracked_revision)
            ),
        ),
        kv(
            "Applied",
            format!(
                "{}{}",
                rev(&s.applied_revision),
                detail(&s.applied_revision)
            ),
        ),
        kv("Sync", s.sync_state.to_string()),
        kv(
            "Pinned",
            s.pinned_revision.as_deref().map_or("no".to_string(), |p| {
                format!("to {} (resume with u)", short(p))
            }),
        ),
        kv(
            "Last sync",
            s.last_sync_at.map_or("never".into(), api::format_unix_time),
        ),
    ];
    let total: usize = s.resources.values().sum();
    lines.push(kv("Resources", format!("{total}")));
    for (kind, n) in &s.resources {
        lines.push(Line::raw(format!("  {kind:<14}{n}")));
    }
    let drift: usize = s.drift.values().sum();
    let drift_text = if drift == 0 {
        "none".to_string()
    } else {
        s.drift
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    lines.push(Line::from(vec![
        Span::styled(format!("{:<16}", "Drift"), bold()),
        Span::styled(
            drift_text,
            if drift > 0 {
                Style::default().fg(Color::Yellow)
            } else {
                Style::default()
            },
        ),
    ]));
    if let Some(w) = &s.window {
        let until = w
            .opens_at
            .as_deref()
            .map_or(String::new(), |t| format!("; opens {t}"));
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", "Sync window"), bold()),
            Span::styled(
                format!("closed: {}{until}", w.reason.as_deref().unwrap_or("closed")),
                Style::default().fg(Color::Yellow),
            ),
        ]));
    }
    if let Some(p) = &s.pending_approval {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", "Approval"), bold()),
            Span::styled(
                format!(
                    "plan {} for {} waits: press a to approve",
                    api::short_hash(&p.plan_hash),
                    crate::app::short(&p.revision)
                ),
                Style::default().fg(Color::Yellow),
            ),
        ]));
    }
    for (i, d) in s.scaled_down.iter().enumerate() {
        let label = if i == 0 { "Scaled down" } else { "" };
        let hint = if i == 0 { "; press w to wake" } else { "" };
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<16}"), bold()),
            Span::styled(
                format!("{}: {}{hint}", d.address, d.note),
                Style::default().fg(Color::Cyan),
            ),
        ]));
    }
    if let Some(w) = &s.utilisation_warning {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", "Utilisation"), bold()),
            Span::styled(w.clone(), Style::default().fg(Color::Yellow)),
        ]));
    }
    if let Some(plan) = &app.model.plan {
        // The daemon serves its last plan: pending only while the stack is not in sync.
        let label = if matches!(
            s.sync_state,
            SyncState::OutOfSync
                | SyncState::Blocked
                | SyncState::Error
                | SyncState::WindowClosed
                | SyncState::AwaitingApproval
        ) {
            "Pending plan"
        } else {
            "Last plan"
        };
        lines.push(kv(label, api::summary_line(plan)));
    }
    if let Some(e) = &s.last_error {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Last error", bold().fg(Color::Red)));
        lines.extend(
            e.lines()
                .map(|l| Line::styled(l.to_string(), Style::default().fg(Color::Red))),
        );
    }
    let block = Block::default().borders(Borders::ALL).title(" Overview ");
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// A list with details of the selected row beside it (or below, on narrow terminals).
fn list_with_details(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    title: &str,
    items: Vec<ListItem<'static>>,
    details: Vec<Line<'static>>,
) {
    let empty = items.is_empty();
    let areas: Vec<Rect> = if app.details && !empty {
        if area.width >= 100 {
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .split(area)
                .to_vec()
        } else {
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .split(area)
                .to_vec()
        }
    } else {
        vec![area]
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "));
    if empty {
        let text = if app.filter.is_empty() {
            "Nothing here."
        } else {
            "Nothing matches the filter."
        };
        frame.render_widget(Paragraph::new(text).block(block), areas[0]);
        return;
    }
    let list = List::new(items)
        .block(block)
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    let mut state = ListState::default().with_selected(Some(app.selected()));
    frame.render_stateful_widget(list, areas[0], &mut state);
    if let Some(detail_area) = areas.get(1) {
        let block = Block::default().borders(Borders::ALL).title(" Details ");
        frame.render_widget(
            Paragraph::new(details)
                .block(block)
                .wrap(Wrap { trim: false }),
            *detail_area,
        );
    }
}

fn change_details(c: &ResourceChange) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::styled(
            format!("{} {}", c.action.marker(), c.address),
            action_style(c.action).add_modifier(Modifier::BOLD),
        ),
        Line::raw(format!("driver {} · team {}", c.driver, c.team)),
        Line::raw(c.reason.clone()),
    ];
    if let Some(t) = &c.template {
        lines.push(Line::styled(
            api::template_line(t),
            Style::default().fg(Color::DarkGray),
        ));
    }
    if c.blocked {
        lines.push(Line::styled(
            "BLOCKED: protected (needs --allow-destroy)",
            Style::default().fg(Color::Red),
        ));
    }
    for f in &c.changes {
        let show =
            |v: &Option<serde_json::Value>| v.as_ref().map_or("(none)".into(), |v| v.to_string());
        let forces = if f.forces_replacement.is_some() {
            "  # forces replacement"
        } else {
            ""
        };
        lines.push(Line::styled(
            format!(
                "~ {}: {} → {}{forces}",
                f.path,
                show(&f.before),
                if f.known_after_apply {
                    api::KNOWN_AFTER_APPLY.to_string()
                } else {
                    show(&f.after)
                }
            ),
            action_style(Action::Update),
        ));
    }
    if c.action == Action::Create
        && let Some(after) = &c.after
    {
        for (k, v) in after.value().as_object().into_iter().flatten() {
            if k != "lifecycle" {
                lines.push(Line::styled(
                    format!("+ {k} = {v}"),
                    action_style(Action::Create),
                ));
            }
        }
    }
    if !c.depends_on.is_empty() {
        lines.push(Line::raw(format!("after: {}", c.depends_on.join(", "))));
    }
    lines
}

fn draw_plan(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(plan) = &app.model.plan else {
        let block = Block::default().borders(Borders::ALL).title(" Plan ");
        frame.render_widget(Paragraph::new("No plan yet.").block(block), area);
        return;
    };
    let keys: Vec<String> = app.rows().into_iter().map(|(k, _)| k).collect();
    let changes: Vec<&ResourceChange> = keys
        .iter()
        .filter_map(|k| plan.resources.iter().find(|r| &r.address == k))
        .collect();
    let items = changes
        .iter()
        .map(|c| {
            let blocked = if c.blocked { "  BLOCKED" } else { "" };
            ListItem::new(Line::from(vec![
                Span::styled(
                    format!("{:>3} {}", c.action.marker(), c.address),
                    action_style(c.action),
                ),
                Span::raw(format!("  [{}] {}{blocked}", c.driver, c.action.as_str())),
            ]))
        })
        .collect();
    let details = changes
        .get(app.selected())
        .map(|c| change_details(c))
        .unwrap_or_default();
    let title = format!("Plan: {}", api::summary_line(plan));
    list_with_details(frame, area, app, &title, items, details);
}

fn draw_drift(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let keys: Vec<String> = app.rows().into_iter().map(|(k, _)| k).collect();
    let findings: Vec<_> = keys
        .iter()
        .filter_map(|k| app.model.drift.iter().find(|f| &f.address == k))
        .collect();
    let items = findings
        .iter()
        .map(|f| {
            let (marker, colour) = match f.status {
                api::DriftStatus::Missing => ("-", Color::Red),
                api::DriftStatus::Orphan => ("?", Color::Magenta),
                _ => ("~", Color::Yellow),
            };
            let policy = f
                .policy
                .map(|p| format!("  policy {}", p.as_str()))
                .unwrap_or_default();
            ListItem::new(Line::from(vec![
                Span::styled(
                    format!("{marker} {} {}", f.address, f.status),
                    Style::default().fg(colour),
                ),
                Span::raw(policy),
            ]))
        })
        .collect();
    let details = findings
        .get(app.selected())
        .map(|f| {
            let mut lines = vec![Line::styled(format!("{} {}", f.address, f.status), bold())];
            for c in &f.changes {
                let show = |v: &Option<serde_json::Value>| {
                    v.as_ref().map_or("(absent)".into(), |v| v.to_string())
                };
                lines.push(Line::raw(format!(
                    "{}: applied {} → live {}",
                    c.path,
                    show(&c.before),
                    show(&c.after)
                )));
            }
            lines
        })
        .unwrap_or_default();
    let title = format!(
        "Drift: {} finding{}",
        app.model.drift.len(),
        if app.model.drift.len() == 1 { "" } else { "s" }
    );
    list_with_details(frame, area, app, &title, items, details);
}

/// Health as a marker and a colour (the marker carries the meaning without colour).
fn health_style(h: api::Health) -> (&'static str, Color) {
    match h {
        api::Health::Ready => ("✓", Color::Green),
        api::Health::Progressing => ("…", Color::Yellow),
        api::Health::Degraded => ("✗", Color::Red),
        api::Health::Missing => ("-", Color::Red),
    }
}

/// The Cost view: teams against their budgets and kinds above, the costliest resources below.
fn draw_cost(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(plan) = &app.model.plan else {
        frame.render_widget(
            Paragraph::new("No plan yet: the estimate comes with the daemon's first plan.")
                .block(Block::default().borders(Borders::ALL).title(" Cost ")),
            area,
        );
        return;
    };
    let mut kinds: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for r in plan.resources.iter().filter(|r| r.after.is_some()) {
        *kinds.entry(r.kind.as_str().to_string()).or_default() += r.cost.after;
    }
    let mut kinds: Vec<(String, f64)> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let usd = api::format_usd;
    let mut summary = vec![Line::from(vec![
        Span::styled(format!("{:<16}", "Monthly total"), bold()),
        Span::raw(usd(plan.cost.after)),
    ])];
    for t in &plan.cost.teams {
        let (budget, style) = match t.budget {
            Some(b) if t.over_budget => (
                format!("  budget {}  over budget", usd(b)),
                Style::default().fg(Color::Red),
            ),
            Some(b) => (format!("  budget {}", usd(b)), Style::default()),
            None => (String::new(), Style::default()),
        };
        summary.push(Line::styled(
            format!("  {:<14}{:>14}{budget}", t.team, usd(t.after)),
            style,
        ));
    }
    summary.push(Line::raw(
        kinds
            .iter()
            .map(|(k, v)| format!("{k} {}", usd(*v)))
            .collect::<Vec<_>>()
            .join(" · "),
    ));
    let height = (summary.len() as u16 + 2).min(area.height / 2);
    let areas = Layout::vertical([Constraint::Length(height), Constraint::Min(0)]).split(area);
    frame.render_widget(
        Paragraph::new(summary)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" Cost by team "),
            )
            .wrap(Wrap { trim: false }),
        areas[0],
    );
    let keys: Vec<String> = app.rows().into_iter().map(|(k, _)| k).collect();
    let rows: Vec<&api::ResourceChange> = keys
        .iter()
        .filter_map(|k| plan.resources.iter().find(|r| &r.address == k))
        .collect();
    let width = rows.iter().map(|r| r.address.len()).max().unwrap_or(0);
    let items = rows
        .iter()
        .map(|r| {
            ListItem::new(Line::raw(format!(
                "{:<width$}  {:>12}  {}",
                r.address,
                usd(r.cost.after),
                r.team
            )))
        })
        .collect();
    let details = rows
        .get(app.selected())
        .map(|r| {
            vec![
                Line::styled(r.address.clone(), bold()),
                Line::raw(format!(
                    "team {} · kind {} · driver {}",
                    r.team, r.kind, r.driver
                )),
                Line::raw(format!(
                    "monthly {} (before this plan {})",
                    usd(r.cost.after),
                    usd(r.cost.before)
                )),
            ]
        })
        .unwrap_or_default();
    list_with_details(
        frame,
        areas[1],
        app,
        " Costliest resources ",
        items,
        details,
    );
}

fn draw_resources(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let keys: Vec<String> = app.rows().into_iter().map(|(k, _)| k).collect();
    let resources: Vec<_> = keys
        .iter()
        .filter_map(|k| app.model.resources.iter().find(|r| &r.address == k))
        .collect();
    let width = resources.iter().map(|r| r.address.len()).max().unwrap_or(0);
    let items = resources
        .iter()
        .map(|r| {
            let (marker, colour) = health_style(r.health);
            let drift = r.drift.map(|d| d.to_string()).unwrap_or_default();
            let applied = api::format_unix_time(r.applied_at);
            ListItem::new(Line::from(vec![
                Span::styled(format!("{marker} "), Style::default().fg(colour)),
                Span::raw(format!("{:<width$}  ", r.address)),
                Span::styled(
                    format!("{:<12}", r.health.to_string()),
                    Style::default().fg(colour),
                ),
                Span::raw(format!("{:<11}", r.driver)),
                Span::styled(format!("{drift:<8} "), Style::default().fg(Color::Yellow)),
                // Minutes are enough in a list; details carry the revision.
                Span::raw(applied.get(..16).unwrap_or(&applied).to_string()),
            ]))
        })
        .collect();
    let details = resources
        .get(app.selected())
        .map(|r| {
            let mut lines = vec![
                Line::styled(format!("{}  {}", r.address, r.health), bold()),
                Line::raw(format!(
                    "driver {} · team {} · revision {}",
                    r.driver, r.team, r.revision
                )),
            ];
            if let Some(m) = &r.message {
                lines.push(Line::raw(m.clone()));
            }
            if r.live.is_empty() {
                lines.push(Line::raw(
                    "live objects: none seen yet (the next drift scan reads them)",
                ));
            }
            for doc in &r.live {
                lines.push(Line::raw(format!(
                    "{} {}",
                    doc["kind"].as_str().unwrap_or("object"),
                    doc["metadata"]["name"].as_str().unwrap_or("")
                )));
                for c in doc["status"]["conditions"].as_array().into_iter().flatten() {
                    lines.push(Line::raw(format!(
                        "  {}={} {} {}",
                        c["type"].as_str().unwrap_or(""),
                        c["status"].as_str().unwrap_or(""),
                        c["reason"].as_str().unwrap_or(""),
                        c["message"].as_str().unwrap_or("")
                    )));
                }
            }
            lines
        })
        .unwrap_or_default();
    let unhealthy = app
        .model
        .resources
        .iter()
        .filter(|r| r.health != api::Health::Ready)
        .count();
    let title = format!(
        "Resources: {} applied, {unhealthy} not ready",
        app.model.resources.len()
    );
    list_with_details(frame, area, app, &title, items, details);
}

fn draw_history(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let keys: Vec<String> = app.rows().into_iter().map(|(k, _)| k).collect();
    let revisions: Vec<_> = keys
        .iter()
        .filter_map(|k| app.model.revisions.iter().find(|r| &r.revision == k))
        .collect();
    let pin = app.model.status.pinned_revision.as_deref();
    let items = revisions
        .iter()
        .map(|r| {
            let mark = if !r.valid {
                "✗"
            } else if r.applied {
                "✓"
            } else {
                "·"
            };
            let mut tags = String::new();
            if r.current {
                tags.push_str(" (current)");
            }
            if pin == Some(r.revision.as_str()) {
                tags.push_str(" (pinned)");
            }
            let style = if r.valid {
                Style::default()
            } else {
                Style::default().fg(Color::Red)
            };
            ListItem::new(Line::styled(
                format!(
                    "{mark} {}  {}  {}{tags}",
                    short(&r.revision),
                    api::format_unix_time(r.seen_at).trim_end_matches(" UTC"),
                    r.message.clone().unwrap_or_else(|| r.source.clone())
                ),
                style,
            ))
        })
        .collect();
    let details = revisions
        .get(app.selected())
        .map(|r| {
            let mut lines = vec![
                Line::styled(r.revision.clone(), bold()),
                Line::raw(format!(
                    "author  {}",
                    r.author.clone().unwrap_or_else(|| "unknown".into())
                )),
                Line::raw(format!("message {}", r.message.clone().unwrap_or_default())),
                Line::raw(format!("seen    {}", api::format_unix_time(r.seen_at))),
                Line::raw(
                    if r.applied {
                        "applied in full: r rolls back to it"
                    } else {
                        "never applied in full"
                    }
                    .to_string(),
                ),
            ];
            if let Some(e) = &r.errors {
                lines.push(Line::styled("invalid:", Style::default().fg(Color::Red)));
                lines.extend(e.lines().map(|l| Line::raw(l.to_string())));
            }
            lines
        })
        .unwrap_or_default();
    list_with_details(frame, area, app, "History (newest first)", items, details);
}

fn draw_graph(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(plan) = &app.model.plan else {
        let block = Block::default().borders(Borders::ALL).title(" Graph ");
        frame.render_widget(
            Paragraph::new("No plan yet: the graph comes with it.").block(block),
            area,
        );
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    let rows = app.rows();
    let items: Vec<ListItem<'static>> =
        rows.iter().map(|(k, _)| ListItem::new(k.clone())).collect();
    let block = Block::default().borders(Borders::ALL).title(" Resources ");
    if items.is_empty() {
        frame.render_widget(
            Paragraph::new("Nothing matches the filter.").block(block),
            left,
        );
        return;
    }
    let list = List::new(items)
        .block(block)
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ");
    frame.render_stateful_widget(
        list,
        left,
        &mut ListState::default().with_selected(Some(app.selected())),
    );
    let selected = rows
        .get(app.selected())
        .map(|(k, _)| k.clone())
        .unwrap_or_default();
    let needs: Vec<String> = plan
        .resources
        .iter()
        .find(|r| r.address == selected)
        .map(|r| r.depends_on.clone())
        .unwrap_or_default();
    let needed_by: Vec<String> = plan
        .resources
        .iter()
        .filter(|r| r.depends_on.contains(&selected))
        .map(|r| r.address.clone())
        .collect();
    let mut lines = vec![
        Line::styled(selected.clone(), bold()),
        Line::raw(""),
        Line::styled(format!("needs ({})", needs.len()), bold()),
    ];
    lines.extend(needs.iter().map(|n| Line::raw(format!("  └ {n}"))));
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("needed by ({})", needed_by.len()),
        bold(),
    ));
    lines.extend(needed_by.iter().map(|n| Line::raw(format!("  └ {n}"))));
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Dependencies ");
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        right,
    );
}

fn draw_help(frame: &mut Frame<'_>, area: Rect) {
    let keys = [
        (
            "1-7, Tab",
            "switch view (overview, plan, drift, history, graph, resources)",
        ),
        ("j / k", "move down / up"),
        ("Enter", "show or hide details"),
        ("/", "filter the list (Enter keeps, Esc clears)"),
        ("s", "sync now (asks first)"),
        (
            "r",
            "roll back to the selected revision (history; asks first)",
        ),
        ("u", "resume: end a rollback pin (asks first)"),
        ("a", "approve the plan waiting for approval (asks first)"),
        (
            "w",
            "wake a resource the cost controller scaled down (asks first)",
        ),
        (
            "c / C",
            "correct the selected drift / all drift (drift view; asks first)",
        ),
        ("l / h", "graph: go to what it needs / to what needs it"),
        ("Esc", "close details, clear the filter"),
        ("?", "this help"),
        ("q", "quit"),
    ];
    let lines: Vec<Line<'static>> = keys
        .iter()
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(format!("{k:<10}"), bold()),
                Span::raw(d.to_string()),
            ])
        })
        .collect();
    popup(frame, area, "Keys", lines);
}

/// A centered box over everything else.
fn popup(frame: &mut Frame<'_>, area: Rect, title: &str, lines: Vec<Line<'_>>) {
    let width = lines
        .iter()
        .map(Line::width)
        .max()
        .unwrap_or(20)
        .clamp(30, area.width.saturating_sub(4) as usize) as u16
        + 4;
    let height = (lines.len() as u16 + 2).min(area.height);
    let x = area.x + area.width.saturating_sub(width) / 2;
    let y = area.y + area.height.saturating_sub(height) / 2;
    let rect = Rect::new(x, y, width.min(area.width), height);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "))
        .title_style(bold());
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}
