//! A panic in an item or an input becomes that item's error or reaches the consumer.

use futures::{FutureExt as _, StreamExt, stream};
use otelconc::fan::{ItemError, fan_in, fan_out_items};

#[tokio::test]
async fn a_panicking_item_fails_with_its_message() {
    let out: Vec<Result<u8, ItemError<String>>> = fan_out_items([0u8, 1, 2], 2, |i| {
        if i == 2 {
            panic!("building item {i} failed");
        }
        async move {
            if i == 1 {
                panic!("item {i} panicked");
            }
            Ok(i)
        }
    })
    .unwrap()
    .collect()
    .await;
    assert_eq!(out[0], Ok(0));
    assert_eq!(
        out[1],
        Err(ItemError::Panicked {
            index: 1,
            message: "item 1 panicked".to_owned()
        })
    );
    assert_eq!(
        out[2],
        Err(ItemError::Panicked {
            index: 2,
            message: "building item 2 failed".to_owned()
        })
    );
}

#[tokio::test]
async fn a_panicking_input_reaches_the_consumer() {
    let bad = stream::iter(0..3).map(|i| {
        if i == 2 {
            panic!("input broke at {i}")
        } else {
            i
        }
    });
    let mut out = fan_in([bad]);
    let mut got = Vec::new();
    let panic = loop {
        match std::panic::AssertUnwindSafe(out.next())
            .catch_unwind()
            .await
        {
            Ok(Some(m)) => got.push(m.into_inner()),
            Ok(None) => panic!("the input's panic was swallowed"),
            Err(p) => break p,
        }
    };
    assert_eq!(got, [0, 1]);
    let message = p_message(&*panic);
    assert_eq!(message, "fan_in input 0 panicked: input broke at 2");
}

fn p_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}
