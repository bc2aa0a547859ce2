//! `sync`: a plan from one read, applied with every write conditional on what the plan saw.

use consul_kv::{ExportEntry, SyncAction, SyncError, TxnLimits};
use consul_kv_tests::server;

use crate::{client, prefix};

#[tokio::test]
async fn sync_plans_adds_changes_and_deletes_only_when_asked() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("sync-plan");
    kv.put_all_with_flags([
        (format!("{p}same"), "1", 0),
        (format!("{p}value"), "old", 0),
        (format!("{p}flags"), "f", 1),
        (format!("{p}gone"), "x", 0),
    ])
    .await
    .unwrap();
    let desired = vec![
        ExportEntry::new(format!("{p}same"), 0, "1"),
        ExportEntry::new(format!("{p}value"), 0, "new"),
        ExportEntry::new(format!("{p}flags"), 2, "f"),
        ExportEntry::new(format!("{p}added"), 0, "a"),
    ];
    // Without delete: `gone` is kept.
    let plan = kv.sync(&p, desired.clone()).plan().await.unwrap();
    assert_eq!(plan.added.len(), 1);
    assert_eq!(plan.changed.len(), 2);
    assert!(plan.deleted.is_empty());
    assert_eq!((plan.unchanged, plan.kept), (1, 1));
    // Dry run: reported, nothing written.
    let report = kv
        .sync(&p, desired.clone())
        .delete(true)
        .dry_run(true)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.plan.deleted.len(), 1);
    let text = report.plan.to_string();
    assert!(text.contains(&format!("+ {p}added")), "{text}");
    assert!(text.contains(&format!("~ {p}value")), "{text}");
    assert!(text.contains(&format!("- {p}gone")), "{text}");
    assert_eq!(
        kv.get(format!("{p}value")).await.unwrap().unwrap().bytes(),
        b"old"
    );
    // Applied, with delete.
    let report = kv.sync(&p, desired).delete(true).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.applied, 4);
    let items = kv.items(&p).await.unwrap();
    let now: Vec<(String, Vec<u8>, u64)> = items
        .iter()
        .map(|i| (i.key.clone(), i.value_bytes().to_vec(), i.flags))
        .collect();
    assert_eq!(
        now,
        [
            (format!("{p}added"), b"a".to_vec(), 0),
            (format!("{p}flags"), b"f".to_vec(), 2),
            (format!("{p}same"), b"1".to_vec(), 0),
            (format!("{p}value"), b"new".to_vec(), 0),
        ]
    );
    // Again: nothing to do.
    let again = kv
        .sync(&p, [(format!("{p}same"), "1")])
        .plan()
        .await
        .unwrap();
    assert_eq!(again.changed.len() + again.added.len(), 0);
    // A desired key outside the prefix is refused.
    let err = kv.sync(&p, [("elsewhere/k", "v")]).await.unwrap_err();
    assert!(matches!(err, SyncError::OutsidePrefix { .. }), "{err:?}");
}

#[tokio::test]
async fn sync_against_a_concurrent_edit_reports_the_conflict_and_overwrites_nothing() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("sync-conflict");
    // 300 keys: the plan spans three transactions.
    kv.put_all((0..300).map(|i| (format!("{p}k{i:03}"), "v1")))
        .await
        .unwrap();
    kv.put_all([(format!("{p}doomed"), "x")]).await.unwrap();
    let mut desired: Vec<(String, String)> = (0..300)
        .map(|i| (format!("{p}k{i:03}"), "v2".to_owned()))
        .collect();
    desired.push((format!("{p}new-a"), "n".to_owned()));
    desired.push((format!("{p}new-b"), "n".to_owned()));
    let plan = kv.sync(&p, desired).delete(true).plan().await.unwrap();
    assert_eq!(
        (plan.changed.len(), plan.added.len(), plan.deleted.len()),
        (300, 2, 1)
    );

    // Someone else edits the prefix after the plan was made.
    let theirs = [5usize, 130, 131, 299];
    for i in theirs {
        assert!(kv.set(format!("{p}k{i:03}"), "theirs").await.unwrap());
    }
    assert!(kv.set(format!("{p}new-b"), "theirs").await.unwrap()); // created meanwhile
    assert!(kv.set(format!("{p}doomed"), "edited").await.unwrap()); // changed meanwhile

    let report = plan.apply(&kv).await.unwrap();
    let mut conflicted: Vec<(String, SyncAction)> = report
        .conflicts
        .iter()
        .map(|c| (c.key.clone(), c.action))
        .collect();
    conflicted.sort();
    let mut want: Vec<(String, SyncAction)> = theirs
        .iter()
        .map(|i| (format!("{p}k{i:03}"), SyncAction::Change))
        .collect();
    want.push((format!("{p}doomed"), SyncAction::Delete));
    want.push((format!("{p}new-b"), SyncAction::Add));
    want.sort();
    assert_eq!(
        conflicted, want,
        "every concurrent edit is a reported conflict"
    );
    assert!(report.conflicts.iter().all(|c| !c.what.is_empty()));
    assert!(!report.is_clean());
    assert_eq!(report.applied, 303 - 6);

    // Nothing the other writer wrote was overwritten; everything else was applied.
    let items = kv.items(&p).await.unwrap();
    for i in 0..300usize {
        let want: &[u8] = if theirs.contains(&i) {
            b"theirs"
        } else {
            b"v2"
        };
        assert_eq!(
            items.get(&format!("{p}k{i:03}")).unwrap().value_bytes(),
            want,
            "k{i:03}"
        );
    }
    assert_eq!(items.get(&format!("{p}new-a")).unwrap().value_bytes(), b"n");
    assert_eq!(
        items.get(&format!("{p}new-b")).unwrap().value_bytes(),
        b"theirs"
    );
    assert_eq!(
        items.get(&format!("{p}doomed")).unwrap().value_bytes(),
        b"edited"
    );
}

#[tokio::test]
async fn sync_with_small_transactions_and_a_large_value() {
    let server = server::start().await;
    let kv = client(&server).kv();
    let p = prefix("sync-limits");
    let big = vec![3u8; 450 * 1024];
    let desired: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| (format!("{p}{i}"), vec![i as u8]))
        .chain([(format!("{p}big"), big.clone())])
        .collect();
    let report = kv
        .sync(&p, desired)
        .limits(TxnLimits::default().with_max_ops(3))
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.applied, 11);
    assert_eq!(
        report.transactions, 5,
        "4 transactions of ≤ 3 and one plain write"
    );
    assert_eq!(
        kv.get(format!("{p}big")).await.unwrap().unwrap().bytes(),
        &big[..]
    );
}
