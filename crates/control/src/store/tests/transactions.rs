use super::super::{Store, StoreError};
use super::{TempDir, insert, instance, open};

#[derive(Debug)]
enum HandlerError {
    // Read only by Debug, when an assertion below fails.
    Store(#[allow(dead_code)] StoreError),
    Refused,
}

impl From<StoreError> for HandlerError {
    fn from(e: StoreError) -> Self {
        HandlerError::Store(e)
    }
}

fn count(store: &mut Store) -> usize {
    store
        .read(|t| t.list_instances(&Default::default()))
        .unwrap()
        .len()
}

#[test]
fn an_error_from_the_closure_rolls_everything_back() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let result: Result<(), HandlerError> = store.write(|t| {
        t.insert_instance(&instance(1))?;
        t.set_tags(&instance(1).id, &[("Name".into(), "x".into())])?;
        Err(HandlerError::Refused)
    });
    assert!(matches!(result, Err(HandlerError::Refused)));
    assert_eq!(count(&mut store), 0);
    assert!(
        store
            .read(|t| t.tags_of(&instance(1).id))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_failing_step_rolls_back_the_steps_before_it() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    insert(&mut store, &instance(1));
    let result = store.write(|t| {
        t.insert_instance(&instance(2))?;
        t.insert_instance(&instance(1))
    });
    assert!(matches!(
        result,
        Err(StoreError::Duplicate {
            kind: "instance",
            ..
        })
    ));
    assert_eq!(count(&mut store), 1);
}

#[test]
fn a_panic_in_the_closure_rolls_back_and_the_store_stays_usable() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.write(|t| -> Result<(), StoreError> {
            t.insert_instance(&instance(1))?;
            panic!("handler bug");
        });
    }));
    assert!(outcome.is_err());
    assert_eq!(count(&mut store), 0);
    insert(&mut store, &instance(2));
    assert_eq!(count(&mut store), 1);
}

#[test]
fn constraint_violations_are_typed() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    insert(&mut store, &instance(1));
    let mut same_mac = instance(2);
    same_mac.mac = instance(1).mac;
    match store.write(|t| t.insert_instance(&same_mac)) {
        Err(StoreError::Duplicate { kind, id }) => {
            assert_eq!((kind, id), ("instance", same_mac.id.clone()))
        }
        other => panic!("{other:?}"),
    }
    // A CHECK constraint (state codes are EC2's six): a bad write by hand
    // maps to Constraint.
    let bad = store
        .conn
        .execute("UPDATE instances SET state_code = 17", [])
        .map_err(|e| StoreError::from_constraint(e, "instance", "i-1"));
    assert!(matches!(bad, Err(StoreError::Constraint(_))), "{bad:?}");
    let message = StoreError::Duplicate {
        kind: "key pair",
        id: "alice".into(),
    }
    .to_string();
    assert_eq!(message, "key pair alice already exists");
}

#[test]
fn readers_see_committed_state_while_a_writer_works() {
    let dir = TempDir::new();
    let mut writer = open(&dir);
    let mut reader = open(&dir);
    insert(&mut writer, &instance(1));
    writer
        .write(|t| {
            t.insert_instance(&instance(2))?;
            // WAL: another connection reads without waiting, and sees only
            // what was committed.
            assert_eq!(count(&mut reader), 1);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(count(&mut reader), 2);
}
