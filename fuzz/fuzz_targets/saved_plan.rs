//! Any bytes as a saved plan (`apply --plan FILE`): loaded, or refused with an error; a loaded
//! plan rebuilds its desired state and renders. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = serde_json::from_slice::<planner::Plan>(data) else {
        return;
    };
    let _ = plan.desired_snapshot();
    let _ = plan.approval_hash();
    let _ = plan.touches_approval_scope();
    let _ = planner::render::text(&plan, false);
    let _ = planner::render::json(&plan);
    let _ = planner::render::markdown(&plan, planner::render::MARKDOWN_LIMIT);
    let _ = api::summary_line(&plan);
});
