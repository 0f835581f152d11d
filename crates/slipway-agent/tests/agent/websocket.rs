//! A WebSocket opened before a switch stays on its old target (the old
//! target drains until the socket closes); new connections go to the new.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_survives_a_switch_made_after_it_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let agent = Agent::start(dir.path(), &[]).await;
    assert_eq!(deploy(&agent, "web", a.addr, "v1", &[]).0, 0);

    let url = format!("ws://{}/ws", agent.listen);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("ws connect");
    assert_eq!(resp.headers()["x-slipway-release"], "v1");
    ws.send(Message::text("1")).await.expect("send");
    assert_eq!(next_text(&mut ws).await, "a:1");

    assert_eq!(
        deploy(
            &agent,
            "web",
            b.addr,
            "v2",
            &["--drain-timeout-ms", "30000"]
        )
        .0,
        0
    );
    let (_, _, body) = get(&client(), &agent.url("/"), None).await.expect("get");
    assert_eq!(body, "b", "new requests go to b");

    ws.send(Message::text("2"))
        .await
        .expect("send after switch");
    assert_eq!(
        next_text(&mut ws).await,
        "a:2",
        "the open socket stays on a"
    );
    let (mut ws2, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("ws2");
    ws2.send(Message::text("3")).await.expect("send");
    assert_eq!(next_text(&mut ws2).await, "b:3");

    // a drains while its socket is open, and is released when it closes.
    let (_, r) = agent.ctl(&["routes"]);
    assert_eq!(r["result"]["routes"][0]["draining"][0]["in_flight"], 1);
    ws.close(None).await.expect("close");
    drop(ws);
    eventually(
        "a released after the socket closed",
        Duration::from_secs(5),
        || async {
            let (_, r) = agent.ctl(&["routes"]);
            (r["result"]["routes"][0]["draining"]
                .as_array()
                .is_some_and(Vec::is_empty))
            .then_some(())
        },
    )
    .await;
}

async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("message in time")
        .expect("stream open")
        .expect("message");
    msg.into_text().map(|t| t.to_string()).unwrap_or_default()
}
