//! Embedding Ikelink: load a profile, negotiate the IKE SA and the first Child SA with the `ikelink` crate, print
//! what was negotiated, and disconnect. SAs only (no TUN, no routes), so the host's network is left alone.
//!
//!     cargo run -p ikelink-examples --example connect -- examples/profiles/psk.toml

use std::time::Duration;

use ikelink::driver::{Session, SessionEvent, SessionOptions};
use ikelink::profile::Profile;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: connect PROFILE.toml")?;
    let resolved = Profile::load(std::path::Path::new(&path))?.resolve()?;
    println!("connecting to {}", resolved.gateway);

    // Negotiate only; a real app keeps `data_plane` and `configure_network` on (both need root).
    let options = SessionOptions { data_plane: false, configure_network: false, reconnect: None, ..Default::default() };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let session = Session::start(resolved, options, tx).await?;

    // Bounded: give up after 30 s or 100 events without a connection.
    let wait = async {
        for _ in 0..100 {
            match rx.recv().await {
                Some(SessionEvent::Connected { info, child }) => {
                    return Ok(format!("{} / {}", info.ike_suite, child.suite))
                }
                Some(SessionEvent::Closed(reason)) => return Err(format!("closed: {reason:?}")),
                None => return Err("session ended".to_string()),
                Some(_) => {}
            }
        }
        Err("no connection after 100 events".to_string())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap_or(Err("timed out".into()));
    match &outcome {
        Ok(suites) => println!("connected: {suites}"),
        Err(e) => println!("not connected: {e}"),
    }
    session.disconnect().await?;
    println!("disconnected");
    outcome.map(|_| ()).map_err(Into::into)
}
