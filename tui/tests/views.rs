//! Snapshots of every view with ratatui's TestBackend (80×24), and the key handling that moves
//! between them: an empty stack, a stack with drift, a long plan, history with a rollback
//! confirmation, the help overlay.

use planner::plan::{DriftFinding, DriftStatus, FieldChange, PlanOptions};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::path::Path;
use tui::app::{Action, App, Key, View};
use tui::model::{Model, Revision, Status};

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| tui::ui::draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..height {
        let line: String = (0..width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The example stack planned from nothing (a long plan), with drift and history.
fn busy_model() -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    let snapshot = planner::analyze_dir(&dir).unwrap().snapshot.unwrap();
    let plan = planner::plan::plan(
        &planner::Snapshot::empty("acme-prod"),
        &snapshot,
        &PlanOptions::default(),
    );
    let revisions = vec![
        Revision {
            revision: "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c".into(),
            source: "git".into(),
            author: Some("Ana <ana@acme.example>".into()),
            message: Some("scale checkout-api".into()),
            seen_at: 1_795_380_000,
            valid: true,
            applied: true,
            current: true,
            ..Revision::default()
        },
        Revision {
            revision: "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0".into(),
            source: "git".into(),
            author: Some("Bo <bo@acme.example>".into()),
            message: Some("break the topic".into()),
            seen_at: 1_795_379_000,
            valid: false,
            errors: Some("error[missing-field]: topic `x` is missing required field `team`".into()),
            ..Revision::default()
        },
        Revision {
            revision: "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a".into(),
            source: "git".into(),
            author: Some("Ana <ana@acme.example>".into()),
            message: Some("initial platform".into()),
            seen_at: 1_795_370_000,
            valid: true,
            applied: true,
            ..Revision::default()
        },
    ];
    let drift = vec![
        DriftFinding {
            address: "service/payments-gateway".into(),
            status: DriftStatus::Drifted,
            policy: Some(api::DriftPolicy::Correct),
            changed_paths: vec!["Deployment/payments-gateway: spec.replicas".into()],
            changes: vec![FieldChange {
                path: "Deployment/payments-gateway: spec.replicas".into(),
                before: Some(2.into()),
                after: Some(7.into()),
                forces_replacement: None,
                known_after_apply: false,
            }],
        },
        DriftFinding {
            address: "topic/order-events".into(),
            status: DriftStatus::Missing,
            policy: Some(api::DriftPolicy::Correct),
            changed_paths: vec![],
            changes: vec![],
        },
        DriftFinding {
            address: "database/legacy-db".into(),
            status: DriftStatus::Orphan,
            policy: None,
            changed_paths: vec![],
            changes: vec![],
        },
    ];
    let mut resources = std::collections::BTreeMap::new();
    resources.insert("service".to_string(), 7);
    resources.insert("database".to_string(), 4);
    let mut drift_counts = std::collections::BTreeMap::new();
    drift_counts.insert(DriftStatus::Drifted, 1);
    drift_counts.insert(DriftStatus::Missing, 1);
    drift_counts.insert(DriftStatus::Orphan, 1);
    Model {
        status: Status {
            stack: Some("acme-prod".into()),
            source: "https://github.com/acme/platform-state.git (main, path `stack`)".into(),
            tracked_revision: Some(revisions[1].revision.clone()),
            applied_revision: Some(revisions[0].revision.clone()),
            sync_state: api::SyncState::Invalid,
            pinned_revision: None,
            last_error: Some("revision b0b0b0b0b0b0 is invalid (1 error)".into()),
            last_sync_at: Some(1_795_380_100),
            resources,
            drift: drift_counts,
            ..Status::default()
        },
        plan: Some(plan),
        drift,
        revisions,
        resources: vec![
            api::ResourceStatus {
                address: "ai-endpoint/support-llm".into(),
                kind: "ai-endpoint".into(),
                driver: "kubernetes".into(),
                team: "ml".into(),
                health: api::Health::Degraded,
                message: Some(
                    "Deployment support-llm: rollout stuck (ProgressDeadlineExceeded)".into(),
                ),
                revision: "c0ffee".into(),
                applied_at: 1_795_380_000,
                drift: None,
                live: vec![serde_json::json!({
                    "kind": "Deployment", "metadata": { "name": "support-llm" },
                    "status": { "conditions": [
                        { "type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable" },
                        { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                          "message": "ReplicaSet has timed out progressing" },
                    ] },
                })],
            },
            api::ResourceStatus {
                address: "service/checkout-api".into(),
                kind: "service".into(),
                driver: "kubernetes".into(),
                team: "payments".into(),
                health: api::Health::Ready,
                revision: "c0ffee".into(),
                applied_at: 1_795_380_000,
                drift: Some(DriftStatus::Drifted),
                ..api::ResourceStatus::default()
            },
            api::ResourceStatus {
                address: "topic/order-events".into(),
                kind: "topic".into(),
                driver: "kubernetes".into(),
                team: "payments".into(),
                health: api::Health::Missing,
                message: Some("not found by its driver".into()),
                revision: "c0ffee".into(),
                applied_at: 1_795_380_000,
                drift: Some(DriftStatus::Missing),
                ..api::ResourceStatus::default()
            },
        ],
    }
}

fn app_at(model: Model, view: View) -> App {
    let mut app = App::new(model, false);
    let key = match view {
        View::Overview => '1',
        View::Plan => '2',
        View::Drift => '3',
        View::History => '4',
        View::Graph => '5',
        View::Resources => '6',
        View::Cost => '7',
    };
    app.on_key(Key::Char(key));
    app
}

#[test]
fn every_view_of_an_empty_stack() {
    for view in View::ALL {
        let app = app_at(Model::default(), view);
        insta::assert_snapshot!(
            format!("empty_{}", view.title().to_lowercase()),
            render(&app, 80, 24)
        );
    }
}

#[test]
fn every_view_of_a_busy_stack() {
    for view in View::ALL {
        let app = app_at(busy_model(), view);
        insta::assert_snapshot!(
            format!("busy_{}", view.title().to_lowercase()),
            render(&app, 80, 24)
        );
    }
}

#[test]
fn details_of_a_drifted_resource_and_of_a_plan_entry() {
    let mut app = app_at(busy_model(), View::Drift);
    app.on_key(Key::Enter);
    insta::assert_snapshot!("drift_details", render(&app, 80, 24));
    let mut app = app_at(busy_model(), View::Plan);
    for _ in 0..3 {
        app.on_key(Key::Char('j'));
    }
    app.on_key(Key::Enter);
    insta::assert_snapshot!("plan_details_wide", render(&app, 120, 30));
}

#[test]
fn a_degraded_resource_shows_its_live_objects_and_conditions() {
    let mut app = app_at(busy_model(), View::Resources);
    app.on_key(Key::Enter);
    let screen = render(&app, 100, 30);
    assert!(screen.contains("✗ ai-endpoint/support-llm"), "{screen}");
    assert!(
        screen.contains("Progressing=False ProgressDeadlineExceeded"),
        "{screen}"
    );
    assert!(
        screen.contains("Resources: 3 applied, 2 not ready"),
        "{screen}"
    );
    insta::assert_snapshot!("resources_details", screen);
    // `/` filters by what a row says, health included.
    let mut app = app_at(busy_model(), View::Resources);
    app.on_key(Key::Char('/'));
    for c in "missing".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    let keys: Vec<String> = app.rows().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["topic/order-events"]);
}

#[test]
fn help_overlay_and_filtered_plan() {
    let mut app = app_at(busy_model(), View::Plan);
    app.on_key(Key::Char('?'));
    insta::assert_snapshot!("help", render(&app, 80, 24));
    app.on_key(Key::Esc);
    for c in "/gpu".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    insta::assert_snapshot!("plan_filtered", render(&app, 80, 24));
    assert_eq!(app.rows().len(), 2);
}

#[test]
fn rollback_asks_first_and_only_a_yes_returns_the_action() {
    let mut app = app_at(busy_model(), View::History);
    app.on_key(Key::Char('j')); // the invalid revision: not a target
    app.on_key(Key::Char('r'));
    assert!(app.confirm.is_none());
    assert!(
        app.message
            .as_deref()
            .unwrap()
            .contains("never applied in full")
    );
    app.on_key(Key::Char('j'));
    let target = "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a".to_string();
    assert_eq!(
        app.on_key(Key::Char('r')),
        Some(Action::PreviewRollback(target.clone())),
        "the plan is asked for first"
    );
    // The rollback plan arrives and is shown before anything can be confirmed.
    let plan = busy_model().plan.unwrap();
    app.show_rollback_plan(&target, Ok(plan));
    insta::assert_snapshot!("rollback_confirm", render(&app, 80, 30));
    assert_eq!(app.on_key(Key::Char('n')), None, "n cancels");
    assert!(app.confirm.is_none());
    app.on_key(Key::Char('r'));
    assert_eq!(app.on_key(Key::Char('y')), Some(Action::Rollback(target)));
}

#[test]
fn read_only_mode_explains_that_actions_need_a_daemon() {
    let mut app = App::new(busy_model(), true);
    app.on_key(Key::Char('s'));
    assert!(app.confirm.is_none());
    assert!(
        app.message
            .as_deref()
            .unwrap()
            .contains("need a running daemon")
    );
    assert_eq!(app.on_key(Key::Char('q')), Some(Action::Quit));
}

#[test]
fn keys_switch_views_and_move_the_selection() {
    let mut app = App::new(busy_model(), false);
    app.on_key(Key::Tab);
    assert_eq!(app.view, View::Plan);
    app.on_key(Key::BackTab);
    app.on_key(Key::BackTab);
    assert_eq!(app.view, View::Cost, "BackTab wraps to the last view");
    app.on_key(Key::Char('4'));
    app.on_key(Key::Down);
    app.on_key(Key::Down);
    app.on_key(Key::Down);
    assert_eq!(app.selected(), 2, "the selection stops at the last row");
    app.on_key(Key::Up);
    assert_eq!(app.selected(), 1);
}

#[test]
fn the_model_reads_the_daemon_api() {
    let status = r#"{"stack":"acme-prod","source":"directory stack","tracked_revision":"c1","applied_revision":"c1","sync_state":"synced","resources":{"service":7},"drift":{},"unknown_field":1}"#;
    let drift = r#"{"findings":[{"address":"topic/t","status":"missing","policy":"correct","changed_paths":[]}]}"#;
    let revisions = r#"{"revisions":[{"revision":"c1","source":"git","author":null,"message":"m","seen_at":1,"valid":true,"errors":null,"applied":true,"current":true}],"applies":[]}"#;
    let model = Model::from_api(status, None, drift, revisions).unwrap();
    assert_eq!(model.status.sync_state, api::SyncState::Synced);
    assert_eq!(model.drift[0].address, "topic/t");
    assert!(model.revisions[0].current);
}

#[test]
fn drift_is_corrected_one_or_all_after_a_confirmation() {
    let mut app = app_at(busy_model(), View::Drift);
    assert_eq!(app.on_key(Key::Char('c')), None, "c only asks");
    insta::assert_snapshot!("correct_drift_confirm", render(&app, 80, 24));
    assert_eq!(
        app.on_key(Key::Char('y')),
        Some(Action::CorrectDrift(Some(
            "service/payments-gateway".into()
        )))
    );
    app.on_key(Key::Char('C'));
    assert_eq!(
        app.confirm
            .as_ref()
            .unwrap()
            .lines
            .iter()
            .filter(|l| l.starts_with("  "))
            .count(),
        3,
        "two findings, one diff line"
    );
    assert_eq!(app.on_key(Key::Char('y')), Some(Action::CorrectDrift(None)));
    // Orphans are never corrected (they are not declared).
    app.on_key(Key::Char('j'));
    app.on_key(Key::Char('j'));
    app.on_key(Key::Char('c'));
    assert!(app.confirm.is_none());
    assert!(
        app.message
            .as_deref()
            .unwrap()
            .contains("nothing to correct here")
    );
}

#[test]
fn the_graph_is_walked_to_what_a_resource_needs_and_back() {
    let mut app = app_at(busy_model(), View::Graph);
    // Go to service/checkout-api, then to the first thing it needs, then back up.
    for c in "/checkout-api".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    assert_eq!(app.selected_key().as_deref(), Some("service/checkout-api"));
    app.on_key(Key::Char('l'));
    assert_eq!(
        app.selected_key().as_deref(),
        Some("database/orders-db"),
        "the filter is cleared to show the target"
    );
    app.on_key(Key::Char('h'));
    assert_eq!(app.selected_key().as_deref(), Some("service/checkout-api"));
    app.on_key(Key::Char('l'));
    app.on_key(Key::Char('l'));
    assert!(
        app.message
            .as_deref()
            .unwrap()
            .contains("has nothing it needs")
    );
}

#[test]
fn resume_shows_the_plan_back_to_the_tracked_revision() {
    let mut model = busy_model();
    model.status.pinned_revision = Some("7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a".into());
    let tracked = model.status.tracked_revision.clone().unwrap();
    let mut app = app_at(model, View::Overview);
    assert_eq!(
        app.on_key(Key::Char('u')),
        Some(Action::PreviewRollback(tracked.clone()))
    );
    app.show_rollback_plan(&tracked, Ok(busy_model().plan.unwrap()));
    let lines = &app.confirm.as_ref().unwrap().lines;
    assert!(
        lines.iter().any(|l| l == "Plan: 38 to create, 0 unchanged"),
        "{lines:?}"
    );
    assert_eq!(app.on_key(Key::Char('y')), Some(Action::Resume));
}

#[test]
fn approve_offers_exactly_the_waiting_plan_and_only_a_yes_returns_it() {
    let mut model = busy_model();
    let plan = model.plan.clone().unwrap();
    model.status.sync_state = api::SyncState::AwaitingApproval;
    model.status.pending_approval = Some(api::PendingApproval {
        revision: "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c".into(),
        plan_hash: plan.approval_hash(),
        summary: api::summary_line(&plan),
    });
    let mut app = app_at(model.clone(), View::Overview);
    insta::assert_snapshot!("awaiting_approval_overview", render(&app, 100, 30));
    app.on_key(Key::Char('a'));
    insta::assert_snapshot!("approve_confirm", render(&app, 80, 30));
    assert_eq!(app.on_key(Key::Char('n')), None, "n cancels");
    app.on_key(Key::Char('a'));
    assert_eq!(
        app.on_key(Key::Char('y')),
        Some(Action::Approve {
            revision: "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c".into(),
            plan_hash: plan.approval_hash(),
        })
    );

    // The plan on screen is not the one waiting: nothing is offered.
    model.status.pending_approval.as_mut().unwrap().plan_hash = "0".repeat(64);
    let mut app = app_at(model, View::Overview);
    app.on_key(Key::Char('a'));
    assert!(app.confirm.is_none());
    assert!(app.message.as_deref().unwrap().contains("the plan changed"));
}

#[test]
fn the_overview_shows_a_closed_sync_window_and_when_it_opens() {
    let mut model = busy_model();
    model.status.sync_state = api::SyncState::WindowClosed;
    model.status.window = Some(planner::window::WindowState {
        open: false,
        reason: Some("the deny window \"0 22 * * fri\" for 60h (Europe/Berlin) is in force".into()),
        opens_at: Some("2026-11-30T09:00:00Z".into()),
    });
    let app = app_at(model, View::Overview);
    let screen = render(&app, 120, 30);
    assert!(
        screen.contains("Sync window     closed: the deny window \"0 22 * * fri\" for 60h (Europe/Berlin) is in force; opens 2026-11-30T09:00:00Z"),
        "{screen}"
    );
    assert!(screen.contains("window-closed"), "{screen}");
}

#[test]
fn the_cost_view_shows_teams_against_budgets_and_the_costliest_resources() {
    let mut app = app_at(busy_model(), View::Cost);
    insta::assert_snapshot!("cost", render(&app, 100, 30));
    let plan = app.model.plan.clone().unwrap();
    let costliest = app.costs()[0].address.clone();
    let max = plan
        .resources
        .iter()
        .map(|r| r.cost.after)
        .fold(0.0, f64::max);
    assert_eq!(app.costs()[0].cost.after, max, "costliest first");
    assert_eq!(app.selected_key(), Some(costliest));
    app.on_key(Key::Char('/'));
    for c in "ledger".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    assert!(
        app.rows().iter().all(|(k, _)| k.contains("ledger")),
        "{:?}",
        app.rows()
    );
}

#[test]
fn scaled_down_resources_are_on_the_overview_and_w_wakes_the_selected_one() {
    let mut model = busy_model();
    model.status.sync_state = api::SyncState::Synced;
    model.status.last_error = None;
    model.status.scaled_down = vec![
        api::ScaledDownResource {
            address: "ai-endpoint/support-llm".into(),
            since: 1_795_380_000,
            note: "idle 2h13m, cost policy".into(),
            figure: "requests 0/s (idle at ≤ 0)".into(),
            monthly_usd_saved: 1174.12,
        },
        api::ScaledDownResource {
            address: "gpu-pool/l4-inference".into(),
            since: 1_795_380_000,
            note: "idle 45m, cost policy".into(),
            figure: "GPU utilisation 0% (idle at ≤ 5%)".into(),
            monthly_usd_saved: 2349.0,
        },
    ];
    model.status.utilisation_warning = Some(
        "utilisation unknown, nothing scaled down for it: ai-endpoint/x: no utilisation data"
            .into(),
    );
    let mut app = app_at(model.clone(), View::Overview);
    insta::assert_snapshot!("scaled_down_overview", render(&app, 110, 30));
    app.on_key(Key::Char('w'));
    insta::assert_snapshot!("wake_confirm", render(&app, 80, 30));
    assert_eq!(
        app.on_key(Key::Char('y')),
        Some(Action::Wake("ai-endpoint/support-llm".into()))
    );

    // Nothing held: nothing offered.
    model.status.scaled_down.clear();
    let mut app = app_at(model, View::Overview);
    app.on_key(Key::Char('w'));
    assert!(app.confirm.is_none());
    assert_eq!(app.message.as_deref(), Some("nothing is scaled down"));
}

#[test]
fn plan_details_name_the_template_use_that_made_a_resource() {
    let mut app = app_at(busy_model(), View::Plan);
    app.on_key(Key::Char('/'));
    for c in "database/analytics".chars() {
        app.on_key(Key::Char(c));
    }
    app.on_key(Key::Enter);
    app.on_key(Key::Enter);
    let screen = render(&app, 200, 30);
    assert!(
        screen.contains(
            "from template clickhouse-cluster v1, use \"analytics\" at data/analytics.kdl:3:1"
        ),
        "{screen}"
    );
}
