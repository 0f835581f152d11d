//! Maintenance mode end to end: `slipway maintenance on|off` answers the
//! public port with the page; `deploy --maintenance` of a slow migration
//! shows the page while it runs and the new release right after; a failing
//! `deploy --maintenance` lifts it once the old release serves again.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::harness::App;

/// One answer of the public port.
#[derive(Clone, Debug)]
struct Seen {
    status: u16,
    release: String,
    retry_after: String,
    maintenance: bool,
}

/// `GET path` on the public port, one connection per request.
fn get(port: u16, path: &str) -> Result<Seen, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Ok(Seen {
        status,
        release: header("x-slipway-release"),
        retry_after: header("retry-after"),
        maintenance: body.contains("\"error\":\"maintenance\""),
    })
}

/// The public port answers 200 from `release` and maintenance is off.
fn serves_without_maintenance(app: &App, release: &str, context: &str) {
    let now = get(app.port, "/version").expect("answer");
    assert_eq!(
        (now.status, now.release.as_str()),
        (200, release),
        "{context}"
    );
    assert_eq!(app.status_json()["maintenance"]["on"], false, "{context}");
}

/// Polls the public port on a thread until stopped; every answer kept.
struct Poller {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Result<Seen, String>>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Poller {
    fn start(port: u16) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let answer = get(port, "/version");
                    seen.lock().unwrap().push(answer);
                    // Pacing, not synchronisation: ~30 requests a second.
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
        });
        Poller { stop, seen, thread }
    }

    fn finish(self) -> Vec<Result<Seen, String>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        Arc::try_unwrap(self.seen).unwrap().into_inner().unwrap()
    }
}

#[test]
fn maintenance_on_off_and_a_deploy_behind_it_that_lifts_it_after_the_switch_or_the_undo() {
    let app = App::new("maint");
    let first = app.deploy();
    assert_eq!(first.code, 0, "{}", first.all());
    let release_a = app.head();

    // By hand: on, the page and its Retry-After, status says who; off.
    let on = app.slipway(&[
        "maintenance",
        "on",
        &app.env,
        "--retry-after",
        "30s",
        "--message",
        "Database upgrade",
    ]);
    assert_eq!(on.code, 0, "{}", on.all());
    assert!(on.stdout.contains("is in maintenance mode"), "{}", on.all());
    let page = get(app.port, "/version").expect("answer");
    assert_eq!(
        (page.status, page.retry_after.as_str()),
        (503, "30"),
        "{page:?}"
    );
    assert!(page.maintenance, "{page:?}");
    let status = app.status_json();
    assert_eq!(status["maintenance"]["on"], true, "{status}");
    assert_eq!(status["maintenance"]["message"], "Database upgrade");
    assert!(status["maintenance"]["by"].as_str().unwrap().contains('@'));
    assert_eq!(status["current_deployment"]["health_status"], "maintenance");
    let human = app.slipway(&["status", &app.env]);
    assert!(human.stdout.contains("MAINTENANCE"), "{}", human.all());
    let off = app.slipway(&["--json", "maintenance", "off", &app.env]);
    assert_eq!(off.code, 0, "{}", off.all());
    assert_eq!(off.json()["lifted"]["message"], "Database upgrade");
    let back = get(app.port, "/version").expect("answer");
    assert_eq!(
        (back.status, back.release.as_str()),
        (200, release_a.as_str())
    );
    assert_eq!(app.status_json()["maintenance"]["on"], false);

    // deploy --maintenance of a slow migration while a client polls.
    app.commit_file(
        "migrations/0005_slow.up.sql",
        "SELECT pg_sleep(3);\nALTER TABLE events ADD COLUMN IF NOT EXISTS capacity integer;\n",
        "slow migration",
    );
    let release_b = app.head();
    let poller = Poller::start(app.port);
    let deploy = app.slipway(&["--json", "deploy", &app.env, "--maintenance"]);
    let seen = poller.finish();
    assert_eq!(deploy.code, 0, "{}", deploy.all());
    let report = deploy.json();
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let on_at = steps.iter().position(|s| *s == "maintenance").unwrap();
    let migrate_at = steps.iter().position(|s| *s == "migrate").unwrap();
    assert!(on_at < migrate_at, "{steps:?}");
    assert_eq!(
        steps.iter().filter(|s| **s == "maintenance").count(),
        2,
        "on before the migration, lifted after the switch: {steps:?}"
    );
    let answers: Vec<Seen> = seen
        .iter()
        .map(|a| a.clone().unwrap_or_else(|e| panic!("no answer: {e}")))
        .collect();
    for a in &answers {
        let ok_a = a.status == 200 && a.release == release_a;
        let ok_b = a.status == 200 && a.release == release_b;
        let page = a.status == 503 && a.maintenance && a.retry_after == "60";
        assert!(ok_a || ok_b || page, "unexpected answer {a:?}");
    }
    let first_page = answers
        .iter()
        .position(|a| a.maintenance)
        .expect("the page was served");
    let first_b = answers
        .iter()
        .position(|a| a.release == release_b)
        .expect("the new release served");
    let pages = answers.iter().filter(|a| a.maintenance).count();
    eprintln!(
        "deploy --maintenance: {} answers, {pages} maintenance pages",
        answers.len()
    );
    // About 3 s of migration at ~30 a second: well over 20 pages.
    assert!(pages >= 20, "only {pages} maintenance answers");
    assert!(first_page < first_b);
    assert!(
        answers[first_b..].iter().all(|a| a.release == release_b),
        "after the switch only the new release answers"
    );
    assert!(
        answers[..first_page].iter().all(|a| a.release == release_a),
        "before maintenance only the old release answers"
    );
    serves_without_maintenance(&app, &release_b, "");

    // A broken migration behind maintenance: it fails, the old release
    // still serves, so maintenance is lifted.
    app.commit_file(
        "migrations/0006_broken.up.sql",
        "SELECT pg_sleep(1);\nALTER TABLE no_such_table ADD COLUMN x integer;\n",
        "broken migration",
    );
    let failed = app.slipway(&["deploy", &app.env, "--maintenance"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(
        failed.stderr.contains("deploy failed at step `migrate`"),
        "{}",
        failed.all()
    );
    assert!(
        failed.stderr.contains("the previous release serves again"),
        "{}",
        failed.all()
    );
    serves_without_maintenance(&app, &release_b, "");

    // A `deploy --maintenance` killed (SIGKILL) while its migration runs
    // leaves maintenance on, says so, and the next `deploy --maintenance`
    // takes it over and lifts it after its switch: never silently.
    app.commit_file(
        "migrations/0006_broken.up.sql",
        "SELECT pg_sleep(4);\n",
        "a slow migration instead",
    );
    let release_c = app.head();
    let mut child = app.spawn(&["deploy", &app.env, "--maintenance"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !get(app.port, "/version").is_ok_and(|a| a.maintenance) {
        assert!(std::time::Instant::now() < deadline, "the page never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let status = app.status_json();
    assert_eq!(status["maintenance"]["on"], true, "{status}");
    // Names the deploy that left it on.
    assert!(
        status["maintenance"]["left_by_interrupted_deploy"]
            .as_str()
            .is_some_and(|id| id.starts_with("dep_")),
        "{status}"
    );
    assert!(get(app.port, "/version").expect("answer").maintenance);
    let resumed = app.slipway(&["deploy", &app.env, "--maintenance"]);
    assert_eq!(resumed.code, 0, "{}", resumed.all());
    assert!(
        resumed.stderr.contains("left by an interrupted deploy"),
        "{}",
        resumed.all()
    );
    serves_without_maintenance(&app, &release_c, &resumed.all());
}
