//! Debug-mode smoke test of the scrape benchmark's target server: the conformance body is
//! served on 3 ports and fetched back with the harness's HTTP client, twice per connection
//! (keep-alive). Starts no hearth or Prometheus (the benchmark runs from
//! `benches/scrape.sh`).

use hearth_benches::http::Conn;
use hearth_benches::scrape::DEFAULT_BODY;
use hearth_benches::scrape_targets::{TargetServer, CONTENT_TYPE};

#[test]
fn target_server_serves_the_body_on_every_port() {
    let body = std::fs::read(DEFAULT_BODY)
        .unwrap_or_else(|e| panic!("{DEFAULT_BODY} (../shared/conformance) is required: {e}"));
    let targets = TargetServer::start(3, &body).unwrap();
    assert_eq!(targets.addrs().len(), 3);
    for &addr in targets.addrs() {
        assert!(addr.ip().is_loopback());
        let mut c = Conn::connect(addr).unwrap();
        for _ in 0..2 {
            let r = c.get("/metrics").unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-type"), Some(CONTENT_TYPE));
            assert!(r.body == body, "body from {addr} differs from the file");
        }
        assert_eq!(c.reconnects, 0, "keep-alive connection was closed");
        assert_eq!(c.get("/other").unwrap().status, 404);
    }
    assert_eq!(targets.served_per_target(), vec![2, 2, 2]);
    assert_eq!(targets.connections(), 3);
    assert_eq!(targets.other_requests(), 3);
}
