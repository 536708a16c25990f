//! Any bytes as an API request's query string and JSON body, decoded as the daemon's handlers
//! decode them (axum's `Query` uses serde_urlencoded; bodies go through serde_json): never a
//! panic, and whatever is accepted encodes back to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn query_round_trips<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(query: &[u8]) {
    if let Ok(decoded) = serde_urlencoded::from_bytes::<T>(query) {
        let encoded = serde_urlencoded::to_string(&decoded).expect("a decoded query encodes");
        let again: T = serde_urlencoded::from_str(&encoded).expect("an encoded query decodes");
        assert_eq!(again, decoded, "{encoded}");
    }
}

fn body_round_trips<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(decoded) = serde_json::from_slice::<T>(body) {
        let encoded = serde_json::to_vec(&decoded).expect("a decoded body encodes");
        let again: T = serde_json::from_slice(&encoded).expect("an encoded body decodes");
        assert_eq!(again, decoded);
    }
}

fuzz_target!(|data: &[u8]| {
    // The query string up to the first newline, the body after it.
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    query_round_trips::<api::PlanQuery>(query);
    query_round_trips::<api::SyncQuery>(query);
    body_round_trips::<api::RollbackRequest>(body);
    body_round_trips::<api::ApproveRequest>(body);
    body_round_trips::<api::WakeRequest>(body);
});
