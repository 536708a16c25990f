//! A damaged store (truncated, or with bytes overwritten) is refused with a clear error or read
//! consistently, never a panic; and the damaged file is left as it was for recovery.

mod support;

use daemon::store::Store;
use support::Workspace;

/// Opens a damaged copy and reads everything the commands read; any failure is an error value.
fn read_all(dir: &std::path::Path) -> Result<(), String> {
    let store = Store::open(dir).map_err(|e| e.to_string())?;
    store.history().map_err(|e| e.to_string())?;
    store.prior_snapshot().map_err(|e| e.to_string())?;
    store.journal().map_err(|e| e.to_string())?;
    store.revisions(100).map_err(|e| e.to_string())?;
    store.scaled_down().map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_truncated_or_overwritten_store_is_refused_clearly_or_read_never_a_panic() {
    let ws = Workspace::new();
    ws.copy_example();
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let original = std::fs::read(ws.path().join(".platformd/platformd.db")).unwrap();
    assert!(original.len() > 64 * 1024, "a real store");

    let mut damaged = Vec::new();
    // Truncations: the header, inside the first page, at page boundaries, near the end.
    for cut in [0, 1, 15, 16, 99, 100, 512, 4095, 4096, 4097, 8192, 16_384] {
        damaged.push((format!("truncated to {cut}"), original[..cut].to_vec()));
    }
    for i in 1..8 {
        let cut = original.len() * i / 8;
        damaged.push((format!("truncated to {cut}"), original[..cut].to_vec()));
    }
    // Overwrites: seeded positions, with garbage runs of a few bytes.
    let mut rng = planner::testing::Lcg(0x9e37_79b9_7f4a_7c15);
    let mut next = |n: usize| rng.below(n);
    for _ in 0..120 {
        let mut bytes = original.clone();
        let at = next(bytes.len());
        let len = 1 + next(16);
        for b in bytes.iter_mut().skip(at).take(len) {
            *b = next(256) as u8;
        }
        damaged.push((format!("{len} bytes overwritten at {at}"), bytes));
    }

    let (mut refused, mut read) = (0, 0);
    for (what, bytes) in &damaged {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("platformd.db");
        std::fs::write(&db, bytes).unwrap();
        match read_all(dir.path()) {
            Ok(()) => read += 1,
            Err(message) => {
                refused += 1;
                assert!(!message.is_empty(), "{what}: an empty error");
                if message.contains("damaged") {
                    assert!(
                        message.contains(&db.display().to_string())
                            && message.contains("restore it from a backup"),
                        "{what}: {message}"
                    );
                }
            }
        }
        // A file SQLite cannot read is not rewritten by opening it.
        if Store::open(dir.path()).is_err() {
            assert_eq!(
                &std::fs::read(&db).unwrap(),
                bytes,
                "{what}: the file changed"
            );
        }
    }
    assert!(refused > 0 && read > 0, "refused {refused}, read {read}");

    // The plainest case says exactly what happened.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("platformd.db"),
        b"this is not a database, it is a note",
    )
    .unwrap();
    let message = Store::open(dir.path()).err().unwrap().to_string();
    assert!(
        message.contains("is damaged (file is not a database)"),
        "{message}"
    );
}

/// A store whose schema version is negative (`PRAGMA user_version = -1`) panicked on open; it
/// is refused as damaged, by the library and by a command, and left as it was.
#[test]
fn a_negative_schema_version_is_refused_as_damage_not_a_panic() {
    let ws = Workspace::new();
    ws.copy_example();
    let run = ws.run(&["apply", "stack", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let db = ws.path().join(".platformd/platformd.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", -1)
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let err = read_all(&ws.path().join(".platformd")).unwrap_err();
    assert!(err.contains("schema version is -1"), "{err}");
    for args in [
        &["history"][..],
        &["plan", "stack"],
        &["apply", "stack", "--auto-approve"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains("damaged"), "{args:?}: {}", run.all());
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.all());
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
}
